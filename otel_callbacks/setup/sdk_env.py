"""The SDK's own variables, checked before its components read them, so that a malformed one never costs an exporter.

The OTLP exporters and the batch processor read ``OTEL_EXPORTER_OTLP_*`` and ``OTEL_BSP_*`` themselves, and we let
them (``setup.env`` hands them only the caller's explicit values). But their reactions to a malformed value differ:
the gRPC exporter raises on ``OTEL_EXPORTER_OTLP_TIMEOUT=abc`` or an unknown compression (setup then had no exporter at
all), the HTTP one warns without naming the variable, the batch processor logs an error with a traceback, and a
certificate path that does not exist fails every HTTPS export. So each variable is checked here first. A well-formed
one is left to the component; a malformed one gets ONE warning naming it (``_config.warn_invalid``), and the default
for that one setting is handed to the component explicitly, which then does not read the variable.

Precedence is the exporters': the signal variable (``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``) over the generic one. A
malformed signal variable is treated as unset, so the generic one (if well formed) or the default applies.

Example:
    >>> otlp_fallbacks("TRACES", "grpc", headers_given=False, timeout_given=False).timeout is None
    True
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.util.re import parse_env_headers

from otel_callbacks._config import env_value as _env
from otel_callbacks._config import warn_invalid as _warn

__all__ = ["BSP_DEFAULTS", "NO_FALLBACKS", "OtlpFallbacks", "TlsFiles", "batch_processor_fallbacks", "otlp_fallbacks"]

DEFAULT_TIMEOUT_S = 10.0  # the OTLP exporters' default request timeout
COMPRESSIONS = ("gzip", "deflate", "none")
# The specification's defaults for OTEL_BSP_*, which are also the SDK's: variable -> (keyword argument, default).
BSP_DEFAULTS: dict[str, tuple[str, int]] = {
    "OTEL_BSP_MAX_QUEUE_SIZE": ("max_queue_size", 2048),
    "OTEL_BSP_SCHEDULE_DELAY": ("schedule_delay_millis", 5000),
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": ("max_export_batch_size", 512),
    "OTEL_BSP_EXPORT_TIMEOUT": ("export_timeout_millis", 30000),
}


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The TLS files an OTLP exporter should use when one of its certificate variables names a file that cannot be
    read: the readable ones, None for the others (the system's CA roots; no client certificate)."""

    certificate: str | None = None
    client_key: str | None = None
    client_certificate: str | None = None


@dataclass(frozen=True, slots=True)
class OtlpFallbacks:
    """What to hand an OTLP exporter in place of a malformed ``OTEL_EXPORTER_OTLP_*`` variable it would read itself.

    Each field is None while the variables behind it are well formed (the exporter reads them, as usual), else the
    default for that one setting: the exporter keeps working instead of raising or failing every export."""

    timeout: float | None = None
    headers: Mapping[str, str] | None = None
    compression: str | None = None
    tls: TlsFiles | None = None
    # Malformed variables the exporter parses even when given the argument (the gRPC exporters' float() of
    # OTEL_EXPORTER_OTLP_{SIGNAL}_TIMEOUT, which raises): they must be out of its sight while it is built.
    hidden: tuple[str, ...] = ()


NO_FALLBACKS = OtlpFallbacks()


def otlp_fallbacks(signal: str, protocol: str, *, headers_given: bool, timeout_given: bool) -> OtlpFallbacks:
    """Check the ``OTEL_EXPORTER_OTLP_[SIGNAL_]*`` variables the ``protocol``'s exporter for ``signal`` (``TRACES`` or
    ``METRICS``) will read; warn once per malformed one and return the defaults to pass in their place.

    Values the caller passed (``headers_given``, ``timeout_given``) win over the variables, so those are not checked.
    """
    specific_timeout = _env(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT")
    hidden = (f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT",) if (
        protocol == "grpc" and specific_timeout is not None and not _valid_timeout(specific_timeout)) else ()
    return OtlpFallbacks(
        hidden=hidden,
        timeout=_timeout(signal, warn=not timeout_given) if not timeout_given or hidden else None,
        headers=None if headers_given else _headers(signal),
        compression=_compression(signal),
        tls=_tls(signal, protocol),
    )


def batch_processor_fallbacks() -> tuple[dict[str, int], int]:
    """Keyword arguments for ``BatchSpanProcessor`` replacing malformed ``OTEL_BSP_*`` variables (each warned about
    once; empty when all are well formed, so the processor reads them itself), and the queue size it will have.

    The processor parses them as integers and refuses values <= 0 (the export timeout may be 0) and a batch larger
    than the queue. For that last one neither variable alone is wrong: both get their defaults, and one warning names
    both."""
    arguments: dict[str, int] = {}
    effective: dict[str, int] = {}
    for name, (keyword, default) in BSP_DEFAULTS.items():
        raw = _env(name)
        minimum = 0 if name == "OTEL_BSP_EXPORT_TIMEOUT" else 1
        value = _int(raw)
        if raw is not None and (value is None or value < minimum):
            _warn(name, raw, f"an integer >= {minimum}", default)
            arguments[keyword] = default
        effective[name] = value if raw is not None and value is not None and value >= minimum else default
    queue, batch = effective["OTEL_BSP_MAX_QUEUE_SIZE"], effective["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"]
    if batch > queue:
        logging.getLogger(__name__).warning(
            "Invalid values OTEL_BSP_MAX_EXPORT_BATCH_SIZE=%d > OTEL_BSP_MAX_QUEUE_SIZE=%d; a batch cannot be larger "
            "than the queue. Using the defaults for both: batch 512, queue 2048.", batch, queue)
        arguments.update(max_queue_size=2048, max_export_batch_size=512)
        queue = 2048
    return arguments, queue


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _chain(signal: str, setting: str) -> tuple[str, str]:
    return f"OTEL_EXPORTER_OTLP_{signal}_{setting}", f"OTEL_EXPORTER_OTLP_{setting}"


def _timeout(signal: str, *, warn: bool = True) -> float | None:
    """None when the variable the exporter would use is well formed (or none is set); else the value to use."""
    specific, generic = _chain(signal, "TIMEOUT")
    bad = False
    for name in (specific, generic):
        if (raw := _env(name)) is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value > 0:
            return value if bad else None  # after a malformed signal variable the exporter must be told this one
        bad = True
        fallback = f"{generic} ({_env(generic)})" if name == specific and _valid_timeout(_env(generic)) else (
            f"{DEFAULT_TIMEOUT_S:g} s")
        if warn:
            _warn(name, raw, "a positive number of seconds", fallback)
    return DEFAULT_TIMEOUT_S if bad else None


def _valid_timeout(raw: str | None) -> bool:
    try:
        value = float(raw) if raw is not None else math.nan
    except ValueError:
        return False
    return math.isfinite(value) and value > 0


def _headers(signal: str) -> Mapping[str, str] | None:
    # The exporters read the signal variable if set, else the generic one, with the API's parse_env_headers (liberal),
    # which drops malformed entries with a warning that names no variable. We parse the same way, with its warning
    # caught, and name the variable ourselves; the entries it kept are then passed explicitly.
    specific, generic = _chain(signal, "HEADERS")
    name = specific if _env(specific) is not None else generic
    if (raw := _env(name)) is None:
        return None
    catcher = _Catch()
    api_logger = logging.getLogger("opentelemetry.util.re")
    api_logger.addFilter(catcher)
    try:
        parsed = dict(parse_env_headers(raw, liberal=True))
    finally:
        api_logger.removeFilter(catcher)
    if not catcher.caught:
        return None
    bad = [e.strip() for e in raw.split(",") if e.strip() and "=" not in e]
    shown = ", ".join(repr(b) for b in bad) or "some entries"
    _warn(name, raw, "comma-separated key=value pairs, values URL-encoded",
          f"the well-formed entries only ({len(parsed)}; dropped {shown})")
    return parsed


class _Catch(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.caught = False

    def filter(self, record: logging.LogRecord) -> bool:
        self.caught = True
        return False


def _compression(signal: str) -> str | None:
    specific, generic = _chain(signal, "COMPRESSION")
    bad = False
    for name in (specific, generic):
        if (raw := _env(name)) is None:
            continue
        if raw.lower() in COMPRESSIONS:
            return raw.lower() if bad else None
        bad = True
        generic_raw = _env(generic)
        fallback = (f"{generic} ({generic_raw})" if name == specific and generic_raw is not None
                    and generic_raw.lower() in COMPRESSIONS else "none")
        _warn(name, raw, ", ".join(COMPRESSIONS), fallback)
    return "none" if bad else None


def _tls(signal: str, protocol: str) -> TlsFiles | None:
    """None when every TLS file variable is unset or names a readable file; else the readable files to use."""
    files: dict[str, str | None] = {}
    bad: set[str] = set()
    for setting in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"):
        specific, generic = _chain(signal, setting)
        name = specific if _env(specific) is not None else generic
        path = _env(name)
        if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            if setting == "CERTIFICATE":
                default = "the system's CA certificates"
            elif protocol == "grpc":
                default = "no client certificate"
            else:  # the HTTP exporter reads these whenever no argument is given: only the user can un-set them
                default = "none possible: the HTTP exporter still reads it, so HTTPS exports fail until it is fixed"
            _warn(name, path, "the path of a readable file", default)
            bad.add(setting)
            path = None
        files[setting] = path
    if not bad:
        return None
    key, cert = files["CLIENT_KEY"], files["CLIENT_CERTIFICATE"]
    if bad & {"CLIENT_KEY", "CLIENT_CERTIFICATE"}:  # half a client identity is no use to TLS: none at all then
        key = cert = None
    return TlsFiles(certificate=files["CERTIFICATE"], client_key=key, client_certificate=cert)
