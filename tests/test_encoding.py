"""No string can break an export (issue 13, item 2).

Python strings may hold lone surrogates (a broken emoji from a web client, ``surrogateescape`` bytes), which UTF-8
cannot encode: one in a span name made the OTLP encoder raise and the whole batch was lost, one in an attribute made
it drop the attribute and log a traceback on every export. Every string the mapping produces is checked here, then a
batch with bad strings in every place is sent through the real OTLP protobuf encoder and the file exporter.
"""

from __future__ import annotations

import json
import logging
import timeit
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.runnables import RunnableLambda
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.mapping import errors, response, spans, values
from otel_callbacks.mapping.content import ContentPolicy, json_attribute, text_attribute
from otel_callbacks.mapping.text import REPLACEMENT, safe_text
from otel_callbacks.setup.exporters import OtlpJsonFileSpanExporter, decode_request
from tests.support import LogTap, available_emission_paths, use_emission_path

BAD = "broken \ud83d emoji"  # the high half of 😀, alone
FIXED = f"broken {REPLACEMENT} emoji"


def unencodable(value: Any, where: str = "") -> list[str]:
    """Where in ``value`` (attributes, nested sequences and dicts, keys included) a string UTF-8 cannot encode is."""
    found: list[str] = []
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            found.append(where or repr(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += unencodable(key, f"{where}[key {key!r}]") + unencodable(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found += unencodable(item, f"{where}[{i}]")
    return found


class TestSafeText:
    def test_ascii_and_valid_text_come_back_as_they_are(self) -> None:
        """The common case costs no copy: the same object is returned."""
        for text in ("plain ascii", "héllo wörld", "😀 joined", ""):
            assert safe_text(text) is text

    @pytest.mark.parametrize(("text", "expected"), [
        ("\ud83d", REPLACEMENT),
        ("x\ude00y", f"x{REPLACEMENT}y"),
        ("\ud83d\ude00", "😀"),  # a pair left split (by slicing UTF-16 data) is joined again
        ("\udcff\udcfe", REPLACEMENT * 2),  # surrogateescape'd bytes
        (BAD, FIXED),
    ])
    def test_lone_surrogates_become_the_replacement_character(self, text: str, expected: str) -> None:
        """Each unencodable code point is replaced, nothing else changes."""
        assert safe_text(text) == expected

    @given(st.lists(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr))).map("".join))
    def test_every_string_comes_back_encodable(self, text: str) -> None:
        """Any code point Python holds, surrogates included."""
        out = safe_text(text)
        out.encode("utf-8")
        assert out == text or any("\ud800" <= c <= "\udfff" for c in text)

    def test_cost_of_the_common_case(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Prints what a call costs per string (a measurement for the report, not an assertion on time)."""
        cases = {"ascii, 40 chars": "a normal attribute value of forty chars", "non-ascii, 40 chars": "é" * 40,
                 "ascii, 16 KiB": "a" * 16384, "non-ascii, 16 KiB": "é" * 16384}
        with capsys.disabled():
            for label, text in cases.items():
                number = 20_000
                seconds = min(timeit.repeat(lambda text=text: safe_text(text), number=number, repeat=3))
                print(f"\nsafe_text {label}: {seconds / number * 1e9:.0f} ns", end="")
            print()
        assert safe_text(cases["ascii, 16 KiB"]) is cases["ascii, 16 KiB"]


class TestMappingOutputs:
    def test_run_attributes(self) -> None:
        """Run type, tags, metadata keys and values (plain, in sequences, in dicts) and the conversation id."""
        attrs = values.run_attributes("r", BAD, [BAD, "ok"], {
            BAD: "v", "k": BAD, "seq": (BAD, "x"), "nested": {BAD: [BAD]}, "thread_id": BAD,
        }, 1000, 32)
        assert unencodable(attrs) == []
        assert attrs["langchain.run.type"] == attrs["langchain.metadata.k"] == attrs["gen_ai.conversation.id"] == FIXED
        assert attrs["langchain.tags"] == (FIXED, "ok") and attrs[f"langchain.metadata.{FIXED}"] == "v"

    def test_clip_attributes(self) -> None:
        """Whatever the handler sets through ``clip_attributes`` (start attributes, response, event attributes)."""
        attrs = values.clip_attributes({"a": BAD, "b": (BAD, "x"), "c": 3, "d": ("ok",)}, 100)
        assert attrs == {"a": FIXED, "b": (FIXED, "x"), "c": 3, "d": ("ok",)}

    def test_span_names_and_start_attributes(self) -> None:
        """Names of every span kind, and the model, provider and server they carry."""
        serialized = {"name": BAD, "description": BAD, "kwargs": {"base_url": f"https://{BAD}.example/v1"}}
        built: list[Any] = [
            spans.serialized_name(None, BAD), spans.serialized_name({"name": BAD}),
            spans.serialized_name({"id": ["x", BAD]}),
            spans.chain_span(spans.serialized_name(serialized), {}, [], serialized)[0],
            spans.tool_span(serialized, None, BAD),
            spans.retriever_span(serialized, None, {"ls_vector_store_provider": BAD}),
            spans.llm_span(serialized, {"model": BAD}, {"ls_provider": BAD}, chat=True),
            spans.llm_span(None, {}, {"ls_model_name": BAD}, chat=False),
        ]
        # Start attributes go through clip_attributes in the handler; names do not, nor do the model span's
        # attributes the metrics are labelled with, so they must be clean here.
        names = [b if isinstance(b, str) else b[0] for b in built]
        assert unencodable(names) == [] and unencodable(built[-2]) == []
        assert spans.llm_span(None, {"model": BAD}, {"ls_provider": BAD}, chat=True) == (
            f"chat {FIXED}", {"gen_ai.operation.name": "chat", "gen_ai.provider.name": FIXED,
                              "gen_ai.request.model": FIXED})

    def test_response_attributes(self) -> None:
        """Response model, id and finish reasons label the metrics before the span's attributes are cleaned."""
        message = SimpleNamespace(response_metadata={"model_name": BAD, "id": BAD, "finish_reason": BAD},
                                  usage_metadata=None, id=None)
        attrs = response.llm_response_attributes(SimpleNamespace(
            generations=[[SimpleNamespace(message=message, generation_info=None)]], llm_output=None))
        assert unencodable(attrs) == [] and attrs["gen_ai.response.finish_reasons"] == (FIXED,)

    @pytest.mark.parametrize("redact", [None, lambda s: s + "\udc80"], ids=["no hook", "hook adds a surrogate"])
    def test_content(self, redact: Callable[[str], str] | None) -> None:
        """JSON and plain content attributes, whatever the input or the redact hook returns."""
        policy = ContentPolicy(capture=True, max_length=500, redact=redact)
        assert unencodable([json_attribute({BAD: [BAD, {"k": BAD}]}, policy), text_attribute(BAD, policy)]) == []

    def test_exception_strings(self) -> None:
        """``error.type``, the status description and the exception event, for a bad message and a bad class name."""
        bad_class = type("BadError", (Exception,), {"__module__": BAD})  # class names cannot hold one; modules can
        for error in (ValueError(BAD), bad_class(BAD)):
            texts = [errors.error_type(error), errors.error_description(error),
                     errors.exception_attributes(error, max_length=1000)]
            assert unencodable(texts) == []


class _ProtobufExporter(SpanExporter):
    """What the OTLP exporters do before sending: encode the batch to protobuf bytes (an error loses the batch)."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.requests.append(encode_spans(spans).SerializeToString())
        return SpanExportResult.SUCCESS


def _fail(_: Any) -> None:
    raise ValueError(f"bad {BAD}")


@pytest.fixture(name="batch")
def _batch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """One batch of 100 normal spans and two with a bad string in every place, exported by a batch processor to the
    file exporter and to the protobuf encoder, on the emission path given."""
    use_emission_path(monkeypatch, request.param)
    expected = InMemorySpanExporter()
    protobuf = _ProtobufExporter()
    path = tmp_path / "traces.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(expected))
    for exporter in (OtlpJsonFileSpanExporter(path), protobuf):  # one batch each: nothing is exported before flush
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=600_000))
    handler = OpenTelemetryCallbackHandler(provider)
    assert handler.emission_path == request.param
    config: Any = {"callbacks": [handler]}
    with LogTap() as logs:
        for i in range(100):
            RunnableLambda(lambda x: x + 1).with_config(run_name="normal").invoke(i, config=config)
        RunnableLambda(lambda x: x).with_config(run_name=BAD, tags=[BAD], metadata={BAD: BAD}).invoke(1, config=config)
        with pytest.raises(ValueError, match="bad"):
            RunnableLambda(_fail).with_config(run_name="fails").invoke(1, config=config)
        assert provider.force_flush()
    provider.shutdown()
    lines = path.read_text().splitlines() if path.exists() else []  # the file is created by its first write
    from_file = [span for line in lines for span in _spans(decode_request_line(line))]
    from_protobuf = [span for data in protobuf.requests for span in _spans(ExportTraceServiceRequest.FromString(data))]
    return SimpleNamespace(expected=expected.get_finished_spans(), file=from_file, protobuf=from_protobuf, logs=logs)


def decode_request_line(line: str) -> ExportTraceServiceRequest:
    return decode_request(json.loads(line))


def _spans(request: ExportTraceServiceRequest) -> list[Any]:
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def _attributes(span: Any) -> dict[str, Any]:
    return {kv.key: kv.value.string_value or kv.value.array_value for kv in span.attributes}


PATHS = pytest.mark.parametrize("batch", available_emission_paths(), indirect=True)


class TestExport:
    @PATHS
    def test_every_span_of_a_batch_with_bad_strings_arrives(self, batch: Any) -> None:
        """102 spans in one batch, a lone surrogate in a run name, a tag, a metadata key and value and an exception
        message: every span is encoded and arrives, through the file exporter and the protobuf encoder."""
        assert len(batch.expected) == 102
        assert (len(batch.file), len(batch.protobuf)) == (102, 102), "spans arrived (file, protobuf) of 102"
        assert batch.logs.messages() == []
        for received in (batch.file, batch.protobuf):
            assert sorted(s.span_id for s in received) == sorted(s.context.span_id.to_bytes(8, "big")
                                                                 for s in batch.expected)
            bad = next(s for s in received if s.name == FIXED)
            attrs = _attributes(bad)
            assert attrs[f"langchain.metadata.{FIXED}"] == FIXED
            assert [v.string_value for v in attrs["langchain.tags"].values] == [FIXED]
            failed = next(s for s in received if s.name == "fails")
            assert failed.status.message == f"ValueError: bad {FIXED}"

    @PATHS
    def test_exception_text_arrives_and_nothing_is_logged(self, batch: Any) -> None:
        """The exception event keeps its message and stacktrace (the bad code point replaced) and no encoder logs
        a dropped attribute."""
        assert batch.logs.messages() == []
        for received in (batch.file, batch.protobuf):
            failed = next(s for s in received if s.name == "fails")
            event = {kv.key: kv.value.string_value for kv in failed.events[0].attributes}
            assert event["exception.message"] == f"bad {FIXED}"
            assert event["exception.stacktrace"].rstrip().endswith(f"ValueError: bad {FIXED}")


def test_no_error_is_logged_for_spans_the_mapping_cleans(caplog: pytest.LogCaptureFixture) -> None:
    """Span names, tags and metadata with bad strings encode without a word from the OTLP encoder."""
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    handler = OpenTelemetryCallbackHandler(provider)
    RunnableLambda(lambda x: x).with_config(run_name=BAD, tags=[BAD], metadata={BAD: BAD, "k": [BAD]}).invoke(
        1, config={"callbacks": [handler]})
    with caplog.at_level(logging.WARNING):
        request = encode_spans(memory.get_finished_spans())
        data = request.SerializeToString()
    assert caplog.records == [] and FIXED.encode() in data
    provider.shutdown()
