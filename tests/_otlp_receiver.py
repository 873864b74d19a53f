"""In-process OTLP trace and metric receivers on 127.0.0.1 (gRPC and HTTP/protobuf) for exporter-layer tests.

Each is a context manager exposing ``endpoint``, ``requests`` (the decoded ``ExportTraceServiceRequest`` objects, in
arrival order) and ``metric_requests`` (``ExportMetricsServiceRequest``). Modelled on opentelemetry-test-utils'
``OtlpProtoTestServer``; kept dependency-free so the fast test suite needs no external backend.
"""

from __future__ import annotations

import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric


class _Receiver:
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.metric_requests: list[ExportMetricsServiceRequest] = []
        self.metric_headers: list[dict[str, str]] = []
        self.metric_paths: list[str] = []
        self._lock = threading.Lock()
        self.received = threading.Event()
        self.metrics_received = threading.Event()

    def record(self, request: ExportTraceServiceRequest, headers: dict[str, str], path: str = "") -> None:
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers)
            self.paths.append(path)
        self.received.set()

    def record_metrics(self, request: ExportMetricsServiceRequest, headers: dict[str, str], path: str = "") -> None:
        with self._lock:
            self.metric_requests.append(request)
            self.metric_headers.append(headers)
            self.metric_paths.append(path)
        self.metrics_received.set()

    def metrics(self) -> list[Metric]:
        """Every metric of every request, in arrival order (a metric exported twice appears twice)."""
        return [m for r in self.metric_requests for rm in r.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics]

    def last_metrics(self) -> dict[str, Metric]:
        """name -> the metric as last exported: with cumulative temporality that is its final state."""
        return {m.name: m for m in self.metrics()}

    def span_names(self) -> list[str]:
        return [s.name for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def spans(self) -> list[Any]:
        return [s for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]


class GrpcReceiver(_Receiver, trace_service_pb2_grpc.TraceServiceServicer):
    """OTLP/gRPC receiver for traces and metrics; ``endpoint`` is ``http://127.0.0.1:<port>``."""

    def __enter__(self) -> GrpcReceiver:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_GrpcMetrics(self), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)

    def Export(self, request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> Any:
        self.record(request, dict(context.invocation_metadata()))
        return trace_service_pb2.ExportTraceServiceResponse()


class _GrpcMetrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    # A separate servicer: both OTLP services name their one method Export.
    def __init__(self, receiver: _Receiver) -> None:
        self._receiver = receiver

    def Export(self, request: ExportMetricsServiceRequest, context: grpc.ServicerContext) -> Any:
        self._receiver.record_metrics(request, dict(context.invocation_metadata()))
        return metrics_service_pb2.ExportMetricsServiceResponse()


class HttpReceiver(_Receiver):
    """OTLP/HTTP protobuf receiver; ``endpoint`` is the base URL. POSTs to a path ending in ``/v1/metrics`` are
    metric requests, to any other path trace requests; all are accepted and recorded."""

    def __enter__(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path.rstrip("/").endswith("/v1/metrics"):
                    metrics_request = ExportMetricsServiceRequest()
                    metrics_request.ParseFromString(body)
                    receiver.record_metrics(metrics_request, headers, self.path)
                    payload = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
                else:
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    receiver.record(request, headers, self.path)
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
