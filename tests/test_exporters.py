"""Tests for the console tree exporter and the OTLP/JSON lines file exporter."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_callbacks.setup.exporters import (
    ConsoleTreeSpanExporter,
    OtlpJsonFileSpanExporter,
    decode_request,
    encode_otlp_json,
    records_from_request,
)


@pytest.fixture(name="spans")
def _spans() -> Iterator[tuple[ReadableSpan, ...]]:
    """An agent trace made with the SDK directly: root, a chat child with tokens, a failing tool with a link."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("invoke_agent agent", kind=SpanKind.INTERNAL) as root:
        with tracer.start_as_current_span("chat m", kind=SpanKind.CLIENT, attributes={
            "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 3,
            "ratio": 0.5, "flag": True, "tags": ["a", "b"]}):
            pass
        with tracer.start_as_current_span("execute_tool t", links=[trace_link(root)],
                                          set_status_on_exception=False) as tool:
            tool.set_status(Status(StatusCode.ERROR, "bad input"))
            tool.set_attribute("error.type", "ValueError")
    yield memory.get_finished_spans()
    provider.shutdown()


def trace_link(span: object) -> object:
    from opentelemetry.trace import Link

    return Link(span.get_span_context())  # type: ignore[attr-defined]


def _hex_ids_to_b64(obj: object) -> None:
    """Independent of our decoder: turn OTLP/JSON hex ids into protobuf-JSON base64 for json_format.Parse."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                _hex_ids_to_b64(value)
    elif isinstance(obj, list):
        for item in obj:
            _hex_ids_to_b64(item)


def _all_spans(data: dict) -> list[dict]:
    return [s for rs in data["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


class TestOtlpJsonEncoding:
    def test_line_is_valid_otlp_json(self, spans: tuple[ReadableSpan, ...]) -> None:
        """Ids are lowercase hex of the right length, enums are integers, ints are strings, and protobuf parses it."""
        data = json.loads(json.dumps(encode_otlp_json(spans)))
        out = _all_spans(data)
        assert len(out) == 3
        for span in out:
            assert len(span["traceId"]) == 32 and int(span["traceId"], 16)
            assert len(span["spanId"]) == 16 and span["spanId"] == span["spanId"].lower()
            assert isinstance(span["kind"], int)
        chat = next(s for s in out if s["name"] == "chat m")
        assert chat["kind"] == 3  # SPAN_KIND_CLIENT
        assert len(chat["parentSpanId"]) == 16
        attrs = {a["key"]: a["value"] for a in chat["attributes"]}
        assert attrs["gen_ai.usage.input_tokens"] == {"intValue": "10"}
        assert attrs["ratio"] == {"doubleValue": 0.5}
        assert attrs["tags"] == {"arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}}
        tool = next(s for s in out if s["name"] == "execute_tool t")
        assert tool["status"]["code"] == 2 and tool["status"]["message"] == "bad input"
        assert len(tool["links"][0]["spanId"]) == 16
        _hex_ids_to_b64(data)
        request = json_format.Parse(json.dumps(data), ExportTraceServiceRequest())
        parsed = request.resource_spans[0].scope_spans[0].spans
        assert {s.span_id.hex() for s in parsed} == {f"{s.context.span_id:016x}" for s in spans}

    def test_decode_round_trip_to_records(self, spans: tuple[ReadableSpan, ...]) -> None:
        """decode_request + records_from_request recover ids, parents, times, status and typed attributes."""
        records = {r.name: r for r in records_from_request(decode_request(encode_otlp_json(spans)))}
        root = next(s for s in spans if s.parent is None)
        chat = records["chat m"]
        assert chat.parent_span_id == f"{root.context.span_id:016x}"
        assert chat.attributes["gen_ai.usage.input_tokens"] == 10
        assert chat.attributes["tags"] == ("a", "b")
        assert records["execute_tool t"].status_code == 2
        assert records["invoke_agent agent"].parent_span_id is None
        assert chat.end_ns > chat.start_ns > 0

    def test_decode_accepts_base64_ids(self, spans: tuple[ReadableSpan, ...]) -> None:
        """Protobuf-canonical JSON (base64 ids) is read as well as OTLP/JSON hex."""
        data = encode_otlp_json(spans)
        _hex_ids_to_b64(data)
        assert len(records_from_request(decode_request(data))) == 3

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ([1, 2], "expected a JSON object"),
            ({"spans": []}, "resourceSpans"),
            ({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "00"}]}]}]}, "traceId"),
            ({"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}, "startTimeUnixNano"),
        ],
    )
    def test_decode_rejects_malformed(self, data: object, message: str) -> None:
        """Malformed objects raise ValueError with a useful message instead of other exception types."""
        with pytest.raises(ValueError, match=message):
            decode_request(data)


class TestFileExporter:
    def test_one_line_per_batch_appended(self, tmp_path: Path, spans: tuple[ReadableSpan, ...]) -> None:
        """Each export appends exactly one line; an existing file is appended to, not truncated."""
        path = tmp_path / "t.jsonl"
        path.write_text('{"resourceSpans":[]}\n')
        exporter = OtlpJsonFileSpanExporter(path)
        assert exporter.export(spans[:1]) is SpanExportResult.SUCCESS
        assert exporter.export(spans[1:]) is SpanExportResult.SUCCESS
        exporter.shutdown()
        lines = path.read_text().splitlines()
        assert len(lines) == 3
        assert [len(_all_spans(json.loads(line))) for line in lines[1:]] == [1, 2]

    def test_stream_is_written_and_not_closed(self, spans: tuple[ReadableSpan, ...]) -> None:
        """A caller's stream receives the line and stays open after shutdown."""
        stream = io.StringIO()
        exporter = OtlpJsonFileSpanExporter(stream=stream)
        exporter.export(spans)
        exporter.shutdown()
        assert not stream.closed
        assert stream.getvalue().endswith("\n") and stream.getvalue().count("\n") == 1

    def test_path_xor_stream(self) -> None:
        """Giving both or neither of path and stream is a ValueError."""
        with pytest.raises(ValueError):
            OtlpJsonFileSpanExporter()
        with pytest.raises(ValueError):
            OtlpJsonFileSpanExporter("x", stream=io.StringIO())

    def test_write_error_returns_failure_and_warns(
        self, tmp_path: Path, spans: tuple[ReadableSpan, ...], caplog: pytest.LogCaptureFixture
    ) -> None:
        """An unwritable path never raises: FAILURE plus a warning that counts the lost spans."""
        exporter = OtlpJsonFileSpanExporter(tmp_path / "missing-dir" / "t.jsonl")
        with caplog.at_level(logging.WARNING):
            assert exporter.export(spans) is SpanExportResult.FAILURE
        assert "Could not write 3 spans" in caplog.text
        (tmp_path / "missing-dir").mkdir()
        assert exporter.export(spans) is SpanExportResult.SUCCESS  # recovers once the directory exists

    def test_unencodable_batch_returns_failure(self, caplog: pytest.LogCaptureFixture) -> None:
        """A span object the encoder cannot handle is reported and dropped, not raised."""
        exporter = OtlpJsonFileSpanExporter(stream=io.StringIO())
        with caplog.at_level(logging.WARNING):
            assert exporter.export([object()]) is SpanExportResult.FAILURE  # type: ignore[list-item]
        assert "Could not encode 1 spans" in caplog.text

    def test_export_after_shutdown_fails(self, tmp_path: Path, spans: tuple[ReadableSpan, ...]) -> None:
        """After shutdown batches are refused with FAILURE."""
        exporter = OtlpJsonFileSpanExporter(tmp_path / "t.jsonl")
        exporter.shutdown()
        assert exporter.export(spans) is SpanExportResult.FAILURE

    def test_rotation_keeps_backups(self, tmp_path: Path, spans: tuple[ReadableSpan, ...]) -> None:
        """With max_bytes the file rolls over to .1/.2 and every line stays whole."""
        path = tmp_path / "t.jsonl"
        exporter = OtlpJsonFileSpanExporter(path, max_bytes=10, backup_count=2)
        for _ in range(4):
            exporter.export(spans[:1])
        exporter.shutdown()
        files = [path, tmp_path / "t.jsonl.1", tmp_path / "t.jsonl.2"]
        assert all(f.exists() for f in files)
        assert not (tmp_path / "t.jsonl.3").exists()
        for f in files:
            assert len(f.read_text().splitlines()) == 1
            json.loads(f.read_text())

    def test_concurrent_exports_do_not_interleave(self, tmp_path: Path, spans: tuple[ReadableSpan, ...]) -> None:
        """Eight threads exporting at once produce only whole, parseable lines."""
        path = tmp_path / "t.jsonl"
        exporter = OtlpJsonFileSpanExporter(path)
        threads = [threading.Thread(target=lambda: [exporter.export(spans) for _ in range(25)]) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lines = path.read_text().splitlines()
        assert len(lines) == 200
        assert all(len(_all_spans(json.loads(line))) == 3 for line in lines)


class TestConsoleTreeExporter:
    def test_prints_tree_when_root_arrives_in_a_later_batch(self, spans: tuple[ReadableSpan, ...]) -> None:
        """Children exported first are buffered; the whole tree prints once the root ends."""
        out = io.StringIO()
        exporter = ConsoleTreeSpanExporter(out)
        children = [s for s in spans if s.parent is not None]
        root = [s for s in spans if s.parent is None]
        exporter.export(children)
        assert out.getvalue() == ""
        exporter.export(root)
        text = out.getvalue()
        assert "└─ invoke_agent agent" in text
        assert "├─ chat m" in text and "model=m  tokens in=10 out=3" in text
        assert "└─ execute_tool t" in text and "ERROR ValueError: bad input" in text

    def test_shutdown_prints_pending_as_incomplete(self, spans: tuple[ReadableSpan, ...]) -> None:
        """Spans whose root never ended are printed at shutdown, marked incomplete, not silently dropped."""
        out = io.StringIO()
        exporter = ConsoleTreeSpanExporter(out)
        exporter.export([s for s in spans if s.parent is not None])
        exporter.shutdown()
        assert "incomplete" in out.getvalue() and "chat m" in out.getvalue()

    def test_buffer_is_bounded(self, spans: tuple[ReadableSpan, ...]) -> None:
        """Past max_buffered_spans the oldest pending trace is printed early instead of growing without bound."""
        out = io.StringIO()
        exporter = ConsoleTreeSpanExporter(out, max_buffered_spans=1)
        exporter.export([s for s in spans if s.parent is not None])
        assert "incomplete" in out.getvalue()
        assert exporter._pending_count <= 1

    def test_broken_stream_returns_failure(self, spans: tuple[ReadableSpan, ...]) -> None:
        """A closed output stream yields FAILURE and no exception."""
        out = io.StringIO()
        out.close()
        assert ConsoleTreeSpanExporter(out).export(spans) is SpanExportResult.FAILURE

    def test_ascii_fallback_for_ascii_streams(self, spans: tuple[ReadableSpan, ...]) -> None:
        """A stream that cannot encode box drawing gets ASCII connectors."""
        raw = io.BytesIO()
        out = io.TextIOWrapper(raw, encoding="ascii")
        ConsoleTreeSpanExporter(out).export(spans)
        out.flush()
        assert b"`- invoke_agent agent" in raw.getvalue()

    def test_default_stream_is_current_stdout(
        self, spans: tuple[ReadableSpan, ...], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without out=, output goes to sys.stdout as it is at print time (capturable)."""
        ConsoleTreeSpanExporter().export(spans)
        assert "invoke_agent agent" in capsys.readouterr().out
