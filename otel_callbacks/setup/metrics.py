"""One-line metrics setup, the sibling of ``setup_tracing``: a ``MeterProvider`` for the GenAI client metrics.

Same rules as tracing: argument > ``OTEL_*`` env > default, a bad env value warns once and falls back, a bad argument
raises ``ValueError``, and pending metrics are flushed at exit for a bounded time. The env is read through
``setup.env`` only. Histograms keep the GenAI bucket boundaries that our instruments advise
(``explicit_bucket_boundaries_advisory``); the SDK versions we require (>= 1.39) apply them for console and OTLP
readers alike (the OTLP exporters honour advice since opentelemetry-python PRs 4434 and 4521), so no Views are needed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Literal

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import AttributeValue

from otel_callbacks.setup import signals
from otel_callbacks.setup.env import (
    CONSOLE_FORMATS,
    DEFAULT_EXIT_TIMEOUT_MS,
    OTEL_CALLBACKS_CONSOLE_FORMAT,
    check_common,
    env_choice,
    resolve_exit_timeout,
    resolve_exporters,
    resolve_otlp,
)
from otel_callbacks.setup.exporters import ConsoleMetricSummaryExporter
from otel_callbacks.setup.exporters.otlp import GRPC, METRICS_PATH, make_otlp_metric_exporter
from otel_callbacks.setup.forksafe import renew_after_fork
from otel_callbacks.setup.lifecycle import build_exporter, flush_at_exit, make_resource
from otel_callbacks.setup.sdk_env import NO_FALLBACKS, OtlpFallbacks, otlp_fallbacks

logger = logging.getLogger(__name__)

__all__ = ["MetricsSettings", "build_meter_provider", "resolve_metrics_settings", "setup_metrics"]

METRIC_EXPORTER_NAMES = ("console", "otlp", "none")
DEFAULT_INTERVAL_MS = 60000  # the specification's and the SDK's default for OTEL_METRIC_EXPORT_INTERVAL


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Resolved metric exporter settings. ``endpoint``, ``headers``, ``timeout`` and ``interval_millis`` are the
    caller's explicit values (an HTTP ``endpoint`` already ends in ``/v1/metrics``), or None: the OTLP exporter and
    the periodic reader then read their own environment."""

    exporters: tuple[str, ...] = ("console",)
    protocol: str = GRPC
    endpoint: str | None = None
    headers: Mapping[str, str] | None = None
    timeout: float | None = None
    console_format: str = "tree"
    interval_millis: int | None = None
    exit_timeout_millis: int = DEFAULT_EXIT_TIMEOUT_MS
    fallbacks: OtlpFallbacks = NO_FALLBACKS


def resolve_metrics_settings(
    *,
    exporters: str | Sequence[str] | None = None,
    default_exporters: Sequence[str] = ("console",),
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    interval_millis: int | None = None,
    console_format: str | None = None,
    exit_timeout_millis: int | None = None,
) -> MetricsSettings:
    """Like ``resolve_settings``, for metrics: ``OTEL_METRICS_EXPORTER`` and ``OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL``
    (the exporter and the reader read the other ``OTEL_EXPORTER_OTLP_*`` and ``OTEL_METRIC_EXPORT_*`` themselves).

    ``default_exporters`` applies when neither the argument, the env nor ``endpoint=`` chooses.

    Example:
        >>> resolve_metrics_settings(exporters="otlp", endpoint="http://localhost:4318").endpoint
        'http://localhost:4318/v1/metrics'
    """
    implied = ("otlp",) if endpoint is not None else ()  # as for spans, endpoint= turns OTLP on
    names, alias_protocol = resolve_exporters(
        exporters, implied=implied, variable="OTEL_METRICS_EXPORTER", valid=METRIC_EXPORTER_NAMES,
        default=tuple(default_exporters))
    check_common(console_format, timeout, exit_timeout_millis)
    if interval_millis is not None and not interval_millis > 0:
        raise ValueError(f"interval_millis must be a positive number of milliseconds, got {interval_millis!r}")
    proto, final_endpoint = resolve_otlp(
        "METRICS", METRICS_PATH, endpoint=endpoint, protocol=protocol, alias_protocol=alias_protocol)
    return MetricsSettings(
        exporters=names,
        protocol=proto,
        endpoint=final_endpoint,
        headers=dict(headers) if headers is not None else None,
        timeout=timeout,
        console_format=console_format or env_choice(OTEL_CALLBACKS_CONSOLE_FORMAT, CONSOLE_FORMATS, "tree"),
        interval_millis=interval_millis,
        exit_timeout_millis=resolve_exit_timeout(exit_timeout_millis),
        fallbacks=otlp_fallbacks("METRICS", proto, headers_given=headers is not None, timeout_given=timeout is not None)
        if "otlp" in names else NO_FALLBACKS,
    )


class _MeterProvider(MeterProvider):
    """A ``MeterProvider`` whose ``shutdown`` runs once (the SDK logs a warning on the second call), without the
    SDK's own exit hook, which waits up to 30 s; ours is bounded."""

    def __init__(self, readers: Sequence[MetricReader], resource: Resource) -> None:
        super().__init__(metric_readers=readers, resource=resource, shutdown_on_exit=False)
        self._renew_after_fork()
        renew_after_fork(self)
        self._done = False

    def _renew_after_fork(self) -> None:
        self._once = threading.Lock()

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        with self._once:
            if self._done:
                return
            self._done = True
        super().shutdown(timeout_millis=timeout_millis)


def setup_metrics(
    exporters: str | Sequence[str | MetricExporter | MetricReader] | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    service_name: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    interval_millis: int | None = None,
    console_format: str | None = None,
    console_out: IO[str] | None = None,
    set_global: bool = True,
    exit_timeout_millis: int | None = None,
) -> MeterProvider:
    """Configure a ``MeterProvider`` with console and/or OTLP metric exporters, and install it globally.

    Handlers record metrics into the provider passed to them, else into the global one: a handler created before
    this call picks the global provider up on its next model run.

    Args:
        exporters: names among ``console`` (one summary line per metric and attribute set: count, sum, min, max),
            ``otlp``, ``none`` (a list or a comma string), and/or ``MetricExporter`` / ``MetricReader`` instances.
            Default: ``OTEL_METRICS_EXPORTER``, else ``otlp`` if ``endpoint`` is given, else ``console``.
        endpoint: OTLP endpoint; for ``http/protobuf`` a base URL gets ``/v1/metrics`` appended. Default: what the
            OTLP exporter reads itself (``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` used as is, else
            ``OTEL_EXPORTER_OTLP_ENDPOINT``, else ``http://localhost:4317`` (gRPC) / ``:4318`` (HTTP)).
        protocol: ``grpc`` or ``http/protobuf``; default ``OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL``, else from the
            port (4318 → HTTP), else gRPC.
        headers: OTLP request headers; the exporter also reads ``OTEL_EXPORTER_OTLP_[METRICS_]HEADERS``.
        timeout: OTLP request timeout in seconds; default: what the exporter reads itself
            (``OTEL_EXPORTER_OTLP_[METRICS_]TIMEOUT``, else 10).
        service_name: ``service.name``; wins over ``OTEL_SERVICE_NAME``.
        resource_attributes: more resource attributes; win over ``OTEL_RESOURCE_ATTRIBUTES``.
        interval_millis: export period; default: what the periodic reader reads itself
            (``OTEL_METRIC_EXPORT_INTERVAL``, else 60000). Metrics are also exported once more at shutdown.
        console_format: ``tree`` (default: the summary lines) or ``json`` (the SDK's ``ConsoleMetricExporter``).
        console_out: stream for the console exporter (default: ``sys.stdout`` at print time).
        set_global: install with ``metrics.set_meter_provider`` unless a provider is already installed.
        exit_timeout_millis: at interpreter exit pending metrics are flushed for at most this long (default
            ``OTEL_CALLBACKS_EXIT_TIMEOUT``, else 5000).

    Returns:
        The provider. Pass it to ``OpenTelemetryCallbackHandler(meter_provider=...)`` when ``set_global=False``.

    Example:
        >>> import otel_callbacks
        >>> provider = otel_callbacks.setup_metrics("console", set_global=False)
        >>> provider.shutdown()
    """
    names: str | Sequence[str] | None
    instances: list[MetricExporter | MetricReader] = []
    if exporters is None or isinstance(exporters, str):
        names = exporters
    else:
        instances = [e for e in exporters if isinstance(e, MetricExporter | MetricReader)]
        names = [e for e in exporters if isinstance(e, str)]
        if not names and instances:
            names = ["none"]
    settings = resolve_metrics_settings(
        exporters=names, endpoint=endpoint, protocol=protocol, headers=headers, timeout=timeout,
        interval_millis=interval_millis, console_format=console_format, exit_timeout_millis=exit_timeout_millis,
    )
    return build_meter_provider(settings, service_name=service_name, resource_attributes=resource_attributes,
                                extra=instances, console_out=console_out, set_global=set_global)


def build_meter_provider(
    settings: MetricsSettings,
    *,
    service_name: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    extra: Sequence[MetricExporter | MetricReader] = (),
    console_out: IO[str] | None = None,
    set_global: bool = True,
    default_service_name: str | None = None,
) -> MeterProvider:
    """Build the provider for already-resolved settings; ``extra`` exporters get a periodic reader, readers are
    used as they are (e.g. an ``InMemoryMetricReader``)."""
    readers: list[MetricReader] = []
    for name in settings.exporters:
        exporter = _make_exporter(name, settings, console_out)
        if exporter is not None:
            readers.append(_periodic(exporter, settings))
    for item in extra:
        readers.append(item if isinstance(item, MetricReader) else _periodic(item, settings))
    provider = _MeterProvider(readers, make_resource(service_name, resource_attributes, default_service_name))
    flush_at_exit(provider, settings.exit_timeout_millis, "metrics")
    signals.install()  # SIGTERM flushes too (it skips atexit otherwise)
    if set_global:
        _install_global(provider)
    return provider


def resolve_for_tracing(
    option: Literal[True] | str | Sequence[str], span_exporters: Sequence[str], *, explicit: bool,
    endpoint: str | None,
    protocol: str | None, headers: Mapping[str, str] | None, timeout: float | None, console_format: str | None,
    exit_timeout_millis: int | None,
) -> MetricsSettings | None:
    """Settings for ``setup_tracing(metrics=option)``, or None when nothing is to be built. By default metrics follow
    the spans to OTLP (same Collector), else go to the console. ``explicit``: asked for in code, not by env."""
    settings = resolve_metrics_settings(
        exporters=None if option is True else option,
        default_exporters=("otlp",) if "otlp" in span_exporters else ("console",),
        endpoint=endpoint, protocol=protocol, headers=headers, timeout=timeout, console_format=console_format,
        exit_timeout_millis=exit_timeout_millis)
    if not settings.exporters:
        return None
    if _global_installed():
        # e.g. opentelemetry-instrument configured metrics already; a second provider would never be used, and
        # setup_tracing could not hand it back.
        logger.log(logging.WARNING if explicit else logging.DEBUG,
                   "A global MeterProvider (%s) is already installed; setup_tracing(metrics=...) leaves it in place.",
                   type(metrics.get_meter_provider()).__name__)
        return None
    return settings


def _make_exporter(name: str, settings: MetricsSettings, console_out: IO[str] | None) -> MetricExporter | None:
    def console() -> MetricExporter:
        if settings.console_format == "json":
            return ConsoleMetricExporter() if console_out is None else ConsoleMetricExporter(out=console_out)
        return ConsoleMetricSummaryExporter(console_out)

    return build_exporter(name, "metric exporter", {
        "console": console,
        "otlp": lambda: make_otlp_metric_exporter(settings.protocol, endpoint=settings.endpoint,
                                                  headers=settings.headers, timeout=settings.timeout,
                                                  fallbacks=settings.fallbacks),
    }, logger)


def _periodic(exporter: MetricExporter, settings: MetricsSettings) -> MetricReader:
    # Without an interval argument the reader reads OTEL_METRIC_EXPORT_INTERVAL / _TIMEOUT itself. An interval <= 0
    # it refuses with ValueError; a typo in the environment must not stop the application from starting.
    try:
        return PeriodicExportingMetricReader(exporter, export_interval_millis=settings.interval_millis)
    except ValueError as exc:
        logger.warning("The periodic metric reader refused OTEL_METRIC_EXPORT_INTERVAL (%s); using the default "
                       "instead: %d ms.", exc, DEFAULT_INTERVAL_MS)
        return PeriodicExportingMetricReader(exporter, export_interval_millis=DEFAULT_INTERVAL_MS)


def _global_installed() -> bool:
    # Until a provider is set the API hands out a proxy (a private class, hence the name check, as in _metrics).
    return type(metrics.get_meter_provider()).__name__ != "_ProxyMeterProvider"


def _install_global(provider: MeterProvider) -> None:
    if _global_installed():
        # The API allows one global provider; say what to do instead of letting the API log a terse warning.
        logger.warning(
            "A global MeterProvider (%s) is already installed; the new provider is returned but not installed. "
            "Pass it explicitly: OpenTelemetryCallbackHandler(meter_provider=provider).",
            type(metrics.get_meter_provider()).__name__,
        )
        return
    metrics.set_meter_provider(provider)
