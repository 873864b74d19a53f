"""Settings for the log records that carry content as events (argument > ``OTEL_*`` env > what the spans chose).

``setup_tracing(logs=...)`` sends log records where the spans go unless told otherwise: the same exporter names
(``OTEL_LOGS_EXPORTER`` overrides them), the same OTLP protocol (``OTEL_EXPORTER_OTLP_LOGS_PROTOCOL``, a
logs-specific endpoint or an ``otlp_proto_*`` name in ``OTEL_LOGS_EXPORTER`` override it), a sibling of the span file.
The OTLP log exporter and the batch log record processor read the rest of their environment themselves
(``OTEL_EXPORTER_OTLP_[LOGS_]*``, ``OTEL_BLRP_*``), as for spans.

Example:
    >>> resolve_logs_settings(span_exporters=("file",), span_protocol="grpc", span_file_path="t.jsonl").file_path
    't.logs.jsonl'
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from otel_callbacks._config import env_value as _env
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
from otel_callbacks.setup.exporters.otlp import GRPC, LOGS_PATH
from otel_callbacks.setup.sdk_env import NO_FALLBACKS, OtlpFallbacks, otlp_fallbacks

__all__ = ["LOG_EXPORTER_NAMES", "OTEL_CALLBACKS_LOGS_FILE_PATH", "LogsSettings", "resolve_logs_file_path",
           "resolve_logs_settings"]

OTEL_CALLBACKS_LOGS_FILE_PATH = "OTEL_CALLBACKS_LOGS_FILE_PATH"
"""Path of the OTLP/JSON lines file for log records. Default: the span file's sibling, ``traces.logs.jsonl`` for
``traces.jsonl`` (``.logs`` before the extension)."""

LOG_EXPORTER_NAMES = ("console", "file", "otlp", "none")


@dataclass(frozen=True, slots=True)
class LogsSettings:
    """Resolved log exporter settings. ``endpoint``, ``headers`` and ``timeout`` are the caller's explicit values (an
    HTTP ``endpoint`` already ends in ``/v1/logs``), or None: the OTLP exporter then reads its own environment."""

    exporters: tuple[str, ...] = ("console",)
    file_path: str = "traces.logs.jsonl"
    protocol: str = GRPC
    endpoint: str | None = None
    headers: Mapping[str, str] | None = None
    timeout: float | None = None
    console_format: str = "tree"
    exit_timeout_millis: int = DEFAULT_EXIT_TIMEOUT_MS
    fallbacks: OtlpFallbacks = NO_FALLBACKS


def resolve_logs_settings(
    *,
    exporters: str | Sequence[str] | None = None,
    span_exporters: Sequence[str] = ("console",),
    span_protocol: str = GRPC,
    span_file_path: str = "traces.jsonl",
    file_path: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    console_format: str | None = None,
    exit_timeout_millis: int | None = None,
) -> LogsSettings:
    """Resolve the log settings: ``exporters`` (names among console, file, otlp, none), else ``OTEL_LOGS_EXPORTER``,
    else ``span_exporters``. A bad argument raises ``ValueError``; a bad variable warns once and falls back.

    Example:
        >>> resolve_logs_settings(exporters="otlp", endpoint="http://localhost:4318").endpoint
        'http://localhost:4318/v1/logs'
    """
    names, alias_protocol = resolve_exporters(
        exporters, implied=(), variable="OTEL_LOGS_EXPORTER", valid=LOG_EXPORTER_NAMES, default=tuple(span_exporters))
    check_common(console_format, timeout, exit_timeout_millis)
    if protocol is None and alias_protocol is None and not _logs_specific_otlp():
        # Nothing about logs in particular: they travel as the spans do (an otlp_proto_http span exporter, say).
        protocol = span_protocol
    proto, final_endpoint = resolve_otlp(
        "LOGS", LOGS_PATH, endpoint=endpoint, protocol=protocol, alias_protocol=alias_protocol)
    return LogsSettings(
        exporters=names,
        file_path=resolve_logs_file_path(file_path, span_file_path),
        protocol=proto,
        endpoint=final_endpoint,
        headers=dict(headers) if headers is not None else None,
        timeout=timeout,
        console_format=console_format or env_choice(OTEL_CALLBACKS_CONSOLE_FORMAT, CONSOLE_FORMATS, "tree"),
        exit_timeout_millis=resolve_exit_timeout(exit_timeout_millis),
        fallbacks=otlp_fallbacks("LOGS", proto, headers_given=headers is not None, timeout_given=timeout is not None)
        if "otlp" in names else NO_FALLBACKS,
    )


def resolve_logs_file_path(explicit: str | os.PathLike[str] | None, span_file_path: str) -> str:
    """The log records' file: the argument, else ``OTEL_CALLBACKS_LOGS_FILE_PATH``, else the span file's sibling
    (apart from it, so that ``otel-callbacks view`` reads the span file as it always has).

    Example:
        >>> resolve_logs_file_path(None, "out/traces.jsonl")
        'out/traces.logs.jsonl'
    """
    if explicit is not None:
        return os.fspath(explicit)
    stem, extension = os.path.splitext(span_file_path)
    return _env(OTEL_CALLBACKS_LOGS_FILE_PATH) or f"{stem}.logs{extension}"


def _logs_specific_otlp() -> bool:
    names = ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
    return any(_env(name) is not None for name in names)
