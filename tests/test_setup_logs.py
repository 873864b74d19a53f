"""setup_tracing's LoggerProvider for content events: when it is built, where its records go (console, file, OTLP
over gRPC and HTTP), when it is installed globally, and that exit, SIGTERM, ``flush_and_shutdown``, a bounded
shutdown and a fork all cover it.

The handler does not emit events yet here: each test emits a ``gen_ai.client.inference.operation.details`` record
itself through the provider set-up built, inside a span, and checks that it arrives tied to that span.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_callbacks import _config
from otel_callbacks.setup.log_provider import BoundedLoggerProvider
from otel_callbacks.setup.logs import (
    InMemoryLogRecordExporter,
    LogRecord,
    LogRecordExporter,
    LogRecordExportResult,
)
from otel_callbacks.setup.logs_env import resolve_logs_settings
from otel_callbacks.setup.tracing import BoundedTracerProvider, setup_tracing
from tests._otlp_logs_receiver import GrpcLogsReceiver, HttpLogsReceiver
from tests.test_setup import run_script
from tests.test_signals import _lines_until, started

ROOT = Path(__file__).resolve().parents[1]
EVENT = "gen_ai.client.inference.operation.details"
CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_VARS = [
    CAPTURE, "OTEL_TRACES_EXPORTER", "OTEL_LOGS_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    "OTEL_CALLBACKS_FILE_PATH", "OTEL_CALLBACKS_LOGS_FILE_PATH", "OTEL_CALLBACKS_CONSOLE_FORMAT",
    "OTEL_CALLBACKS_EXIT_TIMEOUT", "OTEL_BLRP_SCHEDULE_DELAY", "OTEL_BLRP_MAX_QUEUE_SIZE", "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
]
BODY = {"gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without OTEL_* settings from the shell."""
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)


def emit_in_span(provider: BoundedTracerProvider) -> tuple[str, str]:
    """Emit one event record inside a span through ``provider.logger_provider``; the span's (trace id, span id)."""
    assert provider.logger_provider is not None
    with provider.get_tracer("test").start_as_current_span("chat m") as span:
        provider.logger_provider.get_logger("test").emit(
            LogRecord(event_name=EVENT, body=BODY, attributes={"gen_ai.operation.name": "chat"}))
        context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def file_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [record for line in path.read_text().splitlines() for rl in json.loads(line)["resourceLogs"]
            for sl in rl["scopeLogs"] for record in sl["logRecords"]]


class TestCaptureMode:
    @pytest.mark.parametrize(("raw", "mode"), [
        (None, "NO_CONTENT"), ("", "NO_CONTENT"), ("false", "NO_CONTENT"), ("NO_CONTENT", "NO_CONTENT"),
        ("true", "SPAN_ONLY"), ("1", "SPAN_ONLY"), ("span_only", "SPAN_ONLY"), ("EVENT_ONLY", "EVENT_ONLY"),
        ("Span_And_Event", "SPAN_AND_EVENT"),
    ])
    def test_variable(self, monkeypatch: pytest.MonkeyPatch, raw: str | None, mode: str) -> None:
        """The variable's booleans and util-genai names map to the four modes; content is on in every mode but one."""
        if raw is not None:
            monkeypatch.setenv(CAPTURE, raw)
        assert _config.capture_mode() == mode
        assert _config.capture_content(None) is (mode != "NO_CONTENT")

    def test_explicit_true_takes_the_variables_mode(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """capture_content=True turns content on where the variable says it goes (else on spans)."""
        monkeypatch.setenv(CAPTURE, "EVENT_ONLY")
        assert _config.capture_mode(True) == "EVENT_ONLY"
        monkeypatch.setenv(CAPTURE, "false")
        assert _config.capture_mode(True) == "SPAN_ONLY"
        assert _config.capture_mode(False) == "NO_CONTENT"

    def test_explicit_name(self) -> None:
        """A mode name is taken in any case; an unknown one raises."""
        assert _config.capture_mode("span_and_event") == "SPAN_AND_EVENT"
        with pytest.raises(ValueError, match="EVENT_ONLY"):
            _config.capture_mode("events")

    def test_bad_variable_warns_once_unless_told_not_to(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A typo warns, naming the variable, and keeps content off; warn=False (set-up's look) says nothing."""
        monkeypatch.setenv(CAPTURE, "EVENTS")
        assert _config.capture_mode(warn=False) == "NO_CONTENT"
        assert caplog.records == []
        assert _config.capture_mode() == "NO_CONTENT"
        assert [r.getMessage() for r in caplog.records if CAPTURE in r.getMessage()] != []


class TestWhenBuilt:
    @pytest.mark.parametrize(("raw", "built"), [
        (None, False), ("true", False), ("SPAN_ONLY", False), ("EVENT_ONLY", True), ("SPAN_AND_EVENT", True)])
    def test_default_follows_the_capture_mode(self, monkeypatch: pytest.MonkeyPatch, raw: str | None,
                                              built: bool) -> None:
        """logs=None builds a LoggerProvider exactly in the two event modes."""
        if raw is not None:
            monkeypatch.setenv(CAPTURE, raw)
        provider = setup_tracing("console", console_out=io.StringIO(), set_global=False)
        assert (provider.logger_provider is not None) is built
        provider.shutdown()

    def test_nothing_to_follow_builds_nothing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Span exporter instances name no exporter for the records to follow: under EVENT_ONLY none is built."""
        monkeypatch.setenv(CAPTURE, "EVENT_ONLY")
        provider = setup_tracing([InMemorySpanExporter()], set_global=False)
        assert provider.logger_provider is None
        provider.shutdown()

    def test_false_wins_over_the_mode(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """logs=False builds none even under EVENT_ONLY."""
        monkeypatch.setenv(CAPTURE, "EVENT_ONLY")
        provider = setup_tracing("console", console_out=io.StringIO(), set_global=False, logs=False)
        assert provider.logger_provider is None
        provider.shutdown()

    def test_bad_argument_raises_before_anything_is_built(self) -> None:
        """An unknown log exporter name raises ValueError and leaves nothing behind."""
        with pytest.raises(ValueError, match="unknown exporter"):
            setup_tracing("console", set_global=False, logs="bogus")

    def test_logs_env_exporter_overrides_the_spans(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """OTEL_LOGS_EXPORTER chooses the log exporters; spans keep theirs."""
        monkeypatch.setenv("OTEL_LOGS_EXPORTER", "console")
        out = io.StringIO()
        provider = setup_tracing("file", file_path=tmp_path / "t.jsonl", console_out=out, set_global=False,
                                 logs=True)
        emit_in_span(provider)
        provider.shutdown()
        assert EVENT in out.getvalue()
        assert not (tmp_path / "t.logs.jsonl").exists()
        assert (tmp_path / "t.jsonl").exists()

    def test_settings_follow_the_spans(self) -> None:
        """Without logs-specific settings the records take the spans' exporters, protocol and file's sibling."""
        settings = resolve_logs_settings(span_exporters=("file", "otlp"), span_protocol="http/protobuf",
                                         span_file_path="out/run.jsonl", endpoint="http://collector:9999")
        assert (settings.exporters, settings.protocol, settings.file_path, settings.endpoint) == (
            ("file", "otlp"), "http/protobuf", "out/run.logs.jsonl", "http://collector:9999/v1/logs")

    def test_logs_protocol_variable_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_EXPORTER_OTLP_LOGS_PROTOCOL is the logs' own choice, whatever the spans use."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc")
        assert resolve_logs_settings(span_exporters=("otlp",), span_protocol="http/protobuf").protocol == "grpc"


class TestWhereRecordsGo:
    def test_in_memory_exporter_gets_the_record_tied_to_its_span(self) -> None:
        """A LogRecordExporter instance passed in logs= receives the record, with the span's trace and span ids."""
        memory = InMemoryLogRecordExporter()
        provider = setup_tracing([InMemorySpanExporter()], set_global=False, logs=[memory])
        trace_id, span_id = emit_in_span(provider)
        assert provider.force_flush(5000)
        (record,) = memory.get_finished_logs()
        assert (record.log_record.event_name, record.log_record.body) == (EVENT, BODY)
        assert (f"{record.log_record.trace_id:032x}", f"{record.log_record.span_id:016x}") == (trace_id, span_id)
        provider.shutdown()

    def test_console_prints_one_line_per_record(self) -> None:
        """The console prints the event's name, its trace and span, attributes, and the body as compact JSON."""
        out = io.StringIO()
        provider = setup_tracing("console", console_out=out, set_global=False, logs=True)
        trace_id, span_id = emit_in_span(provider)
        provider.shutdown()
        head, body = out.getvalue().splitlines()[:2]
        assert head == f"event {EVENT}  trace {trace_id} span {span_id}  gen_ai.operation.name=chat"
        assert json.loads(body) == BODY

    def test_console_json_is_the_sdks_output(self) -> None:
        """console_format='json' prints the SDK's JSON document per record."""
        out = io.StringIO()
        provider = setup_tracing("console", console_out=out, console_format="json", set_global=False, logs=True)
        emit_in_span(provider)
        provider.shutdown()
        first, _end = json.JSONDecoder().raw_decode(out.getvalue())  # the record, then the span's own document
        assert first["event_name"] == EVENT

    def test_file_sibling_holds_otlp_json_lines(self, tmp_path: Path) -> None:
        """The file exporter writes the records as OTLP/JSON lines (hex ids) beside the span file; shutdown flushes
        the batch."""
        provider = setup_tracing("file", file_path=tmp_path / "traces.jsonl", set_global=False, logs=True)
        trace_id, span_id = emit_in_span(provider)
        provider.shutdown()
        (record,) = file_records(tmp_path / "traces.logs.jsonl")
        assert (record["eventName"], record["traceId"], record["spanId"]) == (EVENT, trace_id, span_id)
        content = record["body"]["kvlistValue"]["values"][0]
        assert content["key"] == "gen_ai.input.messages"

    @pytest.mark.parametrize("how", ["argument", "env"])
    def test_file_path_given(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str) -> None:
        """logs_file_path= (or OTEL_CALLBACKS_LOGS_FILE_PATH) names the records' file."""
        target = tmp_path / "events.jsonl"
        if how == "env":
            monkeypatch.setenv("OTEL_CALLBACKS_LOGS_FILE_PATH", str(target))
        provider = setup_tracing("file", file_path=tmp_path / "t.jsonl", set_global=False, logs=True,
                                 logs_file_path=target if how == "argument" else None)
        emit_in_span(provider)
        provider.shutdown()
        assert [r["eventName"] for r in file_records(target)] == [EVENT]

    @pytest.mark.integration
    @pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
    def test_otlp_records_arrive_beside_the_spans(self, protocol: str) -> None:
        """Over the official OTLP log exporter, the record reaches the receiver with the span's ids and the
        resource the spans carry; the spans arrive too."""
        receiver_class = GrpcLogsReceiver if protocol == "grpc" else HttpLogsReceiver
        with receiver_class() as receiver:
            provider = setup_tracing("otlp", endpoint=receiver.endpoint, protocol=protocol, service_name="svc",
                                     set_global=False, logs=True)
            trace_id, span_id = emit_in_span(provider)
            assert provider.force_flush(10_000)
            provider.shutdown()
            (record,) = receiver.log_records()
            assert (record.event_name, record.trace_id.hex(), record.span_id.hex()) == (EVENT, trace_id, span_id)
            assert receiver.log_resources()[0]["service.name"] == "svc"
            assert receiver.span_names() == ["chat m"]
            if protocol == "http/protobuf":
                assert receiver.log_paths == ["/v1/logs"]

    @pytest.mark.integration
    def test_otlp_exporter_reads_its_own_logs_variables(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                                                         ) -> None:
        """OTEL_EXPORTER_OTLP_LOGS_HEADERS and OTEL_EXPORTER_OTLP_LOGS_ENDPOINT (used as is) reach the log exporter,
        which reads them itself, as an SDK component does; an endpoint argument wins, as for spans."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x-tenant=acme")
        with HttpLogsReceiver() as receiver:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", f"{receiver.endpoint}/custom/v1/logs")
            provider = setup_tracing("otlp", endpoint=receiver.endpoint, protocol="http/protobuf", set_global=False,
                                     logs=True)
            emit_in_span(provider)
            provider.shutdown()
            assert receiver.log_paths == ["/v1/logs"]
            assert receiver.log_headers[0]["x-tenant"] == "acme"
        with HttpLogsReceiver() as receiver:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", f"{receiver.endpoint}/custom/v1/logs")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf")
            provider = setup_tracing("file", file_path=tmp_path / "t.jsonl", set_global=False, logs=["otlp"])
            emit_in_span(provider)
            provider.shutdown()
            assert receiver.log_paths == ["/custom/v1/logs"]
            assert receiver.log_headers[0]["x-tenant"] == "acme"

    @pytest.mark.integration
    def test_malformed_timeout_keeps_the_grpc_log_exporter(self, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
        """OTEL_EXPORTER_OTLP_LOGS_TIMEOUT=abc (which the gRPC exporter would raise on) costs one warning naming
        it, not the exporter: the record still arrives."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "abc")
        with GrpcLogsReceiver() as receiver:
            provider = setup_tracing("otlp", endpoint=receiver.endpoint, protocol="grpc", set_global=False, logs=True)
            emit_in_span(provider)
            provider.shutdown()
            assert len(receiver.log_records()) == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT" in warnings[0], warnings

    def test_refused_batch_setting_keeps_the_file_exporter(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
        """OTEL_BLRP_MAX_QUEUE_SIZE=0, which the batch processor refuses, gives a warning and the defaults."""
        monkeypatch.setenv("OTEL_BLRP_MAX_QUEUE_SIZE", "0")
        provider = setup_tracing("file", file_path=tmp_path / "t.jsonl", set_global=False, logs=True)
        emit_in_span(provider)
        provider.shutdown()
        assert len(file_records(tmp_path / "t.logs.jsonl")) == 1
        assert "refused the OTEL_BLRP_* settings" in caplog.text

    @pytest.mark.integration
    def test_distro_alias_protocol_carries_over_to_logs(self) -> None:
        """Spans sent with otlp_proto_http (port 4318 or not) take the log records along over HTTP."""
        with HttpLogsReceiver() as receiver:
            provider = setup_tracing("otlp_proto_http", endpoint=receiver.endpoint, set_global=False, logs=True)
            emit_in_span(provider)
            provider.shutdown()
            assert len(receiver.log_records()) == 1


class Gated(LogRecordExporter):
    """Holds each export until released (a collector that does not answer)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, batch: Any) -> LogRecordExportResult:
        self.release.wait(10)
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        self.release.set()


class TestLifecycle:
    def test_shutdown_bounded_and_said_once(self, caplog: pytest.LogCaptureFixture) -> None:
        """A hanging log exporter cannot hold the tracer provider's shutdown past its bound; the give-up for log
        records is logged once."""
        gate = Gated()
        provider = setup_tracing([InMemorySpanExporter()], set_global=False, logs=[gate])
        emit_in_span(provider)
        start = time.monotonic()
        provider.shutdown(timeout_millis=200)
        assert time.monotonic() - start < 3
        gave_up = [r.getMessage() for r in caplog.records if "Gave up flushing log records" in r.getMessage()]
        assert len(gave_up) == 1, gave_up
        gate.release.set()

    def test_force_flush_bounded(self) -> None:
        """force_flush returns False within its timeout while the exporter hangs, True once it answers."""
        gate = Gated()
        provider = setup_tracing([InMemorySpanExporter()], set_global=False, logs=[gate])
        emit_in_span(provider)
        start = time.monotonic()
        assert provider.force_flush(200) is False
        assert time.monotonic() - start < 3
        gate.release.set()
        assert provider.force_flush(5000) is True
        provider.shutdown()

    def test_logger_provider_shutdown_runs_once(self) -> None:
        """A second shutdown (the exit hook after the user's own) does nothing."""
        memory = InMemoryLogRecordExporter()
        provider = setup_tracing([InMemorySpanExporter()], set_global=False, logs=[memory])
        assert isinstance(provider.logger_provider, BoundedLoggerProvider)
        provider.logger_provider.shutdown()
        provider.logger_provider.shutdown()
        provider.shutdown()

    def test_installed_globally_only_with_the_tracer_provider(self) -> None:
        """set_global installs the LoggerProvider with the tracer provider; after another tracer provider it is
        built but not installed; after another LoggerProvider none is built (a warning when asked for)."""
        result = run_script("""
            from opentelemetry import _logs, trace
            from opentelemetry.sdk.trace import TracerProvider
            from otel_callbacks.setup.logs import LoggerProvider
            from otel_callbacks.setup.tracing import setup_tracing

            provider = setup_tracing("console", logs=True)
            assert trace.get_tracer_provider() is provider
            assert _logs.get_logger_provider() is provider.logger_provider
            print("installed")
        """)
        assert (result.returncode, result.stdout.strip()) == (0, "installed"), result.stderr
        result = run_script("""
            from opentelemetry import _logs, trace
            from opentelemetry.sdk.trace import TracerProvider
            from otel_callbacks.setup.tracing import setup_tracing

            trace.set_tracer_provider(TracerProvider())
            provider = setup_tracing("console", logs=True)
            assert provider.logger_provider is not None
            assert type(_logs.get_logger_provider()).__name__ == "ProxyLoggerProvider"
            print("not installed")
        """)
        assert (result.returncode, result.stdout.strip()) == (0, "not installed"), result.stderr
        result = run_script("""
            from opentelemetry import _logs
            from otel_callbacks.setup.logs import LoggerProvider
            from otel_callbacks.setup.tracing import setup_tracing

            theirs = LoggerProvider()
            _logs.set_logger_provider(theirs)
            provider = setup_tracing("console", logs=True)
            assert provider.logger_provider is None and _logs.get_logger_provider() is theirs
            print("left in place")
        """)
        assert (result.returncode, result.stdout.strip()) == (0, "left in place"), result.stderr
        assert "A global LoggerProvider (LoggerProvider) is already installed" in result.stderr

    def test_records_flushed_at_exit(self, tmp_path: Path) -> None:
        """A batched record still pending at interpreter exit reaches the file (the exit flush covers logs)."""
        path = tmp_path / "t.jsonl"
        result = run_script(f"""
            from otel_callbacks.setup.tracing import setup_tracing
            from tests.test_setup_logs import emit_in_span

            emit_in_span(setup_tracing("file", file_path={str(path)!r}, logs=True))
        """, env={"OTEL_BLRP_SCHEDULE_DELAY": "60000", CAPTURE: "EVENT_ONLY"})
        assert result.returncode == 0, result.stderr
        assert [r["eventName"] for r in file_records(tmp_path / "t.logs.jsonl")] == [EVENT]

    def test_logger_provider_kept_alone_is_flushed_at_exit(self, tmp_path: Path) -> None:
        """A program that keeps only the logger provider (set_global=False, the tracer provider dropped) still gets
        its pending records flushed at exit: the logger provider has an exit flush of its own."""
        path = tmp_path / "t.jsonl"
        result = run_script(f"""
            import gc
            from otel_callbacks.setup.logs import LogRecord
            from otel_callbacks.setup.tracing import setup_tracing

            provider = setup_tracing("file", file_path={str(path)!r}, set_global=False, logs=True)
            logger_provider, provider = provider.logger_provider, None
            gc.collect()
            logger_provider.get_logger("t").emit(LogRecord(event_name={EVENT!r}, body="alone"))
        """, env={"OTEL_BLRP_SCHEDULE_DELAY": "60000"})
        assert result.returncode == 0, result.stderr
        assert [r["body"] for r in file_records(tmp_path / "t.logs.jsonl")] == [{"stringValue": "alone"}]

    def test_sigterm_flushes_pending_records(self, tmp_path: Path) -> None:
        """SIGTERM flushes the pending record before the process ends with SIGTERM's status."""
        path = tmp_path / "t.jsonl"
        code = f"""
            import time
            from otel_callbacks.setup.tracing import setup_tracing
            from tests.test_setup_logs import emit_in_span

            emit_in_span(setup_tracing("file", file_path={str(path)!r}))
            print("ready", flush=True)
            time.sleep(60)
        """
        with started(code, env={"OTEL_BLRP_SCHEDULE_DELAY": "60000", CAPTURE: "SPAN_AND_EVENT"}) as proc:
            _lines_until(proc, "ready", time.monotonic() + 60)
            assert file_records(tmp_path / "t.logs.jsonl") == []  # nothing exported before the signal
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGTERM, err
        assert [r["eventName"] for r in file_records(tmp_path / "t.logs.jsonl")] == [EVENT]

    @pytest.mark.integration
    def test_flush_and_shutdown_sends_pending_records_over_otlp(self) -> None:
        """flush_and_shutdown (a process's own SIGTERM handler, or before os._exit) exports the pending record."""
        with HttpLogsReceiver() as receiver:
            result = run_script(f"""
                import os
                from otel_callbacks.setup.lifecycle import flush_and_shutdown
                from otel_callbacks.setup.tracing import setup_tracing
                from tests.test_setup_logs import emit_in_span

                emit_in_span(setup_tracing("otlp", endpoint={receiver.endpoint!r}, protocol="http/protobuf",
                                           logs=True))
                assert flush_and_shutdown(10000)
                os._exit(0)
            """, env={"OTEL_BLRP_SCHEDULE_DELAY": "60000"})
            assert result.returncode == 0, result.stderr
            assert [r.event_name for r in receiver.log_records()] == [EVENT]

    def test_forked_child_writes_although_the_lock_was_held(self, tmp_path: Path) -> None:
        """Another thread holds the log file exporter's lock at the fork: the child's record still reaches the
        file at its exit, without giving up."""
        path = tmp_path / "t.jsonl"
        result = run_script(f"""
            import os, threading
            from otel_callbacks.setup.tracing import setup_tracing
            from tests.test_setup_logs import emit_in_span

            provider = setup_tracing("file", file_path={str(path)!r}, logs=True)
            exporter = next(p._batch_processor._exporter
                            for p in provider.logger_provider._multi_log_record_processor._log_record_processors)
            held, release = threading.Event(), threading.Event()

            def hold():
                with exporter._lock:
                    held.set()
                    release.wait(30)

            threading.Thread(target=hold, daemon=True).start()
            held.wait(10)
            pid = os.fork()
            if pid == 0:
                emit_in_span(provider)
            else:
                release.set()
                assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        """, env={"OTEL_CALLBACKS_EXIT_TIMEOUT": "5000"})
        assert result.returncode == 0, result.stderr
        assert "Gave up" not in result.stderr
        assert [r["eventName"] for r in file_records(tmp_path / "t.logs.jsonl")] == [EVENT]


class TestLayout:
    def test_tracing_alone_never_loads_the_logs_sdk(self) -> None:
        """Without event capture setup_tracing loads no logs SDK module; with EVENT_ONLY it does."""
        code = """
            import sys
            from otel_callbacks.setup.tracing import setup_tracing
            setup_tracing("console", set_global=False).shutdown()
            print(any(m.startswith("opentelemetry.sdk._logs") for m in sys.modules))
        """
        assert run_script(code).stdout.strip() == "False"
        assert run_script(code, env={CAPTURE: "EVENT_ONLY"}).stdout.strip() == "True"

    def test_private_logs_modules_imported_in_one_place(self) -> None:
        """Only setup/logs.py imports the underscored logs SDK modules (SDK, OTLP log exporters, log encoder), and
        no other set-up module imports even the logs API: they all take the names from setup/logs.py."""
        sdk, api = set(), set()
        for path in (ROOT / "otel_callbacks").rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                where = path.relative_to(ROOT).as_posix()
                for name in names:
                    if name.startswith("opentelemetry.sdk._logs") or name.endswith(("._log_exporter",
                                                                                  "._log_encoder")):
                        sdk.add(where)
                    elif name.startswith("opentelemetry._logs"):
                        api.add(where)
        assert sdk == {"otel_callbacks/setup/logs.py"}
        # The handler emits its events through the logs API, outside set-up.
        assert {p for p in api if p.startswith("otel_callbacks/setup/")} == {"otel_callbacks/setup/logs.py"}
