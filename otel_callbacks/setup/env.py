"""The environment variables otel-callbacks reads for ``setup_tracing`` / ``setup_metrics`` (argument > env > default).

Ours to read: which exporters to build (``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``), which OTLP protocol
(the official exporters are one class per protocol, so the choice is ours: ``OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL``,
else port 4318 of the endpoint means HTTP) and our ``OTEL_CALLBACKS_*``. A malformed one logs ONE warning naming it and
the valid values, then the default is used; a malformed argument raises ``ValueError``.

Not ours: everything the SDK's components read themselves (``OTEL_BSP_*``, ``OTEL_METRIC_EXPORT_*``, the OTLP
endpoint, headers, timeout, certificates, compression). They are handed only what the caller passed explicitly, so
the SDK applies its own defaults, precedence and warnings. The one exception is ``otel-callbacks send``, which posts
already-encoded requests without an SDK exporter: :func:`resolve_replay_target` reads the OTLP variables for it.

Only this module, ``setup.logs_env`` (the same for log records) and ``setup.sdk_env`` (which checks the SDK's
variables before the SDK's components read them, so that a malformed one costs a warning, not an exporter) read
``os.environ`` in the set-up layer.

Example:
    >>> resolve_settings(exporters="otlp", endpoint="http://localhost:4318").endpoint
    'http://localhost:4318/v1/traces'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.util.re import parse_env_headers

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
from otel_callbacks.setup.sdk_env import NO_FALLBACKS, OtlpFallbacks, otlp_fallbacks

logger = logging.getLogger(__name__)

__all__ = [
    "CONSOLE_FORMATS", "EXPORTER_NAMES", "ReplayTarget", "TracingSettings", "check_common", "env_choice",
    "metrics_exporter_env_set", "resolve_exit_timeout", "resolve_exporters", "resolve_otlp", "resolve_replay_target",
    "resolve_settings",
]

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
DEFAULT_EXIT_TIMEOUT_MS = 5000
DEFAULT_REPLAY_TIMEOUT_S = 10.0  # what the OTLP exporters use when OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT is unset


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """Resolved exporter settings. ``endpoint``, ``headers`` and ``timeout`` are the caller's explicit values (an HTTP
    ``endpoint`` already ends in ``/v1/traces``), or None: the OTLP exporter then reads its own environment.
    ``fallbacks`` replace the OTLP variables that are malformed (see :func:`otlp_fallbacks`)."""

    exporters: tuple[str, ...] = ("console",)
    file_path: str = DEFAULT_FILE_PATH
    protocol: str = GRPC
    endpoint: str | None = None
    headers: Mapping[str, str] | None = None
    timeout: float | None = None
    console_format: str = "tree"
    exit_timeout_millis: int = DEFAULT_EXIT_TIMEOUT_MS
    fallbacks: OtlpFallbacks = NO_FALLBACKS


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
    proto, final_endpoint = resolve_otlp(
        "TRACES", TRACES_PATH, endpoint=endpoint, protocol=protocol, alias_protocol=alias_protocol)
    path = os.fspath(file_path) if file_path is not None else (_env(OTEL_CALLBACKS_FILE_PATH) or DEFAULT_FILE_PATH)
    fallbacks = (otlp_fallbacks("TRACES", proto, headers_given=headers is not None, timeout_given=timeout is not None)
                 if "otlp" in names else NO_FALLBACKS)
    return TracingSettings(
        exporters=names,
        file_path=path,
        protocol=proto,
        endpoint=final_endpoint,
        headers=dict(headers) if headers is not None else None,
        timeout=timeout,
        console_format=console_format or env_choice(OTEL_CALLBACKS_CONSOLE_FORMAT, CONSOLE_FORMATS, "tree"),
        exit_timeout_millis=resolve_exit_timeout(exit_timeout_millis),
        fallbacks=fallbacks,
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
) -> tuple[str, str | None]:
    """(protocol, explicit endpoint or None) for ``signal`` (``TRACES``/``METRICS``). An HTTP ``endpoint`` argument
    is a base URL and gets ``signal_path``, as the exporters do for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
    if endpoint is not None and not valid_url(endpoint):
        raise ValueError(f"endpoint must be an http:// or https:// URL with a host, got {endpoint!r}")
    proto = _resolve_protocol(protocol, alias_protocol, endpoint if endpoint is not None else _env_endpoint(signal),
                              signal)
    if endpoint is not None and proto == HTTP_PROTOBUF:
        endpoint = signal_url(endpoint, signal_path)
    return proto, endpoint


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


def _env_endpoint(signal: str) -> str | None:
    # The endpoint the exporter will read, looked at only for its port (4318: HTTP); the exporter owns its value.
    return _env(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_ENDPOINT")


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


def _check_resource_attributes() -> None:
    # Resource.create parses OTEL_RESOURCE_ATTRIBUTES itself, with a warning per bad pair that does not name the
    # variable; make_resource filters that one out, so the warning naming the variable is given here.
    raw = _env("OTEL_RESOURCE_ATTRIBUTES")
    if raw is None:
        return
    bad = []
    for item in raw.split(","):
        key, sep, _value = item.partition("=")
        if item.strip() and (not sep or not key.strip()):
            bad.append(item.strip())
    if bad:
        logger.warning("Ignoring malformed entries %s in OTEL_RESOURCE_ATTRIBUTES; expected comma-separated key=value "
                       "pairs (values URL-encoded).", ", ".join(repr(b) for b in bad))


@dataclass(frozen=True, slots=True)
class ReplayTarget:
    """Where ``otel-callbacks send`` posts: protocol, final endpoint (HTTP: the ``/v1/traces`` URL), headers and the
    request timeout in seconds."""

    protocol: str
    endpoint: str
    headers: Mapping[str, str]
    timeout: float


def resolve_replay_target(
    *, endpoint: str | None, protocol: str | None, headers: Mapping[str, str] | None,
) -> ReplayTarget:
    """The OTLP trace destination for ``send``, read as the official trace exporters read it (no exporter is involved:
    the requests are already encoded): ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` used as is, else the base
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (HTTP: plus ``/v1/traces``), headers and timeout (seconds) from the
    ``OTEL_EXPORTER_OTLP_[TRACES_]`` variables, headers parsed by the API's ``parse_env_headers``.

    Example:
        >>> resolve_replay_target(endpoint="http://h:4318", protocol=None, headers=None).endpoint
        'http://h:4318/v1/traces'
    """
    proto, explicit = resolve_otlp("TRACES", TRACES_PATH, endpoint=endpoint, protocol=protocol, alias_protocol=None)
    final = explicit or _replay_endpoint(proto)
    if headers is None:
        raw = _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or _env("OTEL_EXPORTER_OTLP_HEADERS") or ""
        headers = dict(parse_env_headers(raw, liberal=True))
    return ReplayTarget(protocol=proto, endpoint=final, headers=dict(headers), timeout=_replay_timeout())


def _replay_endpoint(protocol: str) -> str:
    default = DEFAULT_HTTP_ENDPOINT if protocol == HTTP_PROTOBUF else DEFAULT_GRPC_ENDPOINT
    candidates = (
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", False, "OTEL_EXPORTER_OTLP_ENDPOINT if set, else localhost"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", True, "http://localhost:4317 (gRPC) or http://localhost:4318 (HTTP)"),
    )
    for name, is_base, fallback in candidates:
        if (raw := _env(name)) is None:
            continue
        if valid_url(raw):
            return signal_url(raw, TRACES_PATH) if is_base and protocol == HTTP_PROTOBUF else raw
        _warn(name, raw, "an http:// or https:// URL such as http://localhost:4317", fallback)
    return signal_url(default, TRACES_PATH) if protocol == HTTP_PROTOBUF else default


def _replay_timeout() -> float:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        if (raw := _env(name)) is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if value > 0:
            return value
        _warn(name, raw, "a positive number of seconds", DEFAULT_REPLAY_TIMEOUT_S)
        return DEFAULT_REPLAY_TIMEOUT_S
    return DEFAULT_REPLAY_TIMEOUT_S

