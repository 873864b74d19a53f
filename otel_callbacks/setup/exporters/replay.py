"""Replay parsed OTLP trace requests to a backend, for ``otel-callbacks send``.

The SDK exporters take live ``ReadableSpan`` objects, not already-encoded requests, so this posts the protobuf
requests directly: OTLP/HTTP with ``urllib`` and OTLP/gRPC with the generated ``TraceService`` stub.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_callbacks.setup.exporters.otlp import GRPC, HTTP_PROTOBUF


class ReplayError(Exception):
    """A request could not be delivered; the message says where and why."""


def send_request(
    request: ExportTraceServiceRequest, *, protocol: str, endpoint: str, headers: Mapping[str, str], timeout: float
) -> None:
    """Deliver one request; ``endpoint`` is final (HTTP: the ``/v1/traces`` URL).

    Raises:
        ReplayError: the backend was unreachable or refused the request.

    Example:
        >>> # send_request(req, protocol="grpc", endpoint="http://localhost:4317", headers={}, timeout=10)
    """
    if protocol == HTTP_PROTOBUF:
        _send_http(request, endpoint, headers, timeout)
    elif protocol == GRPC:
        _send_grpc(request, endpoint, headers, timeout)
    else:
        raise ReplayError(f"unknown protocol {protocol!r}")


def _send_http(request: ExportTraceServiceRequest, url: str, headers: Mapping[str, str], timeout: float) -> None:
    body = request.SerializeToString()
    http_request = urllib.request.Request(  # URL checked as http(s) by resolve_replay_target
        url, data=body, method="POST", headers={**headers, "Content-Type": "application/x-protobuf"}
    )
    try:
        with urllib.request.urlopen(http_request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise ReplayError(f"{url} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReplayError(f"could not reach {url}: {reason}") from None


def _send_grpc(request: ExportTraceServiceRequest, endpoint: str, headers: Mapping[str, str], timeout: float) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

    parts = urlsplit(endpoint)
    target = parts.netloc or endpoint
    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials())
        if parts.scheme == "https"
        else grpc.insecure_channel(target)
    )
    try:
        stub = TraceServiceStub(channel)  # type: ignore[no-untyped-call]  # the generated gRPC stub has no annotations
        stub.Export(
            request, metadata=[(k.lower(), v) for k, v in headers.items()], timeout=timeout
        )
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else "error"
        details = exc.details() if hasattr(exc, "details") else str(exc)
        raise ReplayError(f"{endpoint} (gRPC) failed: {code}: {details}") from None
    finally:
        channel.close()
