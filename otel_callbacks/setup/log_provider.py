"""The ``LoggerProvider`` that ``setup_tracing`` builds for content events
(``gen_ai.client.inference.operation.details`` log records, under
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=EVENT_ONLY`` or ``SPAN_AND_EVENT``).

The same life as the tracer provider beside it: the same resource, exporters chosen as the spans' were (console,
file, OTLP), file and OTLP records batched (``BatchLogRecordProcessor``, which reads ``OTEL_BLRP_*``), console ones
printed at once, and pending records flushed at exit, on SIGTERM and by ``flush_and_shutdown`` for a bounded time.
Loaded only when log records are on, so that tracing alone never loads the logs SDK.

Example:
    >>> # provider = build_logger_provider(resolve_logs_settings(exporters="console"), resource=Resource.create())
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import IO

from opentelemetry.sdk.resources import Resource

from otel_callbacks.setup import signals
from otel_callbacks.setup.env import DEFAULT_EXIT_TIMEOUT_MS
from otel_callbacks.setup.forksafe import renew_after_fork
from otel_callbacks.setup.lifecycle import build_exporter, flush_at_exit, log_gave_up, run_bounded
from otel_callbacks.setup.logs import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LoggerProvider,
    LogRecordExporter,
    LogRecordProcessor,
    SimpleLogRecordProcessor,
    global_logger_provider,
    global_logger_provider_installed,
    make_otlp_log_exporter,
    set_global_logger_provider,
)
from otel_callbacks.setup.logs_env import LogsSettings

logger = logging.getLogger(__name__)

__all__ = ["BoundedLoggerProvider", "build_logger_provider", "install_global"]


class BoundedLoggerProvider(LoggerProvider):
    """A ``LoggerProvider`` whose ``shutdown`` runs once and waits at most ``timeout_millis`` (default: the exit
    timeout), and whose ``force_flush`` returns within its timeout (the SDK's batch processor ignores it), however
    dead the collector. The SDK's own exit hook, which waits without bound, is replaced by ours."""

    def __init__(self, resource: Resource, *, shutdown_timeout_millis: int = DEFAULT_EXIT_TIMEOUT_MS) -> None:
        super().__init__(resource=resource, shutdown_on_exit=False)
        self._renew_after_fork()
        renew_after_fork(self)
        self._is_shut_down = False
        self._given_up = False
        self._shutdown_timeout_millis = shutdown_timeout_millis

    def _renew_after_fork(self) -> None:
        self._once = threading.Lock()
        self._flushing: threading.Thread | None = None  # the parent's flush thread does not exist here
        self._flushed = threading.Event()

    def shutdown(self, timeout_millis: int | None = None) -> None:
        with self._once:
            if self._is_shut_down:
                return
            self._is_shut_down = True
        bound = self._shutdown_timeout_millis if timeout_millis is None else timeout_millis
        if not run_bounded(super().shutdown, bound, name="otel-callbacks-shutdown") and self._give_up():
            log_gave_up("log records", bound)

    def gave_up(self) -> None:
        """Lifecycle's exit bound passed first (and it said so): this provider's own bound says nothing more."""
        self._give_up()

    def _give_up(self) -> bool:
        with self._once:
            first, self._given_up = not self._given_up, True
        return first

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what is pending, waiting at most ``timeout_millis``; False if that was not enough. A later call
        waits for a flush still running rather than queueing another behind it (against a dead collector)."""
        with self._once:
            if self._flushing is None or not self._flushing.is_alive():
                self._flushed = threading.Event()
                self._flushing = threading.Thread(target=self._flush, args=(self._flushed, timeout_millis),
                                                  name="otel-callbacks-flush", daemon=True)
                self._flushing.start()
            flushed = self._flushed
        return flushed.wait(max(timeout_millis, 0) / 1000)

    def _flush(self, flushed: threading.Event, timeout_millis: int) -> None:
        try:
            super().force_flush(timeout_millis)
        except Exception:  # an exporter's error must not end the helper silently
            logger.exception("Error while flushing log records")
        finally:
            flushed.set()


def build_logger_provider(
    settings: LogsSettings,
    *,
    resource: Resource,
    extra_exporters: Sequence[LogRecordExporter] = (),
    console_out: IO[str] | None = None,
    batch: bool = True,
) -> BoundedLoggerProvider:
    """Build the provider for resolved settings, flushed at exit and on SIGTERM; not installed globally (see
    :func:`install_global`). ``extra_exporters`` are batched like file and OTLP ones (an in-memory exporter, say)."""
    provider = BoundedLoggerProvider(resource, shutdown_timeout_millis=settings.exit_timeout_millis)
    for name in settings.exporters:
        exporter = _make_exporter(name, settings, console_out)
        if exporter is not None:
            sync = name == "console" or not batch  # console output should appear as it happens
            provider.add_log_record_processor(SimpleLogRecordProcessor(exporter) if sync else _batch(exporter))
    for exporter in extra_exporters:
        provider.add_log_record_processor(_batch(exporter) if batch else SimpleLogRecordProcessor(exporter))
    flush_at_exit(provider, settings.exit_timeout_millis, "log records")
    signals.install()  # SIGTERM flushes too (it skips atexit otherwise)
    return provider


def install_global(provider: LoggerProvider) -> bool:
    """Install ``provider`` as the global ``LoggerProvider`` unless one is; True if it now is the global one."""
    if global_logger_provider_installed():
        # The API allows one global provider; say what to do instead of letting the API log a terse warning.
        logger.warning(
            "A global LoggerProvider (%s) is already installed; the new one is not installed. Pass it explicitly: "
            "OpenTelemetryCallbackHandler(logger_provider=provider.logger_provider).",
            type(global_logger_provider()).__name__)
        return False
    set_global_logger_provider(provider)
    return True


def _make_exporter(name: str, settings: LogsSettings, console_out: IO[str] | None) -> LogRecordExporter | None:
    def console() -> LogRecordExporter:
        if settings.console_format == "json":
            return ConsoleLogRecordExporter() if console_out is None else ConsoleLogRecordExporter(out=console_out)
        from otel_callbacks.setup.exporters.console_logs import ConsoleLogLineExporter

        return ConsoleLogLineExporter(console_out)

    def file() -> LogRecordExporter:
        from otel_callbacks.setup.exporters.file_logs import OtlpJsonFileLogExporter

        return OtlpJsonFileLogExporter(settings.file_path)

    return build_exporter(name, "log record exporter", {
        "console": console,
        "file": file,
        "otlp": lambda: make_otlp_log_exporter(settings.protocol, endpoint=settings.endpoint,
                                               headers=settings.headers, timeout=settings.timeout,
                                               fallbacks=settings.fallbacks),
    }, logger)


def _batch(exporter: LogRecordExporter) -> LogRecordProcessor:
    # The processor reads OTEL_BLRP_* itself (a malformed integer costs the SDK's own warning naming it). A value it
    # refuses (<= 0, a batch larger than the queue) raises: a typo in the environment must not stop the application.
    try:
        return BatchLogRecordProcessor(exporter)
    except ValueError as exc:
        logger.warning("The batch log record processor refused the OTEL_BLRP_* settings (%s); using the defaults "
                       "instead: queue 2048, batch 512, delay 5000 ms, export timeout 30000 ms.", exc)
        return BatchLogRecordProcessor(exporter, schedule_delay_millis=5000, max_export_batch_size=512,
                                       export_timeout_millis=30000, max_queue_size=2048)
