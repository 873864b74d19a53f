"""The tracer provider ``setup_tracing`` builds: bounded shutdown and flush, losses counted, exporters wired.

``setup.tracing`` resolves the arguments and calls :func:`build_provider`; the CLI calls it too, with settings it has
resolved and inspected itself.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.util.types import AttributeValue

from otel_callbacks.setup import signals
from otel_callbacks.setup.batching import REASONS, CountedBatchSpanProcessor, CountingExporter, DropCounter
from otel_callbacks.setup.env import DEFAULT_EXIT_TIMEOUT_MS, TracingSettings
from otel_callbacks.setup.exporters import ConsoleTreeSpanExporter, OtlpJsonFileSpanExporter
from otel_callbacks.setup.exporters.otlp import make_otlp_exporter
from otel_callbacks.setup.forksafe import renew_after_fork
from otel_callbacks.setup.lifecycle import (
    build_exporter,
    flush_at_exit,
    log_gave_up,
    make_resource,
    without_messages,
)
from otel_callbacks.setup.sdk_env import batch_processor_fallbacks

if TYPE_CHECKING:
    from otel_callbacks.setup.log_provider import BoundedLoggerProvider

logger = logging.getLogger(__name__)

__all__ = ["BoundedTracerProvider", "build_provider"]


class BoundedTracerProvider(TracerProvider):
    """The ``TracerProvider`` that ``setup_tracing`` returns: shutdown and flush are bounded, losses are counted.

    * ``shutdown(timeout_millis=None)`` waits at most ``timeout_millis`` (default: the exit timeout,
      ``OTEL_CALLBACKS_EXIT_TIMEOUT``, else 5000 ms) however dead the collector is, and runs once (our exit hook may
      follow the user's own call). What was still pending when it gave up is counted as dropped.
    * ``force_flush(timeout_millis)`` returns within its timeout (the SDK's batch processor ignores it).
    * ``logger_provider``: the ``LoggerProvider`` built beside it for content events (``setup_tracing(logs=...)``),
      else None. ``shutdown`` and ``force_flush`` cover it too, within the same bound.
    * ``dropped``: spans lost so far, by reason: ``queue_full`` (the application outran the exporter; raise
      ``OTEL_BSP_MAX_QUEUE_SIZE`` for bursts), ``export_failed`` (the exporter returned FAILURE or raised),
      ``shutdown`` (pending when shutdown gave up, or ended after it). Losses are also logged, at most once a minute
      and once at shutdown.
    """

    def __init__(self, resource: Resource, *, shutdown_timeout_millis: int = DEFAULT_EXIT_TIMEOUT_MS) -> None:
        # The SDK's own atexit hook waits up to 30 s per processor; ours (registered in build_provider) is bounded.
        super().__init__(resource=resource, shutdown_on_exit=False)
        self._renew_after_fork()
        renew_after_fork(self)
        self._is_shut_down = False
        self._given_up = False
        self._shutdown_timeout_millis = shutdown_timeout_millis
        self._counted: list[CountedBatchSpanProcessor] = []
        self._counters: list[DropCounter] = []
        self.logger_provider: BoundedLoggerProvider | None = None

    def _renew_after_fork(self) -> None:
        self._shutdown_lock = threading.Lock()

    @property
    def dropped(self) -> dict[str, int]:
        """Running totals of lost spans by reason, summed over this provider's exporters."""
        totals = dict.fromkeys(REASONS, 0)
        for counter in self._counters:
            for reason, count in counter.totals().items():
                totals[reason] += count
        return totals

    def add_counted(self, processor: SpanProcessor, counter: DropCounter) -> None:
        """Add a processor whose losses ``counter`` counts (and report them at shutdown)."""
        self.add_span_processor(processor)
        self._counters.append(counter)
        if isinstance(processor, CountedBatchSpanProcessor):
            self._counted.append(processor)

    def shutdown(self, timeout_millis: int | None = None) -> None:
        with self._shutdown_lock:
            if self._is_shut_down:
                return
            self._is_shut_down = True
        bound = self._shutdown_timeout_millis if timeout_millis is None else timeout_millis
        deadline = time.monotonic() + max(bound, 0) / 1000
        logs = self._shut_logs_down(bound)  # side by side with the spans, within the same bound
        done = threading.Event()

        def run() -> None:
            try:
                super(BoundedTracerProvider, self).shutdown()
            except Exception:  # telemetry failures are logged, never raised into the host
                logger.exception("Error while shutting down the tracer provider")
            finally:
                done.set()

        try:
            threading.Thread(target=run, name="otel-callbacks-shutdown", daemon=True).start()
        except RuntimeError:  # at interpreter exit on 3.12+ no thread can start; lifecycle's waiter bounds us then
            run()
        if done.wait(max(bound, 0) / 1000):
            for processor in self._counted:
                processor.finished()
            self._report()
        elif self._give_up():
            log_gave_up("spans", bound)
        if logs is not None:  # the logger provider's own bound ends it and says what was lost
            logs.join(max(deadline - time.monotonic(), 0) + 0.05)

    def _shut_logs_down(self, bound: int) -> threading.Thread | None:
        if self.logger_provider is None:
            return None
        thread = threading.Thread(target=self.logger_provider.shutdown, args=(bound,), name="otel-callbacks-shutdown",
                                  daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread at interpreter exit (3.12+): the logger provider bounds itself inline
            self.logger_provider.shutdown(bound)
            return None
        return thread

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + max(timeout_millis, 0) / 1000
        flushed = super().force_flush(timeout_millis)
        if self.logger_provider is None:
            return flushed
        remaining = max(int((deadline - time.monotonic()) * 1000), 0)
        return self.logger_provider.force_flush(remaining) and flushed

    def gave_up(self) -> None:
        """Shutdown ran out of time: count what is still pending as lost and report it. Lifecycle calls this when
        its own bound passes first (and has said so); the bound here then says nothing more."""
        self._give_up()

    def _give_up(self) -> bool:
        with self._shutdown_lock:
            if self._given_up:
                return False
            self._given_up = True
        for processor in self._counted:
            processor.gave_up()
        self._report()
        return True

    def _report(self) -> None:
        for counter in self._counters:  # the unbatched exporters' failures too
            counter.report()

def build_provider(
    settings: TracingSettings,
    *,
    service_name: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    extra_exporters: Sequence[SpanExporter] = (),
    console_out: IO[str] | None = None,
    batch: bool = True,
    set_global: bool = True,
    default_service_name: str | None = None,
) -> BoundedTracerProvider:
    """Build the provider for already-resolved settings (the CLI resolves once, then inspects the settings).

    ``default_service_name`` replaces the SDK's ``unknown_service`` when neither an argument nor env names one.
    """
    provider = BoundedTracerProvider(make_resource(service_name, resource_attributes, default_service_name),
                                     shutdown_timeout_millis=settings.exit_timeout_millis)
    for name in settings.exporters:
        exporter = _make_exporter(name, settings, console_out)
        if exporter is None:
            continue
        sync = name == "console" or not batch  # console output should appear as the trace ends, not 5 s later
        _add(provider, exporter, batched=not sync)
    for exporter in extra_exporters:
        _add(provider, exporter, batched=batch)
    flush_at_exit(provider, settings.exit_timeout_millis, "spans")
    signals.install()  # SIGTERM flushes too (it skips atexit otherwise)
    _observe_drops(provider)
    if set_global:
        _install_global(provider)
    return provider


def _make_exporter(name: str, settings: TracingSettings, console_out: IO[str] | None) -> SpanExporter | None:
    def console() -> SpanExporter:
        if settings.console_format == "json":
            return ConsoleSpanExporter() if console_out is None else ConsoleSpanExporter(out=console_out)
        return ConsoleTreeSpanExporter(console_out)

    return build_exporter(name, "span exporter", {
        "console": console,
        "file": lambda: OtlpJsonFileSpanExporter(settings.file_path),
        "otlp": lambda: make_otlp_exporter(settings.protocol, endpoint=settings.endpoint, headers=settings.headers,
                                           timeout=settings.timeout, fallbacks=settings.fallbacks),
    }, logger)


def _add(provider: BoundedTracerProvider, exporter: SpanExporter, *, batched: bool) -> None:
    # Every exporter is wrapped to count its failures; batched ones also get the processor that counts a full queue.
    counter = DropCounter(type(exporter).__name__)
    counting = CountingExporter(exporter, counter)
    provider.add_counted(_batch(counting, counter) if batched else SimpleSpanProcessor(counting), counter)


def _batch(exporter: CountingExporter, counter: DropCounter) -> SpanProcessor:
    # The processor reads OTEL_BSP_* itself; the malformed ones (which it would refuse with ValueError or log with a
    # traceback) are replaced by their defaults first, each with one warning naming it. The queue size is passed
    # always: the processor counts against it (it is the value the SDK would read).
    given, queue_size = batch_processor_fallbacks()
    try:
        return CountedBatchSpanProcessor(  # None: the processor reads that variable itself
            exporter, counter, max_queue_size=queue_size,
            max_export_batch_size=given.get("max_export_batch_size"),
            schedule_delay_millis=given.get("schedule_delay_millis"),
            export_timeout_millis=given.get("export_timeout_millis"))
    except ValueError as exc:  # a refusal no check foresaw: a typo in the environment must not stop the application
        logger.warning("The batch span processor refused the OTEL_BSP_* settings (%s); using the defaults instead: "
                       "queue 2048, batch 512, delay 5000 ms, export timeout 30000 ms.", exc)
        # The specification's defaults for OTEL_BSP_*, which are also the SDK's.
        return CountedBatchSpanProcessor(exporter, counter, max_queue_size=2048, max_export_batch_size=512,
                                         schedule_delay_millis=5000, export_timeout_millis=30000)


_observed: weakref.WeakSet[BoundedTracerProvider] = weakref.WeakSet()
_observe_lock = threading.Lock()


def _observe_drops(provider: BoundedTracerProvider) -> None:
    """Report the providers' ``dropped`` totals as the observable counter ``otel_callbacks.spans.dropped`` (attribute
    ``reason``, summed over the live providers) through the global ``MeterProvider``; the API's proxy binds it to one
    installed later (``metrics=`` builds it after the tracer provider).

    Registered once per process: the SDK keeps the first instrument of a name (and warns about the next), so a
    counter per provider would report the first provider alone. Providers are held weakly."""
    with _observe_lock:
        first = not _observed
        _observed.add(provider)
    if not first:
        return
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, Observation

    def observe(_options: CallbackOptions) -> list[Observation]:
        totals = dict.fromkeys(REASONS, 0)
        for live in list(_observed):
            for reason, count in live.dropped.items():
                totals[reason] += count
        return [Observation(count, {"reason": reason}) for reason, count in totals.items()]

    # A global provider the application has already shut down answers with a warning (and a no-op meter): about us,
    # not the application, so it is not shown.
    with without_messages("opentelemetry.sdk.metrics._internal", "A shutdown `MeterProvider`"):
        meter = metrics.get_meter("otel_callbacks")
    meter.create_observable_counter(
        "otel_callbacks.spans.dropped", callbacks=[observe], unit="{span}",
        description="Spans lost before export, by reason: queue_full, export_failed, shutdown")


def _install_global(provider: TracerProvider) -> None:
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        # The API allows setting the global provider once; say so instead of letting the API log a terse warning.
        logger.warning(
            "A global TracerProvider (%s) is already installed; the new provider is returned but not installed. "
            "Pass it explicitly: OpenTelemetryCallbackHandler(tracer_provider=provider).",
            type(current).__name__,
        )
        return
    trace.set_tracer_provider(provider)
