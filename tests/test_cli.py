"""Tests for the otel-callbacks CLI: demo, view and send."""

from __future__ import annotations

import base64
import copy
import dataclasses
import io
import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from otel_callbacks.cli.commands import main
from otel_callbacks.cli.otlp_fields import FIELD_NAMES, HANDLED_FIELDS
from otel_callbacks.cli.otlp_records import records_from_data
from otel_callbacks.cli.reader import read_records
from otel_callbacks.cli.tree import SHOWN_KEYS, SpanRecord, build_traces, render_traces
from otel_callbacks.setup.env import resolve_replay_target
from otel_callbacks.setup.exporters import OtlpJsonFileSpanExporter, parse_lines, records_from_request
from tests._otlp_receiver import GrpcReceiver, HttpReceiver
from tests.support import one_warning

ROOT = Path(__file__).resolve().parents[1]

# A line as the Collector's file exporter writes it: hex ids, integer enums, int64 as strings, extra fields.
COLLECTOR_LINE = json.dumps({"resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "collected"}}]},
    "scopeSpans": [{"scope": {"name": "otel_callbacks", "version": "0.1.0"}, "schemaUrl": "https://x", "spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "invoke_agent a",
         "kind": 1, "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
         "status": {}, "droppedAttributesCount": 0},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175",
         "parentSpanId": "eee19b7ec3c1b174", "name": "chat gpt-x", "kind": 3,
         "startTimeUnixNano": "1544712660100000000", "endTimeUnixNano": "1544712660600000000",
         "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-x"}},
                        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                        {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "4"}},
                        {"key": "error.type", "value": {"stringValue": "RateLimitError"}}],
         "status": {"code": 2, "message": "slow down"}},
    ]}]}]})
OTHER_TRACE_LINE = COLLECTOR_LINE.replace("5b8efff798038103d269b633813fc60c", "a" * 32).replace("ee", "ff")


@pytest.fixture(autouse=True)
def _no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI runs must not pick up exporter settings from the developer's shell."""
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_CALLBACKS_FILE_PATH",
                 "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_METRIC_EXPORT_INTERVAL",
                 "OTEL_CALLBACKS_CONSOLE_FORMAT", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
                 "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT",
                 "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


def split_demo_output(out: str) -> tuple[str, list[list[str]]]:
    """(the trees, the metric summary rows split on whitespace); the summary starts at its 'metrics' header."""
    trees, sep, summary = out.partition("\nmetrics  service=")
    assert sep, f"no metric summary in:\n{out}"
    header, *rows = summary.splitlines()
    assert header.startswith("otel-callbacks-demo  on every point: gen_ai.operation.name=chat"), header
    return trees, [row.split() for row in rows]


class TestDemo:
    def test_default_prints_both_trees(self, capsys: pytest.CaptureFixture[str]) -> None:
        """With no options the demo prints the chain and agent traces with models, tokens and the tool error."""
        assert main(["demo"]) == 0
        out = capsys.readouterr().out
        assert out.count("\ntrace ") + out.startswith("trace ") == 2
        assert "└─ explain_chain" in out
        assert "└─ invoke_agent weather_agent" in out
        assert "chat demo-model-1" in out and "model=demo-model-1  tokens in=42 out=21" in out
        assert "execute_tool get_weather" in out and "ERROR ValueError: no weather station in 'Atlantis'" in out
        assert "service=otel-callbacks-demo" in out

    def test_default_prints_metric_summary_after_the_trees(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The summary follows the trees: four GenAI histograms, token sums equal to the demo's usage."""
        assert main(["demo"]) == 0
        trees, rows = split_demo_output(capsys.readouterr().out)
        assert "└─ invoke_agent weather_agent" in trees
        table = {(row[0], row[-1] if row[-1].startswith("gen_ai.token.type=") else ""): row for row in rows}
        assert table[("gen_ai.client.token.usage", "gen_ai.token.type=input")][1:4] == ["{token}", "count=3", "sum=137"]
        assert table[("gen_ai.client.token.usage", "gen_ai.token.type=output")][1:4] == ["{token}", "count=3", "sum=48"]
        assert table[("gen_ai.client.operation.duration", "")][1:3] == ["s", "count=3"]
        assert table[("gen_ai.client.operation.time_to_first_chunk", "")][1:3] == ["s", "count=1"]
        assert table[("gen_ai.client.operation.time_per_output_chunk", "")][1:3] == ["s", "count=9"]
        assert len(rows) == 5

    def test_metrics_none_prints_no_summary(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--metrics none: trees only, and the handler gets no meter provider."""
        assert main(["demo", "--metrics", "none"]) == 0
        out = capsys.readouterr().out
        assert "└─ invoke_agent weather_agent" in out and "gen_ai.client" not in out

    def test_bad_metrics_is_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown --metrics name (file is spans only) exits 2 with the valid names."""
        assert main(["demo", "--metrics", "file"]) == 2
        err = capsys.readouterr().err
        assert "console, otlp, none" in err and "Traceback" not in err

    def test_file_exporter_then_view(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """demo --exporter file writes valid OTLP/JSON lines, still shows the tree, and view renders the same tree."""
        path = tmp_path / "demo.jsonl"
        assert main(["demo", "--exporter", "file", "--file", str(path)]) == 0
        demo = capsys.readouterr()
        assert f"otel-callbacks view {path}" in demo.err
        for line in path.read_text().splitlines():
            assert "resourceSpans" in json.loads(line)
        assert main(["view", str(path)]) == 0
        viewed = capsys.readouterr().out
        trees, _rows = split_demo_output(demo.out)
        strip = [line.split("  ")[0] for line in viewed.splitlines() if not line.startswith("trace ")]
        assert strip == [line.split("  ")[0] for line in trees.splitlines() if not line.startswith("trace ")]

    def test_bad_exporter_is_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown --exporter exits 2 with the valid names, no traceback."""
        assert main(["demo", "--exporter", "jaeger"]) == 2
        err = capsys.readouterr().err
        assert "console, file, otlp, none" in err and "Traceback" not in err

    @pytest.mark.integration
    @pytest.mark.parametrize("receiver_cls", [GrpcReceiver, HttpReceiver])
    def test_otlp_export(self, receiver_cls: type, capsys: pytest.CaptureFixture[str]) -> None:
        """demo --exporter otlp delivers every demo span, and by default the metrics, to a real OTLP receiver over
        gRPC and HTTP; the tree and the metric summary are still printed."""
        with receiver_cls() as receiver:
            protocol = "grpc" if receiver_cls is GrpcReceiver else "http/protobuf"
            assert main(["demo", "--exporter", "otlp", "--endpoint", receiver.endpoint, "--protocol", protocol]) == 0
        names = receiver.span_names()
        assert "invoke_agent weather_agent" in names and names.count("execute_tool get_weather") == 2
        spans = receiver.spans()
        ids = {s.span_id for s in spans}
        assert all(not s.parent_span_id or s.parent_span_id in ids for s in spans)
        tokens = receiver.last_metrics()["gen_ai.client.token.usage"]
        assert sorted(p.sum for p in tokens.histogram.data_points) == [48, 137]
        captured = capsys.readouterr()
        trees, rows = split_demo_output(captured.out)
        assert "invoke_agent weather_agent" in trees and any(row[0] == "gen_ai.client.token.usage" for row in rows)
        assert f"Metrics sent to {receiver.endpoint}" in captured.err


class TestView:
    def test_collector_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A Collector file-exporter line renders with duration, model, tokens and error."""
        path = tmp_path / "c.jsonl"
        path.write_text(COLLECTOR_LINE + "\n")
        assert main(["view", str(path)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == ("trace 5b8efff798038103d269b633813fc60c  2 spans  1.00 s  tokens in=12 out=4  "
                            "service=collected")
        assert lines[1] == "└─ invoke_agent a  1.00 s"
        assert lines[2] == ("   └─ chat gpt-x  500.0 ms  model=gpt-x  tokens in=12 out=4  "
                            "ERROR RateLimitError: slow down")

    def test_malformed_lines_reported_rest_shown(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Bad lines are reported with their numbers on stderr, good ones still print, exit code is 1."""
        path = tmp_path / "mixed.jsonl"
        path.write_text("\n".join([COLLECTOR_LINE, "{not json", "", '{"foo": 1}', OTHER_TRACE_LINE[:-40]]) + "\n")
        assert main(["view", str(path)]) == 1
        captured = capsys.readouterr()
        assert "invoke_agent a" in captured.out
        assert f"{path}:2: invalid JSON" in captured.err
        assert f"{path}:4: not an OTLP/JSON trace request" in captured.err
        assert f"{path}:5: invalid JSON" in captured.err
        assert "3 malformed lines" in captured.err and "Traceback" not in captured.err

    def test_malformed_via_subprocess_has_no_traceback(self, tmp_path: Path) -> None:
        """Run as a real process, a malformed file yields exit 1 and no traceback."""
        path = tmp_path / "bad.jsonl"
        path.write_text('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}\n')
        result = subprocess.run([sys.executable, "-m", "otel_callbacks", "view", str(path)], capture_output=True,
                                text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 1
        assert f"{path}:1: not an OTLP/JSON trace request: traceId 'xyz'" in result.stderr
        assert "Traceback" not in result.stderr

    def test_trace_filter(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--trace keeps only the trace whose id starts with the given prefix (case-insensitive)."""
        path = tmp_path / "two.jsonl"
        path.write_text(COLLECTOR_LINE + "\n" + OTHER_TRACE_LINE + "\n")
        assert main(["view", str(path), "--trace", "5B8EF"]) == 0
        out = capsys.readouterr().out
        assert "trace 5b8efff7" in out and "trace aaaa" not in out

    def test_unknown_trace(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An id that matches nothing exits 1 with a message."""
        path = tmp_path / "one.jsonl"
        path.write_text(COLLECTOR_LINE + "\n")
        assert main(["view", str(path), "--trace", "dead"]) == 1
        assert "no trace id starting with 'dead'" in capsys.readouterr().err

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing file exits 2 with the path in the message."""
        assert main(["view", str(tmp_path / "nope.jsonl")]) == 2
        assert "cannot read" in capsys.readouterr().err

    def test_stdin_and_ascii(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        """'-' reads stdin; --ascii prints only ASCII."""
        monkeypatch.setattr(sys, "stdin", io.StringIO(COLLECTOR_LINE + "\n"))
        assert main(["view", "-", "--ascii"]) == 0
        out = capsys.readouterr().out
        out.encode("ascii")
        assert "`- invoke_agent a" in out

    def test_empty_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An empty file is not an error but says there is nothing to show."""
        path = tmp_path / "empty.jsonl"
        path.write_text("")
        assert main(["view", str(path)]) == 0
        assert "no spans" in capsys.readouterr().err


class TestSendTarget:
    """``send`` posts encoded requests itself, with no SDK exporter to read the OTLP variables: it reads them as the
    official trace exporters do."""

    def test_env_read_as_the_exporters_read_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A base endpoint gets /v1/traces for HTTP, the traces endpoint is used as is, headers are URL-decoded
        key=value pairs, the timeout is in seconds; arguments win."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/prefix/")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,x=1")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
        target = resolve_replay_target(endpoint=None, protocol=None, headers=None)
        assert (target.endpoint, target.headers, target.timeout) == (
            "http://collector:4318/prefix/v1/traces", {"api-key": "a b", "x": "1"}, 3.0)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://full:9999/custom")
        assert resolve_replay_target(endpoint=None, protocol=None, headers=None).endpoint == "http://full:9999/custom"
        target = resolve_replay_target(endpoint="http://arg:4317", protocol="grpc", headers={"k": "v"})
        assert (target.protocol, target.endpoint, target.headers) == ("grpc", "http://arg:4317", {"k": "v"})

    @pytest.mark.parametrize(("name", "value", "expect"), [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317", "an http:// or https:// URL"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-1", "a positive number of seconds"),
    ])
    def test_bad_env_warns_once_and_defaults(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, name: str, value: str, expect: str
    ) -> None:
        """A malformed variable send reads: one warning naming it and its valid values, then the default."""
        monkeypatch.setenv(name, value)
        target = resolve_replay_target(endpoint=None, protocol=None, headers=None)
        assert (target.protocol, target.endpoint, target.timeout) == ("grpc", "http://localhost:4317", 10.0)
        message = one_warning(caplog)
        assert name in message and expect in message


@pytest.mark.integration
class TestSend:
    @pytest.mark.parametrize("receiver_cls", [GrpcReceiver, HttpReceiver])
    def test_replay(self, receiver_cls: type, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """send replays each line as one request; ids, parents and attributes arrive intact."""
        path = tmp_path / "c.jsonl"
        path.write_text(COLLECTOR_LINE + "\n" + OTHER_TRACE_LINE + "\n")
        with receiver_cls() as receiver:
            protocol = "grpc" if receiver_cls is GrpcReceiver else "http/protobuf"
            assert main(["send", str(path), "--endpoint", receiver.endpoint, "--protocol", protocol,
                         "--header", "authorization=Bearer t"]) == 0
        assert len(receiver.requests) == 2
        chat = next(s for s in receiver.spans() if s.trace_id.hex().startswith("5b8e") and s.name == "chat gpt-x")
        assert chat.parent_span_id.hex() == "eee19b7ec3c1b174"
        assert {kv.key: kv.value.int_value for kv in chat.attributes}["gen_ai.usage.input_tokens"] == 12
        assert receiver.headers[0]["authorization"] == "Bearer t"
        assert "Sent 4 spans in 2 requests" in capsys.readouterr().out

    def test_unreachable_backend(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A closed port is reported in one line with exit 1, no traceback."""
        path = tmp_path / "c.jsonl"
        path.write_text(COLLECTOR_LINE + "\n")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        assert main(["send", str(path), "--endpoint", f"http://127.0.0.1:{port}", "--protocol", "http/protobuf"]) == 1
        err = capsys.readouterr().err
        assert "could not reach" in err and "Traceback" not in err


class TestEntryPoints:
    def test_module_help(self) -> None:
        """python -m otel_callbacks --help lists the three commands."""
        result = subprocess.run([sys.executable, "-m", "otel_callbacks", "--help"], capture_output=True, text=True,
                                cwd=ROOT, timeout=60)
        assert result.returncode == 0
        assert all(cmd in result.stdout for cmd in ("demo", "view", "send"))


# --- view's own decoder (cli.otlp_records) against the protobuf decoder that send uses --------------------------

_TRACES = ("5b8efff798038103d269b633813fc60c", "A" * 32)
_KEYS = st.sampled_from(["gen_ai.request.model", "gen_ai.response.model", "gen_ai.usage.input_tokens",
                         "gen_ai.usage.output_tokens", "langchain.usage.input_tokens", "error.type", "service.name",
                         "other", ""])
# Valid values only: a generated request is one a writer could produce, and _mutate then breaks it in one place,
# so the other fields do not already send the whole line to protobuf.
_TEXT = st.text(max_size=4) | st.sampled_from(["é", "😀"])
_U32 = st.sampled_from([0, 2**32 - 1]) | st.integers(0, 2**32 - 1)
_U64 = st.sampled_from([0, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1)
_I64 = st.sampled_from([-(2**63), 2**63 - 1, -5]) | st.integers(-(2**63), 2**63 - 1)
_ANY_VALUE = st.recursive(
    st.one_of(
        _TEXT.map(lambda s: {"stringValue": s}),
        _I64.map(lambda i: {"intValue": str(i)}),
        _I64.map(lambda i: {"intValue": i}),
        st.booleans().map(lambda b: {"boolValue": b}),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda f: {"doubleValue": f}),
        st.just({}),
    ),
    lambda inner: st.lists(inner, max_size=3).map(lambda vs: {"arrayValue": {"values": vs}})
    | st.lists(st.fixed_dictionaries({"key": _KEYS, "value": inner}), max_size=2).map(
        lambda kvs: {"kvlistValue": {"values": kvs}}),
    max_leaves=4,
)
_ATTRIBUTES = st.lists(st.fixed_dictionaries({"key": _KEYS, "value": _ANY_VALUE}), max_size=3)
_HEX16 = st.text("0123456789abcdefABCDEF", min_size=16, max_size=16)
_SPAN = st.fixed_dictionaries(
    {"traceId": st.sampled_from(_TRACES), "spanId": _HEX16, "name": _TEXT, "startTimeUnixNano": _U64.map(str),
     "endTimeUnixNano": _U64 | _U64.map(str), "attributes": _ATTRIBUTES},
    optional={"parentSpanId": _HEX16 | st.sampled_from(["", "0" * 16]), "kind": st.integers(0, 5),
              "flags": _U32, "traceState": _TEXT, "droppedAttributesCount": _U32.map(str),
              "status": st.fixed_dictionaries({}, optional={"code": st.integers(0, 2), "message": _TEXT}),
              "events": st.lists(st.fixed_dictionaries({"timeUnixNano": _U64.map(str), "name": _TEXT},
                                                       optional={"attributes": _ATTRIBUTES}), max_size=2),
              "links": st.lists(st.fixed_dictionaries({"traceId": st.sampled_from(_TRACES), "spanId": _HEX16},
                                                      optional={"attributes": _ATTRIBUTES}), max_size=1)},
)
_REQUEST = st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries(
    {"resource": st.fixed_dictionaries({"attributes": _ATTRIBUTES}),
     "scopeSpans": st.lists(st.fixed_dictionaries({"scope": st.just({"name": "s", "version": "1"}),
                                                   "spans": st.lists(_SPAN, max_size=3)}), max_size=2)}),
    max_size=2)})
# What an edit puts in: any JSON, and the values next to each bound or form the walker checks.
_EDGES = st.sampled_from([2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, -1,
                          10**20, 1.0, 2.5, True])
_ODD_TEXT = st.sampled_from(["\ud83d", "x\udc00", "\ud83d\ude00", "W47/95gDgQPSabYzgT/GDA==", "SPAN_KIND_CLIENT",
                             "1e3", "+5", " 5", "5_0", "٣", "0x1f", "NaN", "Infinity", "", "0" * 16, "a" * 32])
_JSON = st.recursive(st.none() | st.booleans() | _EDGES | _EDGES.map(str) | st.integers() | st.floats() | _TEXT
                     | _ODD_TEXT, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_TEXT, inner, max_size=2),
                     max_leaves=3)


def _mutate(data: st.DataObject, request: dict) -> None:
    """Replace, delete or add one value somewhere in the request (a key may be any OTLP field name)."""
    places: list[tuple[object, object]] = []
    stack: list[object] = [request]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            places.append((node, key))
            stack.append(value)
    if not places:
        return
    node, key = data.draw(st.sampled_from(places))
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        node[key] = data.draw(_near(node[key]) | _JSON)  # type: ignore[index]
    elif action == "delete":
        del node[key]  # type: ignore[attr-defined]
    elif isinstance(node, dict):
        # Not a key with a surrogate: protobuf's upb lookup fails on one with a SystemError, once (see cli.otlp_records)
        name = data.draw(st.sampled_from(sorted(FIELD_NAMES)) | st.just("[ext]") | st.text(max_size=4))
        node[name] = data.draw(_JSON)


def _near(old: object) -> st.SearchStrategy[object]:
    """Values just past what the walker accepts where ``old`` stands: other bounds and spellings of a number, an id
    one character off, a string with a surrogate."""
    if isinstance(old, bool):
        return st.sampled_from([0, 1, "true", None])
    if isinstance(old, int) or (isinstance(old, str) and old.lstrip("-").isdigit()):
        return _EDGES | _EDGES.map(str) | st.sampled_from(["+5", " 5", "5_0", "٣", "1e3", "1.0", "", "-0"])
    if isinstance(old, float):
        return st.sampled_from([float("nan"), float("inf"), 1, "NaN", "1.5", True, 10**400])
    if isinstance(old, str) and old:
        off_by_one = [old[:-1] + "g", old[:-1] + " ", old + "0", old.upper(), old[:-1] + "\ud800"]
        return st.sampled_from(off_by_one) | _ODD_TEXT
    return _JSON


def _shown(rec: SpanRecord) -> SpanRecord:
    return dataclasses.replace(rec, attributes={k: v for k, v in rec.attributes.items() if k in SHOWN_KEYS})


def _outcome(read: Callable[[str], object], line: str) -> object:
    try:
        return read(line)
    except Exception as exc:  # a crash of the protobuf path must be the same crash on view's path
        return (type(exc), str(exc))


def _protobuf_path(line: str) -> object:
    requests, errors = parse_lines([line])
    return [_shown(rec) for request in requests for rec in records_from_request(request)], errors


def _view_path(line: str) -> object:
    return read_records([line])


def _comparable(outcome: object) -> str:
    """Records as text: NaN attributes compare unequal to themselves, their reprs do not; key order is irrelevant."""
    if isinstance(outcome, tuple) and isinstance(outcome[0], list):
        records = [(dataclasses.replace(rec, attributes={}), sorted(rec.attributes.items(), key=lambda kv: kv[0]))
                   for rec in outcome[0]]
        return repr((records, outcome[1]))
    return repr(outcome)


def _kv(key: str, value: dict) -> dict:
    return {"key": key, "value": value}


# One line with every field of every message the walker checks, each holding a valid value.
_T, _S0, _S1 = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "eee19b7ec3c1b175"
_RICH = {"resourceSpans": [{
    "resource": {"attributes": [_kv("service.name", {"stringValue": "svc"})], "droppedAttributesCount": 0},
    "schemaUrl": "https://x",
    "scopeSpans": [{
        "scope": {"name": "s", "version": "1", "attributes": [_kv("a", {"boolValue": True})],
                  "droppedAttributesCount": 0},
        "schemaUrl": "u",
        "spans": [{
            "traceId": _T, "spanId": _S1, "parentSpanId": _S0, "traceState": "k=v", "flags": 256, "name": "chat m",
            "kind": 3, "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000,
            "attributes": [
                _kv("gen_ai.request.model", {"stringValue": "m"}), _kv("gen_ai.usage.input_tokens", {"intValue": "12"}),
                _kv("gen_ai.usage.output_tokens", {"intValue": 4}), _kv("error.type", {"stringValue": "E"}),
                _kv("tags", {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "-3"}]}}),
                _kv("map", {"kvlistValue": {"values": [_kv("k", {"doubleValue": 0.5})]}}),
                _kv("langchain.usage.input_tokens", {"arrayValue": {"values": [{"boolValue": False}]}}),
            ],
            "droppedAttributesCount": 0,
            "events": [{"timeUnixNano": "1544712660500000000", "name": "e", "attributes": [_kv("i", {"intValue": "1"})],
                        "droppedAttributesCount": 0}],
            "droppedEventsCount": 0,
            "links": [{"traceId": _T, "spanId": _S0, "traceState": "", "attributes": [], "droppedAttributesCount": 0,
                       "flags": 1}],
            "droppedLinksCount": 0,
            "status": {"code": 2, "message": "boom"},
        }],
    }],
}]}
_EDGE_VALUES: list[object] = [
    None, True, False, 0, -1, 1.5, 1.0, float("nan"), float("inf"), 10**400, "", "x", "é", "\ud800", "+5", " 5", "5_0",
    "٣", "1e3", "1.0", "-0", "NaN", "Infinity", "W47/95gDgQPSabYzgT/GDA==", "SPAN_KIND_CLIENT", "STATUS_CODE_ERROR",
    [], {}, [None], {"stringValue": "s"},
    *(v for bound in (2**31, 2**32, 2**63, 2**64) for v in (bound - 1, bound, str(bound - 1), str(bound))),
    -(2**63), -(2**63) - 1, str(-(2**63)), str(-(2**63) - 1),
]


def _places(node: object) -> list[tuple[object, object]]:
    """Every (container, key or index) in a parsed line."""
    found: list[tuple[object, object]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, value in pairs:
            found.append((item, key))
            stack.append(value)
    return found


def _edge_edits() -> list[tuple[object, ...]]:
    edits: list[tuple[object, ...]] = []
    for place, (node, key) in enumerate(_places(_RICH)):
        old = node[key]  # type: ignore[index]
        near = [old[:-1] + "g", old.upper(), old + "0"] if isinstance(old, str) and old else []
        edits.extend((place, "set", value) for value in (*_EDGE_VALUES, *near))
    return edits


def _key_edits() -> list[tuple[object, ...]]:
    edits: list[tuple[object, ...]] = []
    for place, (node, key) in enumerate(_places(_RICH)):
        edits.append((place, "delete"))
        if isinstance(node[key], dict):  # type: ignore[index]
            edits.extend((place, "add", name, value)
                         for name in (*sorted(FIELD_NAMES), "[ext]", "unknown") for value in (None, 1, "x"))
    return edits


def _disagreements(edits: list[tuple[object, ...]]) -> list[str]:
    """The edited copies of _RICH that view and send read differently (at most five, for the failure message)."""
    differ = []
    for place, action, *args in edits:
        request = copy.deepcopy(_RICH)
        node, key = _places(request)[place]  # type: ignore[index]
        if action == "set":
            node[key] = args[0]  # type: ignore[index]
        elif action == "delete":
            del node[key]  # type: ignore[attr-defined]
        else:
            node[key][args[0]] = args[1]  # type: ignore[index]
        line = json.dumps(request)
        if _comparable(_outcome(_view_path, line)) != _comparable(_outcome(_protobuf_path, line)):
            differ.append(f"{action} {args!r} at {key!r}: {line}")
            if len(differ) == 5:
                break
    return differ


class TestViewDecoding:
    """``view`` decodes lines itself; it must take and refuse exactly the lines the protobuf decoder does."""

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(request=_REQUEST, data=st.data(), ascii_only=st.booleans())
    def test_same_records_and_errors_as_protobuf(self, request: dict, data: st.DataObject, ascii_only: bool) -> None:
        """For generated requests with up to two random edits, view's reader and send's decoder agree: the same
        records (the shown attributes) or the same error message for the line."""
        request = copy.deepcopy(request)  # st.just() values are shared between examples; edits must not leak
        edits = data.draw(st.integers(0, 2))
        for _ in range(edits):
            _mutate(data, request)
        line = json.dumps(request, ensure_ascii=ascii_only)
        if not edits:  # what writers produce is decoded by the walker itself, not handed to protobuf
            records_from_data(json.loads(line))
        assert _comparable(_outcome(_view_path, line)) == _comparable(_outcome(_protobuf_path, line))

    def test_rich_line_is_decoded_by_the_walker(self) -> None:
        """A line using every checked field is decoded without protobuf, to the records protobuf gives."""
        line = json.dumps(_RICH)
        assert records_from_data(json.loads(line)) == _protobuf_path(line)[0]

    def test_every_value_swapped_for_an_edge_value(self) -> None:
        """Each value of the rich line replaced in turn by each bound, spelling or type the walker tells apart:
        view and send read every such line the same way."""
        assert _disagreements(_edge_edits()) == []

    def test_every_field_name_added_and_every_key_removed(self) -> None:
        """Any OTLP field name (either spelling), an extension-like or unknown key added to each object of the
        line, or any key removed: view and send agree."""
        assert _disagreements(_key_edits()) == []

    @settings(max_examples=100, deadline=None)
    @given(request=_REQUEST)
    def test_trace_prefix_keeps_that_trace_only(self, request: dict) -> None:
        """With a prefix, the reader keeps exactly the spans of the matching trace that the full read gives."""
        line = json.dumps(request)
        full, errors = read_records([line])
        assume(not errors)
        picked, _ = read_records([line], trace_prefix="5b8e")
        assert picked == [rec for rec in full if rec.trace_id.startswith("5b8e")]

    def test_file_exporter_lines_take_no_fallback(self, tmp_path: Path) -> None:
        """Lines the file exporter writes (events, links, arrays, floats, bools, non-ASCII, errors) are decoded by
        the walker itself, to the records the protobuf decoder gives."""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.trace import Link, Status, StatusCode

        path = tmp_path / "t.jsonl"
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(path)))
        tracer = provider.get_tracer("t")
        root = tracer.start_span("root", attributes={"tags": ["a", "é"], "ratio": 0.5, "ok": True})
        chat = tracer.start_span("chat m", context=trace.set_span_in_context(root),
                                 links=[Link(root.get_span_context(), {"n": 1})],
                                 attributes={"gen_ai.request.model": "m😀", "gen_ai.usage.input_tokens": 3,
                                             "gen_ai.usage.output_tokens": -4})
        chat.add_event("first token", {"i": 1})
        chat.set_status(Status(StatusCode.ERROR, "boom"))
        chat.set_attribute("error.type", "ValueError")
        chat.end()
        root.end()
        provider.shutdown()
        lines = path.read_text(encoding="utf-8").splitlines()
        records = [rec for line in lines for rec in records_from_data(json.loads(line))]
        assert len(records) == 2 and records == _protobuf_path(lines[0])[0] + _protobuf_path(lines[1])[0]

    def test_walker_knows_every_field_of_the_installed_proto(self) -> None:
        """Each field of every OTLP trace message, in both spellings, is either checked by the walker or makes it
        hand the line to protobuf; the fields it checks exist under those names (a proto upgrade fails here)."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        seen: dict[str, object] = {}
        stack = [ExportTraceServiceRequest.DESCRIPTOR]
        while stack:
            message = stack.pop()
            if message.full_name in seen:
                continue
            seen[message.full_name] = message
            for field in message.fields:
                assert {field.json_name, field.name} <= FIELD_NAMES, (message.full_name, field.name)
                if field.message_type is not None:
                    stack.append(field.message_type)
            handled = HANDLED_FIELDS.get(message.full_name, frozenset())
            assert handled <= {field.json_name for field in message.fields}, message.full_name
        assert set(HANDLED_FIELDS) <= set(seen)

    def test_trace_skips_checking_lines_without_the_trace(self, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
        """--trace still reports lines that are not JSON, but not a bad field in a line of other traces only; the
        full view reports both."""
        bad_field = OTHER_TRACE_LINE.replace('"startTimeUnixNano": "1544712660000000000"',
                                             '"startTimeUnixNano": "soon"')
        assert bad_field != OTHER_TRACE_LINE
        path = tmp_path / "mixed.jsonl"
        path.write_text("\n".join([COLLECTOR_LINE, "{not json", bad_field]) + "\n")
        assert main(["view", str(path), "--trace", "5b8e"]) == 1
        err = capsys.readouterr().err
        assert f"{path}:2: invalid JSON" in err and f"{path}:3:" not in err and "1 malformed line skipped" in err
        assert main(["view", str(path)]) == 1
        err = capsys.readouterr().err
        assert f"{path}:3: not an OTLP/JSON trace request: Failed to parse resourceSpans field" in err
        assert "startTimeUnixNano" in err

    def test_trace_in_a_base64_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Protobuf-canonical files (base64 ids) are read, and --trace finds their traces by the hex id."""
        data = json.loads(COLLECTOR_LINE)
        for span in data["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            for key in ("traceId", "spanId", "parentSpanId"):
                if key in span:
                    span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
        path = tmp_path / "b64.jsonl"
        path.write_text(json.dumps(data) + "\n" + OTHER_TRACE_LINE + "\n")
        assert main(["view", str(path), "--trace", "5b8eff"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("trace 5b8efff798038103d269b633813fc60c  2 spans") and "trace aaaa" not in out
        assert "   └─ chat gpt-x  500.0 ms  model=gpt-x  tokens in=12 out=4" in out

    def test_same_output_as_the_protobuf_records(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The printed trees equal the rendering of the protobuf decoder's full records (all attributes)."""
        path = tmp_path / "demo.jsonl"
        assert main(["demo", "--exporter", "file", "--file", str(path), "--metrics", "none"]) == 0
        capsys.readouterr()
        assert main(["view", str(path)]) == 0
        requests, _errors = parse_lines(path.read_text(encoding="utf-8").splitlines())
        records = [rec for request in requests for rec in records_from_request(request)]
        assert capsys.readouterr().out == "\n".join(render_traces(build_traces(records))) + "\n"
