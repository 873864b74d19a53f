"""Tests for the otel-callbacks CLI: demo, view and send."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from otel_callbacks.cli.commands import main
from otel_callbacks.setup.env import resolve_replay_target
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
