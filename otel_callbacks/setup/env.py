"""Environment variables read by ``setup_tracing`` / ``setup_metrics`` and their resolution (argument > env > default).

This is the only module of the exporter layer that reads ``os.environ``. A malformed env value logs ONE warning
naming the variable and the valid values, then falls back to the default; a malformed argument raises ``ValueError``.

Example:
    >>> resolve_settings(exporters="otlp", endpoint="http://localhost:4318").endpoint
    'http://localhost:4318/v1/traces'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from otel_callbacks._config import env_int
from otel_callbacks._config import env_value as _env
from otel_callbacks._config import warn_invalid as _warn
from otel_callbacks.setup.exporters.otlp import (
    DEFAULT_GRPC_ENDPOINT,
    DEFAULT_HTTP_ENDPOINT,
    GRPC,
    HTTP_PROTOBUF,
    PROTOCOLS,
    TRACES_PATH,
    infer_protocol,
    signal_url,
    valid_url,
)

logger = logging.getLogger("otel_callbacks.setup.tracing")

OTEL_CALLBACKS_FILE_PATH = "OTEL_CALLBACKS_FILE_PATH"
"""Path of the OTLP/JSON lines file written by the ``file`` exporter. Default: ``traces.jsonl``."""

OTEL_CALLBACKS_CONSOLE_FORMAT = "OTEL_CALLBACKS_CONSOLE_FORMAT"
"""Console exporter output: ``tree`` (default, one indented tree per trace) or ``json`` (the SDK's raw dump)."""

OTEL_CALLBACKS_EXIT_TIMEOUT = "OTEL_CALLBACKS_EXIT_TIMEOUT"
"""Milliseconds to wait for pending spans at interpreter exit. Default: 5000."""

EXPORTER_NAMES = ("console", "file", "otlp", "none")
CONSOLE_FORMATS = ("tree", "json")
# Names used by opentelemetry-distro's entry points; accepted so an existing OTEL_TRACES_EXPORTER keeps working.
_EXPORTER_ALIASES = {"otlp_proto_grpc": ("otlp", GRPC), "otlp_proto_http": ("otlp", HTTP_PROTOBUF)}
DEFAULT_FILE_PATH = "traces.jsonl"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_EXIT_TIMEOUT_MS = 5000


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """``BatchSpanProcessor`` parameters (``OTEL_BSP_*``), with the SDK's defaults."""

    schedule_delay_millis: int = 5000
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    export_timeout_millis: int = 30000


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """Fully resolved exporter settings. ``endpoint`` is final (HTTP: includes ``/v1/traces``)."""

    exporters: tuple[str, ...] = ("console",)
    file_path: str = DEFAULT_FILE_PATH
    protocol: str = GRPC
    endpoint: str = DEFAULT_GRPC_ENDPOINT
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT_S
    console_format: str = "tree"
    exit_timeout_millis: int = DEFAULT_EXIT_TIMEOUT_MS
    bsp: BatchSettings = field(default_factory=BatchSettings)


def resolve_settings(
    *,
    exporters: str | Sequence[str] | None = None,
    file_path: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    console_format: str | None = None,
    exit_timeout_millis: int | None = None,
) -> TracingSettings:
    """Resolve every setting with the precedence argument > ``OTEL_*`` environment > default.

    Example:
        >>> resolve_settings(exporters=["console", "file"], file_path="t.jsonl").exporters
        ('console', 'file')
    """
    names, alias_protocol = resolve_exporters(
        exporters, implied=_implied(file_path, endpoint), variable="OTEL_TRACES_EXPORTER", valid=EXPORTER_NAMES)
    check_common(console_format, timeout, exit_timeout_millis)
    proto, final_endpoint, final_headers, final_timeout = resolve_otlp(
        "TRACES", TRACES_PATH, endpoint=endpoint, protocol=protocol, alias_protocol=alias_protocol, headers=headers,
        timeout=timeout)
    path = os.fspath(file_path) if file_path is not None else (_env(OTEL_CALLBACKS_FILE_PATH) or DEFAULT_FILE_PATH)
    return TracingSettings(
        exporters=names,
        file_path=path,
        protocol=proto,
        endpoint=final_endpoint,
        headers=final_headers,
        timeout=final_timeout,
        console_format=console_format or env_choice(OTEL_CALLBACKS_CONSOLE_FORMAT, CONSOLE_FORMATS, "tree"),
        exit_timeout_millis=resolve_exit_timeout(exit_timeout_millis),
        bsp=_resolve_bsp(),
    )


def metrics_exporter_env_set() -> bool:
    """Whether ``OTEL_METRICS_EXPORTER`` is set: ``setup_tracing(metrics=None)`` then sets up metrics too."""
    return _env("OTEL_METRICS_EXPORTER") is not None


def check_common(console_format: str | None, timeout: float | None, exit_timeout_millis: int | None) -> None:
    if console_format is not None and console_format not in CONSOLE_FORMATS:
        raise ValueError(f"console_format must be one of {', '.join(CONSOLE_FORMATS)}, got {console_format!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if exit_timeout_millis is not None and exit_timeout_millis < 0:
        raise ValueError(f"exit_timeout_millis must be >= 0, got {exit_timeout_millis!r}")
    _check_resource_attributes()


def resolve_otlp(
    signal: str, signal_path: str, *, endpoint: str | None, protocol: str | None, alias_protocol: str | None,
    headers: Mapping[str, str] | None, timeout: float | None,
) -> tuple[str, str, dict[str, str], float]:
    """(protocol, final endpoint, headers, timeout) for ``signal`` (``TRACES``/``METRICS``), each from its own
    ``OTEL_EXPORTER_OTLP_<signal>_*`` variable, else the generic one. HTTP base URLs get ``signal_path``."""
    raw_endpoint, endpoint_is_base = _resolve_endpoint(endpoint, signal)
    proto = _resolve_protocol(protocol, alias_protocol, raw_endpoint, signal)
    if raw_endpoint is None:
        raw_endpoint = DEFAULT_HTTP_ENDPOINT if proto == HTTP_PROTOBUF else DEFAULT_GRPC_ENDPOINT
    final = signal_url(raw_endpoint, signal_path) if proto == HTTP_PROTOBUF and endpoint_is_base else raw_endpoint
    return (proto, final, dict(headers) if headers is not None else _resolve_headers(signal),
            timeout if timeout is not None else _resolve_timeout(signal))


def resolve_exit_timeout(exit_timeout_millis: int | None) -> int:
    if exit_timeout_millis is not None:
        return exit_timeout_millis
    return env_int(OTEL_CALLBACKS_EXIT_TIMEOUT, DEFAULT_EXIT_TIMEOUT_MS, minimum=0)


def env_choice(name: str, valid: Sequence[str], default: str) -> str:
    raw = _env(name)
    if raw is None:
        return default
    if raw.lower() not in valid:
        _warn(name, raw, ", ".join(valid), default)
        return default
    return raw.lower()


def _implied(file_path: object, endpoint: object) -> tuple[str, ...]:
    # Passing file_path= or endpoint= states intent; it turns that exporter on without also naming it.
    return tuple(n for n, given in (("file", file_path), ("otlp", endpoint)) if given is not None)


def resolve_exporters(
    exporters: str | Sequence[str] | None, *, implied: tuple[str, ...], variable: str, valid: Sequence[str],
    default: tuple[str, ...] = ("console",),
) -> tuple[tuple[str, ...], str | None]:
    if exporters is not None:
        items = [exporters] if isinstance(exporters, str) else list(exporters)
        names = [n.strip().lower() for item in items for n in item.split(",") if n.strip()]
        bad = [n for n in names if n not in valid and n not in _EXPORTER_ALIASES]
        if bad:
            raise ValueError(f"unknown exporter(s) {', '.join(bad)}; valid: {', '.join(valid)}")
        source = "exporters"
    elif (raw := _env(variable)) is not None:
        names = [n.strip().lower() for n in raw.split(",") if n.strip()]
        bad = [n for n in names if n not in valid and n not in _EXPORTER_ALIASES]
        names = [n for n in names if n not in bad]
        if bad:
            _warn(variable, raw, f"a comma list of {', '.join(valid)}", ",".join(names) or "console")
        names = (names or ["console"]) + list(implied)
        source = variable
    else:
        names = list(implied or default)
        source = ""
    alias_protocol = next((_EXPORTER_ALIASES[n][1] for n in names if n in _EXPORTER_ALIASES), None)
    names = [_EXPORTER_ALIASES[n][0] if n in _EXPORTER_ALIASES else n for n in names]
    if "none" in names and len(set(names)) > 1:
        logger.warning("%s mixes 'none' with other exporters; ignoring 'none'.", source)
    unique = tuple(dict.fromkeys(n for n in names if n != "none"))
    return unique, alias_protocol


def _resolve_endpoint(endpoint: str | None, signal: str) -> tuple[str | None, bool]:
    """Return (endpoint, is_base). Only the signal-specific variable is a full URL used as is (OTLP spec)."""
    if endpoint is not None:
        if not valid_url(endpoint):
            raise ValueError(f"endpoint must be an http:// or https:// URL with a host, got {endpoint!r}")
        return endpoint, True
    candidates = (
        (f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", False, "OTEL_EXPORTER_OTLP_ENDPOINT if set, else localhost"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", True, "http://localhost:4317 (gRPC) or http://localhost:4318 (HTTP)"),
    )
    for name, is_base, fallback in candidates:
        if (raw := _env(name)) is None:
            continue
        if valid_url(raw):
            return raw, is_base
        _warn(name, raw, "an http:// or https:// URL such as http://localhost:4317", fallback)
    return None, True


def _resolve_protocol(protocol: str | None, alias_protocol: str | None, endpoint: str | None, signal: str) -> str:
    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        return protocol
    if alias_protocol is not None:
        return alias_protocol
    inferred = infer_protocol(endpoint)
    for name in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        if (raw := _env(name)) is None:
            continue
        if raw.lower() in PROTOCOLS:
            return raw.lower()
        note = " (http/json is not supported by the Python OTLP exporters)" if raw.lower() == "http/json" else ""
        _warn(name, raw, ", ".join(PROTOCOLS) + note, inferred)
        return inferred
    return inferred


def _parse_pairs(name: str, raw: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    bad: list[str] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            bad.append(item.strip())
            continue
        pairs[unquote(key.strip())] = unquote(value.strip())
    if bad:
        logger.warning("Ignoring malformed entries %s in %s; expected comma-separated key=value pairs "
                       "(values URL-encoded).", ", ".join(repr(b) for b in bad), name)
    return pairs


def _resolve_headers(signal: str) -> dict[str, str]:
    for name in (f"OTEL_EXPORTER_OTLP_{signal}_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"):
        if (raw := _env(name)) is not None:
            return _parse_pairs(name, raw)
    return {}


def _resolve_timeout(signal: str) -> float:
    # Seconds, as the Python OTLP exporters document and read these variables (the spec text says milliseconds).
    for name in (f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        if (raw := _env(name)) is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if value > 0:
            return value
        _warn(name, raw, "a positive number of seconds", DEFAULT_TIMEOUT_S)
        return DEFAULT_TIMEOUT_S
    return DEFAULT_TIMEOUT_S


def _resolve_bsp() -> BatchSettings:
    d = BatchSettings()
    queue = env_int("OTEL_BSP_MAX_QUEUE_SIZE", d.max_queue_size, minimum=1)
    batch = env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", d.max_export_batch_size, minimum=1)
    if batch > queue:
        # The SDK raises ValueError for this combination; a typo in env must not stop the app from starting.
        logger.warning("OTEL_BSP_MAX_EXPORT_BATCH_SIZE=%d exceeds OTEL_BSP_MAX_QUEUE_SIZE=%d; using %d.",
                       batch, queue, queue)
        batch = queue
    return BatchSettings(
        schedule_delay_millis=env_int("OTEL_BSP_SCHEDULE_DELAY", d.schedule_delay_millis, minimum=1),
        max_queue_size=queue,
        max_export_batch_size=batch,
        export_timeout_millis=env_int("OTEL_BSP_EXPORT_TIMEOUT", d.export_timeout_millis, minimum=0),
    )


def _check_resource_attributes() -> None:
    # Resource.create parses OTEL_RESOURCE_ATTRIBUTES itself; we only validate it here to give a clearer warning.
    raw = _env("OTEL_RESOURCE_ATTRIBUTES")
    if raw is not None:
        _parse_pairs("OTEL_RESOURCE_ATTRIBUTES", raw)
