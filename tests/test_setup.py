"""Tests for setup_tracing: env precedence and warnings, provider wiring, OTLP export, bounded exit."""

from __future__ import annotations

import gc
import io
import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_callbacks.setup.env import resolve_settings
from otel_callbacks.setup.lifecycle import shutdown_bounded
from otel_callbacks.setup.tracing import setup_tracing
from tests._otlp_receiver import GrpcReceiver, HttpReceiver
from tests.support import one_warning

ROOT = Path(__file__).resolve().parents[1]
_OTEL_VARS = [
    "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_CALLBACKS_FILE_PATH",
    "OTEL_CALLBACKS_CONSOLE_FORMAT", "OTEL_CALLBACKS_EXIT_TIMEOUT", "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_METRICS_EXPORTER",  # else setup_tracing(set_global=True) would also set up metrics from the shell
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without OTEL_* settings leaking in from the shell."""
    for name in _OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


class TestExporterSelection:
    def test_default_is_console(self) -> None:
        """With nothing set the console exporter is used; OTLP would be gRPC, with nothing passed to the exporter
        (its own defaults apply: localhost:4317, 10 s)."""
        settings = resolve_settings()
        assert settings.exporters == ("console",)
        assert (settings.protocol, settings.endpoint, settings.headers, settings.timeout) == ("grpc", None, None, None)

    def test_env_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_TRACES_EXPORTER is a comma list, case and spaces ignored, duplicates dropped."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", " Console, file ,console")
        assert resolve_settings().exporters == ("console", "file")

    def test_argument_beats_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An explicit exporters argument wins over OTEL_TRACES_EXPORTER."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        assert resolve_settings(exporters=["file"]).exporters == ("file",)

    def test_none_disables(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_TRACES_EXPORTER=none means no exporter at all."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
        assert resolve_settings().exporters == ()

    def test_bad_env_value_warns_and_defaults(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A typo gives one warning naming the variable and the valid values, then the console default."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "consle")
        assert resolve_settings().exporters == ("console",)
        message = one_warning(caplog)
        assert "OTEL_TRACES_EXPORTER" in message and "console, file, otlp, none" in message

    def test_bad_entry_dropped(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """Unknown names in a list are dropped with a warning; the valid ones stay."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,jaeger")
        assert resolve_settings().exporters == ("otlp",)
        assert "'otlp,jaeger'" in one_warning(caplog)

    def test_bad_argument_raises(self) -> None:
        """An unknown exporter name passed in code is a ValueError."""
        with pytest.raises(ValueError, match="jaeger"):
            resolve_settings(exporters=["jaeger"])

    def test_distro_alias_sets_protocol(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """opentelemetry-distro names (otlp_proto_http) select otlp with that protocol."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp_proto_http")
        settings = resolve_settings()
        assert (settings.exporters, settings.protocol) == (("otlp",), "http/protobuf")

    def test_file_path_and_endpoint_imply_exporters(self) -> None:
        """file_path= / endpoint= without exporters= turn those exporters on instead of console."""
        assert resolve_settings(file_path="x.jsonl").exporters == ("file",)
        assert resolve_settings(endpoint="http://h:4317", file_path="x").exporters == ("file", "otlp")

    def test_file_path_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_CALLBACKS_FILE_PATH sets the file path; the argument still wins."""
        monkeypatch.setenv("OTEL_CALLBACKS_FILE_PATH", "/tmp/a.jsonl")
        assert resolve_settings().file_path == "/tmp/a.jsonl"
        assert resolve_settings(file_path="b.jsonl").file_path == "b.jsonl"
        monkeypatch.delenv("OTEL_CALLBACKS_FILE_PATH")
        assert resolve_settings().file_path == "traces.jsonl"


class TestEndpointAndProtocol:
    def test_env_endpoint_port_4318_means_http(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The port of the endpoint the exporter will read (the traces variable before the base one) picks the
        protocol; the endpoint itself is left for the exporter to read."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/prefix/")
        assert (resolve_settings().protocol, resolve_settings().endpoint) == ("http/protobuf", None)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://collector:4317/custom")
        assert resolve_settings().protocol == "grpc"

    def test_env_endpoint_is_not_ours_to_correct(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A schemeless env endpoint is not replaced by localhost or warned about here: the exporter reads it."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")
        settings = resolve_settings()
        assert (settings.protocol, settings.endpoint) == ("grpc", None)
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []

    def test_argument_endpoint_beats_env_and_infers_http(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """endpoint= wins over env; port 4318 means OTLP/HTTP when no protocol is set."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317")
        settings = resolve_settings(endpoint="http://arg:4318")
        assert (settings.protocol, settings.endpoint) == ("http/protobuf", "http://arg:4318/v1/traces")

    def test_full_signal_url_argument_not_doubled(self) -> None:
        """A full /v1/traces URL given as endpoint= is not extended again."""
        assert resolve_settings(endpoint="http://h:4318/v1/traces").endpoint == "http://h:4318/v1/traces"

    def test_bad_argument_endpoint_raises(self) -> None:
        """A malformed endpoint argument is a ValueError."""
        with pytest.raises(ValueError, match="endpoint"):
            resolve_settings(endpoint="collector:4317")

    def test_bad_protocol_env_warns(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """http/json is rejected with a warning listing grpc and http/protobuf."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
        assert resolve_settings().protocol == "grpc"
        message = one_warning(caplog)
        assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" in message and "grpc, http/protobuf" in message

    def test_bad_protocol_argument_raises(self) -> None:
        """protocol= must be grpc or http/protobuf."""
        with pytest.raises(ValueError, match="protocol"):
            resolve_settings(protocol="http")


class TestOtherEnv:
    def test_otlp_values_only_from_arguments(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Headers and timeout in env stay the exporter's to read; only arguments become settings."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
        assert (resolve_settings().headers, resolve_settings().timeout) == (None, None)
        assert (resolve_settings(headers={"k": "v"}, timeout=2).headers, resolve_settings(timeout=2).timeout) == (
            {"k": "v"}, 2)

    def test_bsp_env_reaches_the_batch_processor(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_BSP_* are the batch processor's own: with a queue of 10 and batches of 5, an exporter that is busy
        while 100 spans end receives at most 10 + 5 of them (the SDK default queue would keep all 100)."""
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "10")
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5")
        exporter = Gated()
        p = setup_tracing([exporter], set_global=False)
        end_spans(p, 100)
        exporter.answering.set()
        p.shutdown()
        assert 0 < exporter.received <= 15

    def test_bsp_env_the_processor_refuses_does_not_stop_setup(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A batch size above the queue size (the SDK raises ValueError for it) warns once, naming the variables,
        and the processor's defaults are used instead: every span still arrives."""
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "10")
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100")
        exporter = Gated()
        p = setup_tracing([exporter], set_global=False)
        assert "OTEL_BSP_" in one_warning(caplog)
        end_spans(p, 100)
        exporter.answering.set()
        p.shutdown()
        assert exporter.received == 100

    def test_console_format_env(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """OTEL_CALLBACKS_CONSOLE_FORMAT picks json; a bad value warns and keeps tree."""
        monkeypatch.setenv("OTEL_CALLBACKS_CONSOLE_FORMAT", "JSON")
        assert resolve_settings().console_format == "json"
        monkeypatch.setenv("OTEL_CALLBACKS_CONSOLE_FORMAT", "pretty")
        assert resolve_settings().console_format == "tree"
        assert "tree, json" in one_warning(caplog)

    def test_exit_timeout_env(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        """OTEL_CALLBACKS_EXIT_TIMEOUT is milliseconds; a bad value warns and uses 5000."""
        monkeypatch.setenv("OTEL_CALLBACKS_EXIT_TIMEOUT", "100")
        assert resolve_settings().exit_timeout_millis == 100
        monkeypatch.setenv("OTEL_CALLBACKS_EXIT_TIMEOUT", "soon")
        assert resolve_settings().exit_timeout_millis == 5000
        assert "OTEL_CALLBACKS_EXIT_TIMEOUT" in one_warning(caplog)


class TestProvider:
    def test_resource_precedence(
        self, monkeypatch: pytest.MonkeyPatch, providers: list[TracerProvider], caplog: pytest.LogCaptureFixture
    ) -> None:
        """service_name= beats OTEL_SERVICE_NAME; OTEL_RESOURCE_ATTRIBUTES applies; a bad pair warns once."""
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=dev,oops")
        providers.append(p := setup_tracing("none", service_name="from-arg", resource_attributes={"team": "ai"},
                                            set_global=False))
        attrs = p.resource.attributes
        assert (attrs["service.name"], attrs["deployment.environment"], attrs["team"]) == ("from-arg", "dev", "ai")
        assert "OTEL_RESOURCE_ATTRIBUTES" in one_warning(caplog)
        providers.append(p2 := setup_tracing("none", set_global=False))
        assert p2.resource.attributes["service.name"] == "from-env"

    def test_console_tree_prints_on_root_end(self, providers: list[TracerProvider]) -> None:
        """The console exporter prints synchronously, as a tree, when the root span ends."""
        out = io.StringIO()
        providers.append(p := setup_tracing(["console"], console_out=out, set_global=False))
        tracer = p.get_tracer("t")
        with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
            pass
        assert "└─ root" in out.getvalue() and "   └─ child" in out.getvalue()

    def test_console_json_format(self, providers: list[TracerProvider]) -> None:
        """console_format='json' keeps the SDK's raw JSON output available."""
        out = io.StringIO()
        providers.append(p := setup_tracing(["console"], console_format="json", console_out=out, set_global=False))
        with p.get_tracer("t").start_as_current_span("root"):
            pass
        assert json.loads(out.getvalue())["name"] == "root"

    def test_file_exporter_batches_and_flushes_on_shutdown(self, tmp_path: Path) -> None:
        """The file exporter is batched: nothing before the flush, the trace on disk after shutdown."""
        path = tmp_path / "t.jsonl"
        p = setup_tracing(["file"], file_path=path, set_global=False)
        with p.get_tracer("t").start_as_current_span("root"):
            pass
        assert not path.exists() or path.read_text() == ""
        p.shutdown()
        assert '"name":"root"' in path.read_text()

    def test_exporter_instances_accepted(self, providers: list[TracerProvider]) -> None:
        """SpanExporter objects can be mixed into exporters= (here unbatched)."""
        memory = InMemorySpanExporter()
        providers.append(p := setup_tracing([memory], batch=False, set_global=False))
        with p.get_tracer("t").start_as_current_span("root"):
            pass
        assert [s.name for s in memory.get_finished_spans()] == ["root"]

    def test_broken_grpc_env_keeps_the_exporter(
        self, monkeypatch: pytest.MonkeyPatch, providers: list[TracerProvider], caplog: pytest.LogCaptureFixture
    ) -> None:
        """The gRPC exporter raises on a bad timeout variable; set-up warns once naming it and keeps the exporter
        (tests/test_setup_env.py checks every such variable end to end)."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "abc")
        providers.append(p := setup_tracing(["otlp"], protocol="grpc", set_global=False))
        message = one_warning(caplog)
        assert "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" in message and "continuing without it" not in message
        assert p.force_flush(timeout_millis=100)  # a tracer with a processor; nothing pending

    def test_shutdown_runs_once(self) -> None:
        """A second shutdown (user call, then our exit hook) does not shut exporters down twice."""
        calls: list[str] = []

        class Counting(InMemorySpanExporter):
            def shutdown(self) -> None:
                calls.append("shutdown")

        p = setup_tracing([Counting()], set_global=False)
        p.shutdown()
        p.shutdown()
        assert calls == ["shutdown"]

    def test_shutdown_bounded_gives_up(self, caplog: pytest.LogCaptureFixture) -> None:
        """A hanging exporter cannot hold shutdown longer than the bound; the give-up is logged."""

        class Hanging(SpanExporter):
            def export(self, spans: object) -> SpanExportResult:
                time.sleep(5)
                return SpanExportResult.SUCCESS

        p = setup_tracing([Hanging()], set_global=False)
        with p.get_tracer("t").start_as_current_span("root"):
            pass
        start = time.monotonic()
        assert shutdown_bounded(p, 200) is False
        assert time.monotonic() - start < 2
        assert "Gave up flushing spans after 200 ms" in caplog.text


@pytest.mark.integration
class TestOtlpExport:
    def test_grpc_spans_arrive_with_parents_and_headers(self) -> None:
        """Spans sent over OTLP/gRPC reach a real receiver with names, parent ids and our headers."""
        with GrpcReceiver() as receiver:
            p = setup_tracing(["otlp"], endpoint=receiver.endpoint, headers={"X-Api-Key": "s3cret"},
                              service_name="svc", set_global=False)
            tracer = p.get_tracer("t")
            with tracer.start_as_current_span("root") as root, tracer.start_as_current_span("child"):
                pass
            p.shutdown()
            spans = {s.name: s for s in receiver.spans()}
            assert set(spans) == {"root", "child"}
            assert spans["child"].parent_span_id.hex() == f"{root.get_span_context().span_id:016x}"
            assert receiver.headers[0]["x-api-key"] == "s3cret"
            resource = receiver.requests[0].resource_spans[0].resource.attributes
            assert {kv.key: kv.value.string_value for kv in resource}["service.name"] == "svc"

    @pytest.mark.parametrize("prefix", ["", "/otlp/"])
    def test_http_base_endpoint_from_env(self, monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
        """OTLP/HTTP with a base endpoint in env (read by the exporter) posts to {base}/v1/traces."""
        with HttpReceiver() as receiver:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint + prefix)
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
            p = setup_tracing(set_global=False)
            with p.get_tracer("t").start_as_current_span("root"):
                pass
            p.shutdown()
            assert receiver.span_names() == ["root"]
            assert receiver.paths == [f"{prefix.rstrip('/')}/v1/traces"]

    def test_traces_endpoint_from_env_used_as_is(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is a full URL, used unchanged, and beats the base variable."""
        with HttpReceiver() as receiver, socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{closed.getsockname()[1]}")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint + "/custom")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            p = setup_tracing(["otlp"], set_global=False)
            with p.get_tracer("t").start_as_current_span("root"):
                pass
            p.shutdown()
            assert (receiver.span_names(), receiver.paths) == (["root"], ["/custom"])

    def test_grpc_endpoint_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With no protocol set, gRPC is used and the exporter takes its endpoint from OTEL_EXPORTER_OTLP_ENDPOINT."""
        with GrpcReceiver() as receiver:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
            p = setup_tracing(["otlp"], set_global=False)
            with p.get_tracer("t").start_as_current_span("root"):
                pass
            p.shutdown()
            assert receiver.span_names() == ["root"]

    @pytest.mark.parametrize("receiver_cls", [GrpcReceiver, HttpReceiver])
    def test_env_headers_arrive(self, monkeypatch: pytest.MonkeyPatch, receiver_cls: type[GrpcReceiver | HttpReceiver]
                                ) -> None:
        """OTEL_EXPORTER_OTLP_HEADERS, read by the exporter: key=value pairs, URL-decoded, a malformed entry
        skipped; the traces variable beats the generic one."""
        with receiver_cls() as receiver:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "team=generic")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=a%20b,broken,x=1")
            protocol = "grpc" if receiver_cls is GrpcReceiver else "http/protobuf"
            p = setup_tracing(["otlp"], endpoint=receiver.endpoint, protocol=protocol, set_global=False)
            with p.get_tracer("t").start_as_current_span("root"):
                pass
            p.shutdown()
        sent = receiver.headers[0]
        assert (sent["api-key"], sent["x"]) == ("a b", "1")
        assert "team" not in sent and "broken" not in sent

    @pytest.mark.parametrize(("env", "timeout"), [
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "30", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "0.5"}, None),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "30"}, 0.5),
    ], ids=["traces-variable", "argument"])
    def test_request_timeout_reaches_the_exporter(
        self, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], timeout: float | None
    ) -> None:
        """The traces timeout variable beats the generic one, and timeout= beats both: against a backend that never
        answers, shutdown returns well within the 30 s the generic variable asks for."""
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            p = setup_tracing(["otlp"], endpoint=f"http://127.0.0.1:{server.getsockname()[1]}",
                              protocol="http/protobuf", timeout=timeout, set_global=False)
            with p.get_tracer("t").start_as_current_span("root"):
                pass
            start = time.monotonic()
            p.shutdown()
            assert time.monotonic() - start < 10


class Gated(SpanExporter):
    """Counts the spans it is handed; each export waits until ``answering`` is set, like a collector that does not
    answer yet."""

    def __init__(self) -> None:
        self.answering = threading.Event()
        self.received = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.received += len(spans)
        self.answering.wait(30)
        return SpanExportResult.SUCCESS


def end_spans(provider: TracerProvider, count: int) -> None:
    tracer = provider.get_tracer("t")
    for _ in range(count):
        tracer.start_span("s").end()


def run_script(code: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)


class TestProcessLifecycle:
    def test_global_install_once(self) -> None:
        """set_global installs the provider; a second call warns and leaves the first in place."""
        result = run_script("""
            from opentelemetry import trace
            from otel_callbacks.setup.tracing import setup_tracing
            first = setup_tracing("none")
            assert trace.get_tracer_provider() is first
            second = setup_tracing("none")
            assert trace.get_tracer_provider() is first
        """)
        assert result.returncode == 0, result.stderr
        assert "already installed" in result.stderr

    def test_spans_flushed_at_exit(self, tmp_path: Path) -> None:
        """Batched spans still pending at interpreter exit are written by the exit hook."""
        path = tmp_path / "t.jsonl"
        result = run_script(f"""
            from otel_callbacks.setup.tracing import setup_tracing
            p = setup_tracing(["file"], file_path={str(path)!r})
            with p.get_tracer("t").start_as_current_span("pending-at-exit"):
                pass
        """, env={"OTEL_BSP_SCHEDULE_DELAY": "600000"})
        assert result.returncode == 0, result.stderr
        assert "pending-at-exit" in path.read_text()

    def test_exit_bounded_with_unresponsive_backend(self) -> None:
        """A backend that accepts but never answers cannot keep the process alive past the exit bound."""
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
            start = time.monotonic()
            result = run_script(f"""
                from otel_callbacks.setup.tracing import setup_tracing
                p = setup_tracing(["otlp"], endpoint={endpoint!r}, protocol="http/protobuf", timeout=30)
                with p.get_tracer("t").start_as_current_span("root"):
                    pass
            """, env={"OTEL_CALLBACKS_EXIT_TIMEOUT": "500"})
            elapsed = time.monotonic() - start
        assert result.returncode == 0, result.stderr
        assert "Gave up flushing spans after 500 ms" in result.stderr
        assert elapsed < 20

    def test_exit_flush_starts_no_thread_at_exit(self) -> None:
        """The exit flush keeps its bound where threads cannot be started at exit (Python 3.12+ refuses them in
        atexit hooks): spans and metrics to a backend that never answers, each given up after its 500 ms."""
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
            start = time.monotonic()
            result = run_script(f"""
                import atexit, threading
                from opentelemetry import metrics
                from otel_callbacks.setup.tracing import setup_tracing
                p = setup_tracing(["otlp"], endpoint={endpoint!r}, protocol="http/protobuf", timeout=30, metrics=True)
                with p.get_tracer("t").start_as_current_span("root"):
                    metrics.get_meter("t").create_counter("calls").add(1)

                def refuse_threads():  # what Python 3.12+ does once the interpreter is finalizing
                    def start(self):
                        raise RuntimeError("can't create new thread at interpreter shutdown")
                    threading.Thread.start = start

                atexit.register(refuse_threads)  # runs before our exit flush: atexit is last-in, first-out
            """, env={"OTEL_CALLBACKS_EXIT_TIMEOUT": "500"})
            elapsed = time.monotonic() - start
        assert result.returncode == 0, result.stderr
        assert "Gave up flushing spans after 500 ms" in result.stderr
        assert "Gave up flushing metrics after 500 ms" in result.stderr
        assert elapsed < 20

    def test_forked_child_flushes_at_its_exit(self, tmp_path: Path) -> None:
        """A child forked after set-up has an exit flush of its own: its pending spans reach the file."""
        path = tmp_path / "t.jsonl"
        result = run_script(f"""
            import os
            from otel_callbacks.setup.tracing import setup_tracing
            p = setup_tracing(["file"], file_path={str(path)!r})
            pid = os.fork()
            if pid == 0:
                with p.get_tracer("t").start_as_current_span("pending-in-child"):
                    pass
            else:
                assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        """, env={"OTEL_BSP_SCHEDULE_DELAY": "600000", "OTEL_CALLBACKS_EXIT_TIMEOUT": "10000"})
        assert result.returncode == 0, result.stderr
        assert "Gave up" not in result.stderr
        assert "pending-in-child" in path.read_text()

    def test_dropped_provider_is_not_kept_for_the_exit_flush(self) -> None:
        """The exit flush holds its provider weakly: a provider the program drops is collected and its idle
        flusher thread ends with it."""
        before = set(threading.enumerate())
        provider = setup_tracing("none", set_global=False)
        (flusher,) = [t for t in threading.enumerate() if t not in before and t.name == "otel-callbacks-exit-flush"]
        del provider
        gc.collect()
        flusher.join(10)
        assert not flusher.is_alive()
