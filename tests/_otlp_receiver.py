"""In-process OTLP trace receivers on 127.0.0.1 (gRPC and HTTP/protobuf) for exporter-layer tests.

Each is a context manager exposing ``endpoint`` and ``requests`` (the decoded ``ExportTraceServiceRequest`` objects,
in arrival order). Modelled on opentelemetry-test-utils' ``OtlpProtoTestServer``; kept dependency-free so the fast
test suite needs no external backend.
"""

from __future__ import annotations

import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class _Receiver:
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self.received = threading.Event()

    def record(self, request: ExportTraceServiceRequest, headers: dict[str, str], path: str = "") -> None:
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers)
            self.paths.append(path)
        self.received.set()

    def span_names(self) -> list[str]:
        return [s.name for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def spans(self) -> list[Any]:
        return [s for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


class GrpcReceiver(_Receiver, trace_service_pb2_grpc.TraceServiceServicer):
    """OTLP/gRPC receiver; ``endpoint`` is ``http://127.0.0.1:<port>``."""

    def __enter__(self) -> GrpcReceiver:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)

    def Export(self, request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> Any:
        self.record(request, dict(context.invocation_metadata()))
        return trace_service_pb2.ExportTraceServiceResponse()


class HttpReceiver(_Receiver):
    """OTLP/HTTP protobuf receiver; ``endpoint`` is the base URL, POSTs to any path are accepted and recorded."""

    def __enter__(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.record(request, {k.lower(): v for k, v in self.headers.items()}, self.path)
                payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
