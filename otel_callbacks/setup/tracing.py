"""One-line tracing setup: resolve settings (argument > ``OTEL_*`` env > default), then build a ``TracerProvider``.

Our variables are read by ``setup.env`` only. A bad env value logs one warning that names the variable and the
valid values, then the default is used; a bad *argument* raises ``ValueError`` (as the OTel SDK does). Metrics are
set up by the sibling ``setup_metrics`` (``setup.metrics``), or from here with ``metrics=``; the ``LoggerProvider``
for content events with ``logs=`` (``setup.log_provider``). The provider itself is built by ``setup.tracer_provider``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.util.types import AttributeValue

from otel_callbacks import _config
from otel_callbacks.setup.env import TracingSettings, metrics_exporter_env_set, resolve_settings
from otel_callbacks.setup.tracer_provider import BoundedTracerProvider, build_provider

if TYPE_CHECKING:
    from otel_callbacks.setup.logs import LogRecordExporter
    from otel_callbacks.setup.logs_env import LogsSettings

logger = logging.getLogger(__name__)

__all__ = ["BoundedTracerProvider", "TracingSettings", "build_provider", "resolve_settings", "setup_tracing"]


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
    logs: bool | str | Sequence[str | LogRecordExporter] | None = None,
    logs_file_path: str | os.PathLike[str] | None = None,
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
        exit_timeout_millis: at interpreter exit, on SIGTERM and on ``shutdown()``, pending spans (and log
            records) are flushed for at most this long (default ``OTEL_CALLBACKS_EXIT_TIMEOUT``, else 5000).
        metrics: also install a global ``MeterProvider`` for the GenAI metrics (see ``setup_metrics``): ``True``
            (exporters from ``OTEL_METRICS_EXPORTER``, else ``otlp`` when spans go to OTLP, else ``console``),
            metric exporter names (``console``, ``otlp``, ``none``), or ``False``. Default ``None``: only when
            ``OTEL_METRICS_EXPORTER`` is set. ``endpoint``, ``protocol``, ``headers``, ``timeout``, the resource and
            the exit timeout given here apply to metrics too. Needs ``set_global=True``; call ``setup_metrics`` to
            get the ``MeterProvider`` itself. Create the handler afterwards: it looks for a meter provider once.
        logs: also build a ``LoggerProvider`` for the content events (``gen_ai.client.inference.operation.details``
            log records): ``True`` (exporters from ``OTEL_LOGS_EXPORTER``, else the spans' own: console, file,
            otlp), log exporter names (``console``, ``file``, ``otlp``, ``none``) and/or ``LogRecordExporter``
            instances, or ``False``. Default ``None``: only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
            is ``EVENT_ONLY`` or ``SPAN_AND_EVENT``. OTLP records go where the spans go (``endpoint`` gets
            ``/v1/logs`` for HTTP; the exporter reads ``OTEL_EXPORTER_OTLP_[LOGS_]*`` itself); file and OTLP ones
            are batched (``OTEL_BLRP_*``). Installed as the global ``LoggerProvider`` when the tracer provider is
            installed globally; in any case it is ``provider.logger_provider``. A global ``LoggerProvider`` already
            installed (``opentelemetry-instrument``'s, say) is left in place and none is built.
        logs_file_path: OTLP/JSON lines file for log records (default ``OTEL_CALLBACKS_LOGS_FILE_PATH``, else the
            span file's sibling: ``traces.logs.jsonl`` beside ``traces.jsonl``).

    Returns:
        The configured provider, a :class:`BoundedTracerProvider` (bounded ``shutdown``/``force_flush``, which also
        cover its ``logger_provider``; lost spans counted in ``dropped``). Pass it to
        ``OpenTelemetryCallbackHandler(tracer_provider=...)`` when ``set_global=False``. From the main thread,
        set-up also makes SIGTERM flush before the process ends (see ``setup.signals``).

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
    logs_plan = _resolve_logs(
        logs, settings, set_global=set_global, file_path=logs_file_path, endpoint=endpoint, protocol=protocol,
        headers=headers, timeout=timeout, console_format=console_format, exit_timeout_millis=exit_timeout_millis)
    provider = build_provider(
        settings, service_name=service_name, resource_attributes=resource_attributes, extra_exporters=instances,
        console_out=console_out, batch=batch, set_global=set_global,
    )
    if logs_plan is not None:
        from otel_callbacks.setup.log_provider import build_logger_provider, install_global

        logs_settings, log_exporters = logs_plan
        provider.logger_provider = build_logger_provider(
            logs_settings, resource=provider.resource, extra_exporters=log_exporters, console_out=console_out,
            batch=batch)
        if set_global and trace.get_tracer_provider() is provider:  # the log records follow the spans' fate
            install_global(provider.logger_provider)
    if meter_settings is not None:
        build_meter_provider(meter_settings, service_name=service_name, resource_attributes=resource_attributes,
                             console_out=console_out)
    return provider



def _resolve_logs(
    option: bool | str | Sequence[str | LogRecordExporter] | None, spans: TracingSettings, *, set_global: bool,
    file_path: str | os.PathLike[str] | None, endpoint: str | None, protocol: str | None,
    headers: Mapping[str, str] | None, timeout: float | None, console_format: str | None,
    exit_timeout_millis: int | None,
) -> tuple[LogsSettings, list[LogRecordExporter]] | None:
    """The log settings and exporter instances for ``logs=option``, or None when no ``LoggerProvider`` is to be built.
    Resolved before anything is built, so that a bad argument leaves no half-installed setup."""
    if option is False:
        return None
    explicit = option is not None
    # The handler warns about a malformed capture variable when it reads it; set-up says nothing more.
    if option is None and _config.capture_mode(None, warn=False) not in _config.EVENT_MODES:
        return None
    from otel_callbacks.setup.logs import LogRecordExporter, global_logger_provider, global_logger_provider_installed
    from otel_callbacks.setup.logs_env import resolve_logs_settings

    level = logging.WARNING if explicit else logging.DEBUG
    names: str | list[str] | None = None
    instances: list[LogRecordExporter] = []
    if isinstance(option, str):
        names = option
    elif option is not None and option is not True:
        instances = [e for e in option if isinstance(e, LogRecordExporter)]
        names = [e for e in option if not isinstance(e, LogRecordExporter)] or ["none"]
    settings = resolve_logs_settings(
        exporters=names, span_exporters=spans.exporters, span_protocol=spans.protocol, span_file_path=spans.file_path,
        file_path=file_path, endpoint=endpoint, protocol=protocol, headers=headers, timeout=timeout,
        console_format=console_format, exit_timeout_millis=exit_timeout_millis)
    if set_global and global_logger_provider_installed():
        # e.g. opentelemetry-instrument configured logs already: the handler's events go to that one by default.
        logger.log(level, "A global LoggerProvider (%s) is already installed; setup_tracing(logs=...) leaves it in "
                   "place.", type(global_logger_provider()).__name__)
        return None
    if not settings.exporters and not instances:
        logger.log(level, "No log record exporter to set up (no span exporter to follow, and none named): content "
                   "events are not exported; name one, e.g. setup_tracing(logs=['console']).")
        return None
    return settings, instances
