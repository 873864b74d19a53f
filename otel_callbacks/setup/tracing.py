"""One-line tracing setup: resolve settings (argument > ``OTEL_*`` env > default), then build a ``TracerProvider``.

Our variables are read by ``setup.env`` only. A bad env value logs one warning that names the variable and the
valid values, then the default is used; a bad *argument* raises ``ValueError`` (as the OTel SDK does). Metrics are
set up by the sibling ``setup_metrics`` (``setup.metrics``), or from here with ``metrics=``.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import IO

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.util.types import AttributeValue

from otel_callbacks.setup import signals
from otel_callbacks.setup.batching import REASONS, CountedBatchSpanProcessor, CountingExporter, DropCounter
from otel_callbacks.setup.env import (
    DEFAULT_EXIT_TIMEOUT_MS,
    TracingSettings,
    metrics_exporter_env_set,
    resolve_settings,
)
from otel_callbacks.setup.exporters import ConsoleTreeSpanExporter, OtlpJsonFileSpanExporter
from otel_callbacks.setup.exporters.otlp import make_otlp_exporter
from otel_callbacks.setup.forksafe import renew_after_fork
from otel_callbacks.setup.lifecycle import flush_at_exit, log_gave_up, make_resource, without_messages
from otel_callbacks.setup.sdk_env import batch_processor_fallbacks

logger = logging.getLogger(__name__)

__all__ = ["BoundedTracerProvider", "TracingSettings", "build_provider", "resolve_settings", "setup_tracing"]


class BoundedTracerProvider(TracerProvider):
    """The ``TracerProvider`` that ``setup_tracing`` returns: shutdown and flush are bounded, losses are counted.

    * ``shutdown(timeout_millis=None)`` waits at most ``timeout_millis`` (default: the exit timeout,
      ``OTEL_CALLBACKS_EXIT_TIMEOUT``, else 5000 ms) however dead the collector is, and runs once (our exit hook may
      follow the user's own call). What was still pending when it gave up is counted as dropped.
    * ``force_flush(timeout_millis)`` returns within its timeout (the SDK's batch processor ignores it).
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


def setup_tracing(
    exporters: str | Sequence[str | SpanExporter] | None = None,
    *,
    file_path: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    service_name: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    console_format: str | None = None,
    console_out: IO[str] | None = None,
    batch: bool = True,
    set_global: bool = True,
    exit_timeout_millis: int | None = None,
    metrics: bool | str | Sequence[str] | None = None,
) -> BoundedTracerProvider:
    """Configure a ``TracerProvider`` with console, file and/or OTLP exporters, and install it globally.

    Args:
        exporters: names among ``console``, ``file``, ``otlp``, ``none`` (a list or a comma string), and/or
            ``SpanExporter`` instances. Default: ``OTEL_TRACES_EXPORTER``, else the exporters implied by
            ``file_path``/``endpoint``, else ``console``.
        file_path: OTLP/JSON lines file for ``file`` (default ``OTEL_CALLBACKS_FILE_PATH``, else ``traces.jsonl``).
        endpoint: OTLP endpoint. For ``http/protobuf`` a base URL gets ``/v1/traces`` appended, like
            ``OTEL_EXPORTER_OTLP_ENDPOINT``. Default: what the OTLP exporter reads itself
            (``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, else ``http://localhost:4317`` (gRPC) / ``:4318`` (HTTP)).
        protocol: ``grpc`` or ``http/protobuf``; default from env, else guessed from the port (4318 → HTTP), else gRPC.
        headers: OTLP request headers; the exporter also reads ``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS``.
        timeout: OTLP request timeout in seconds; default: what the exporter reads itself
            (``OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT``, else 10).
        service_name: ``service.name`` resource attribute; wins over ``OTEL_SERVICE_NAME``.
        resource_attributes: more resource attributes; win over ``OTEL_RESOURCE_ATTRIBUTES``.
        console_format: ``tree`` (default) or ``json`` (the SDK's one-JSON-object-per-span output).
        console_out: stream for the console exporter (default: ``sys.stdout`` at print time).
        batch: export file/OTLP spans from a background thread (``BatchSpanProcessor``, which reads ``OTEL_BSP_*``).
            The console always prints synchronously so output appears right away.
        set_global: install the provider with ``trace.set_tracer_provider`` unless one is already installed.
        exit_timeout_millis: at interpreter exit, on SIGTERM and on ``shutdown()``, pending spans are flushed for
            at most this long (default ``OTEL_CALLBACKS_EXIT_TIMEOUT``, else 5000).
        metrics: also install a global ``MeterProvider`` for the GenAI metrics (see ``setup_metrics``): ``True``
            (exporters from ``OTEL_METRICS_EXPORTER``, else ``otlp`` when spans go to OTLP, else ``console``),
            metric exporter names (``console``, ``otlp``, ``none``), or ``False``. Default ``None``: only when
            ``OTEL_METRICS_EXPORTER`` is set. ``endpoint``, ``protocol``, ``headers``, ``timeout``, the resource and
            the exit timeout given here apply to metrics too. Needs ``set_global=True``; call ``setup_metrics`` to
            get the ``MeterProvider`` itself. Create the handler afterwards: it looks for a meter provider once.

    Returns:
        The configured provider, a :class:`BoundedTracerProvider` (bounded ``shutdown``/``force_flush``, lost spans
        counted in ``dropped``). Pass it to ``OpenTelemetryCallbackHandler(tracer_provider=...)`` when
        ``set_global=False``. From the main thread, set-up also makes SIGTERM flush before the process ends (see
        ``setup.signals``).

    Example:
        >>> import otel_callbacks
        >>> provider = otel_callbacks.setup_tracing(["console", "file"], file_path="traces.jsonl", set_global=False)
        >>> provider.shutdown()
    """
    names: str | Sequence[str] | None
    instances: list[SpanExporter] = []
    if exporters is None or isinstance(exporters, str):
        names = exporters
    else:
        instances = [e for e in exporters if isinstance(e, SpanExporter)]
        names = [e for e in exporters if not isinstance(e, SpanExporter)]
        if not names and instances:
            names = ["none"]
    if metrics not in (None, False) and not set_global:
        raise ValueError("metrics= installs a global MeterProvider, so it needs set_global=True; call "
                         "setup_metrics(set_global=False) to get a MeterProvider to pass to the handler instead")
    settings = resolve_settings(
        exporters=names, file_path=file_path, endpoint=endpoint, protocol=protocol, headers=headers, timeout=timeout,
        console_format=console_format, exit_timeout_millis=exit_timeout_millis,
    )
    explicit = metrics is not None
    if metrics is None:
        metrics = set_global and metrics_exporter_env_set()  # the OTel env variable states the intent
    meter_settings = None
    if metrics is not False:
        # Imported here so that tracing-only programs never load the metrics SDK.
        from otel_callbacks.setup.metrics import build_meter_provider, resolve_for_tracing

        # Resolved before anything is built, so that a bad metrics argument leaves no half-installed setup.
        meter_settings = resolve_for_tracing(
            metrics, settings.exporters, explicit=explicit, endpoint=endpoint, protocol=protocol, headers=headers,
            timeout=timeout, console_format=console_format, exit_timeout_millis=exit_timeout_millis)
    provider = build_provider(
        settings, service_name=service_name, resource_attributes=resource_attributes, extra_exporters=instances,
        console_out=console_out, batch=batch, set_global=set_global,
    )
    if meter_settings is not None:
        build_meter_provider(meter_settings, service_name=service_name, resource_attributes=resource_attributes,
                             console_out=console_out)
    return provider


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
    try:
        if name == "console":
            if settings.console_format == "json":
                return ConsoleSpanExporter() if console_out is None else ConsoleSpanExporter(out=console_out)
            return ConsoleTreeSpanExporter(console_out)
        if name == "file":
            return OtlpJsonFileSpanExporter(settings.file_path)
        if name == "otlp":
            return make_otlp_exporter(
                settings.protocol, endpoint=settings.endpoint, headers=settings.headers, timeout=settings.timeout,
                fallbacks=settings.fallbacks,
            )
    except Exception as exc:  # malformed variables are replaced (sdk_env); this is for what no check foresaw
        hint = " (check the OTEL_EXPORTER_OTLP_* variables it reads)" if name == "otlp" else ""
        logger.warning("Could not create the %s span exporter, continuing without it: %s%s", name, exc, hint)
        return None
    raise AssertionError(f"unreachable exporter name {name!r}")


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
