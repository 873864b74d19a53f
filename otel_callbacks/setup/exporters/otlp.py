"""Build the official OTLP span and metric exporters from explicit settings (no env reading here: the exporters read
their own, except the malformed variables ``setup.sdk_env`` replaced), plus the URL and protocol helpers the settings
layer uses."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

from otel_callbacks.setup.sdk_env import NO_FALLBACKS, OtlpFallbacks, TlsFiles

GRPC = "grpc"
HTTP_PROTOBUF = "http/protobuf"
PROTOCOLS = (GRPC, HTTP_PROTOBUF)
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "v1/traces"
METRICS_PATH = "v1/metrics"
LOGS_PATH = "v1/logs"
_T = TypeVar("_T")


def traces_url(base: str) -> str:
    """Append ``v1/traces`` to a base OTLP/HTTP endpoint, as the spec says for ``OTEL_EXPORTER_OTLP_ENDPOINT``.

    A base that already ends in ``/v1/traces`` is kept as is, so a full signal URL passed where a base was expected
    still works.

    Example:
        >>> traces_url("http://collector:4318")
        'http://collector:4318/v1/traces'
        >>> traces_url("http://collector:4318/otlp/")
        'http://collector:4318/otlp/v1/traces'
    """
    return signal_url(base, TRACES_PATH)


def signal_url(base: str, signal_path: str) -> str:
    """Append a signal path (``v1/traces``, ``v1/metrics``) to a base OTLP/HTTP endpoint unless it is already there.

    Example:
        >>> signal_url("http://collector:4318", METRICS_PATH)
        'http://collector:4318/v1/metrics'
    """
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if path.endswith("/" + signal_path):
        return urlunsplit(parts)
    return urlunsplit(parts._replace(path=f"{path}/{signal_path}"))


def valid_url(value: str) -> bool:
    """An ``http``/``https`` URL with a host and, if any, a numeric port.

    Example:
        >>> valid_url("http://localhost:4317"), valid_url("localhost:4317")
        (True, False)
    """
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a non-numeric port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def infer_protocol(endpoint: str | None) -> str:
    """Guess the protocol from the conventional port: 4318 is OTLP/HTTP, anything else gRPC (the Python default).

    Example:
        >>> infer_protocol("http://localhost:4318"), infer_protocol("http://localhost:4317")
        ('http/protobuf', 'grpc')
    """
    try:
        port = urlsplit(endpoint).port if endpoint else None
    except ValueError:
        port = None
    return HTTP_PROTOBUF if port == 4318 else GRPC


def make_otlp_exporter(
    protocol: str, *, endpoint: str | None = None, headers: Mapping[str, str] | None = None,
    timeout: float | None = None, fallbacks: OtlpFallbacks = NO_FALLBACKS,
) -> SpanExporter:
    """Create the official OTLP span exporter, handing it only the caller's explicit values.

    What is left None (the exporters' own "not given") the exporter reads from ``OTEL_EXPORTER_OTLP_[TRACES_]*``
    itself, with its own defaults; an explicit HTTP ``endpoint`` is the final URL (including ``/v1/traces``).
    ``fallbacks`` stand in for the variables ``setup.sdk_env`` found malformed. The exporter modules are imported
    here, not at module import, so that console-only users never pay for grpc.
    """
    if protocol == HTTP_PROTOBUF:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        with _out_of_sight(fallbacks):
            return HttpExporter(endpoint=endpoint, **_http_arguments(headers, timeout, fallbacks))
    if protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        with _out_of_sight(fallbacks):
            return GrpcExporter(endpoint=endpoint, **_grpc_arguments(headers, timeout, fallbacks))
    raise ValueError(f"unknown OTLP protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")


def make_otlp_metric_exporter(
    protocol: str, *, endpoint: str | None = None, headers: Mapping[str, str] | None = None,
    timeout: float | None = None, fallbacks: OtlpFallbacks = NO_FALLBACKS,
) -> MetricExporter:
    """Create the official OTLP metric exporter, handing it only the caller's explicit values (as
    :func:`make_otlp_exporter`, with ``OTEL_EXPORTER_OTLP_[METRICS_]*`` and ``/v1/metrics``).

    Temporality and the default histogram aggregation are left to the exporter too
    (``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` / ``..._DEFAULT_HISTOGRAM_AGGREGATION``); with the default
    (explicit buckets) the SDK applies the GenAI bucket boundaries advised by our instruments.
    """
    if protocol == HTTP_PROTOBUF:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

        with _out_of_sight(fallbacks):
            return HttpExporter(endpoint=endpoint, **_http_arguments(headers, timeout, fallbacks))
    if protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        with _out_of_sight(fallbacks):
            return GrpcExporter(endpoint=endpoint, **_grpc_arguments(headers, timeout, fallbacks))
    raise ValueError(f"unknown OTLP protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")


def construct_otlp(
    exporter_class: Callable[..., _T], protocol: str, *, endpoint: str | None = None,
    headers: Mapping[str, str] | None = None, timeout: float | None = None, fallbacks: OtlpFallbacks = NO_FALLBACKS,
) -> _T:
    """Call an official OTLP exporter class of ``protocol`` (any signal) with only the caller's explicit values, as
    :func:`make_otlp_exporter` does: ``setup.logs`` builds the log exporters with it."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown OTLP protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    arguments = (_http_arguments if protocol == HTTP_PROTOBUF else _grpc_arguments)(headers, timeout, fallbacks)
    with _out_of_sight(fallbacks):
        return exporter_class(endpoint=endpoint, **arguments)


_environ_lock = threading.Lock()


def _renew_environ_lock() -> None:
    global _environ_lock
    _environ_lock = threading.Lock()  # another thread may have been building an exporter at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_environ_lock)


@contextlib.contextmanager
def _out_of_sight(fallbacks: OtlpFallbacks) -> Iterator[None]:
    """While the exporter is built, hide the malformed variables it would parse despite its arguments, and drop the
    API's nameless header warning that ``sdk_env`` has already given with the variable's name.

    Hiding means taking the variable out of ``os.environ`` and putting it back, the one way to keep a public
    constructor from reading it. Another thread reading it meanwhile sees it unset, which is what we decided it is.
    """
    api_logger = logging.getLogger("opentelemetry.util.re")
    duplicate = _DropAll()
    if fallbacks.headers is not None:
        api_logger.addFilter(duplicate)
    with _environ_lock:
        saved = {name: os.environ.pop(name) for name in fallbacks.hidden if name in os.environ}
        try:
            yield
        finally:
            os.environ.update(saved)
            api_logger.removeFilter(duplicate)


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _http_arguments(headers: Mapping[str, str] | None, timeout: float | None, fallbacks: OtlpFallbacks
                    ) -> dict[str, Any]:
    arguments: dict[str, Any] = {"headers": _copy(headers if headers is not None else fallbacks.headers),
                                 "timeout": timeout if timeout is not None else fallbacks.timeout}
    if fallbacks.compression is not None:
        from opentelemetry.exporter.otlp.proto.http import Compression

        arguments["compression"] = Compression(fallbacks.compression)
    if fallbacks.tls is not None:
        # An explicit path wins over the variables; in place of an unreadable CA file, the CA bundle requests itself
        # verifies with by default. (A client key or certificate cannot be un-set this way: the exporter reads the
        # variable whenever the argument is None, so sdk_env's warning says so.)
        from requests.certs import where

        arguments["certificate_file"] = fallbacks.tls.certificate or where()
        arguments["client_key_file"] = fallbacks.tls.client_key
        arguments["client_certificate_file"] = fallbacks.tls.client_certificate
    return arguments


def _grpc_arguments(headers: Mapping[str, str] | None, timeout: float | None, fallbacks: OtlpFallbacks
                    ) -> dict[str, Any]:
    arguments: dict[str, Any] = {"headers": _grpc_metadata(headers if headers is not None else fallbacks.headers),
                                 "timeout": timeout if timeout is not None else fallbacks.timeout}
    if fallbacks.compression is not None:
        from grpc import Compression

        arguments["compression"] = {"gzip": Compression.Gzip, "deflate": Compression.Deflate,
                                    "none": Compression.NoCompression}[fallbacks.compression]
    if fallbacks.tls is not None:
        # Credentials passed explicitly are used as they are: the exporter then reads no certificate variable.
        arguments["credentials"] = _grpc_credentials(fallbacks.tls)
    return arguments


def _grpc_credentials(tls: TlsFiles) -> object:
    from grpc import ssl_channel_credentials

    def read(path: str | None) -> bytes | None:
        if path is None:
            return None
        with open(path, "rb") as file:
            return file.read()

    return ssl_channel_credentials(root_certificates=read(tls.certificate), private_key=read(tls.client_key),
                                   certificate_chain=read(tls.client_certificate))


def _copy(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    return dict(headers) if headers is not None else None


def _grpc_metadata(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    # gRPC metadata keys must be lowercase; the exporter passes explicit ones through untouched.
    return {k.lower(): v for k, v in headers.items()} if headers is not None else None
