"""Loopback OTLP receivers (gRPC and HTTP/protobuf, on 127.0.0.1) that take log records beside traces and metrics.

The receivers of ``tests._otlp_receiver`` with the logs service added: ``log_requests`` holds the decoded
``ExportLogsServiceRequest`` objects in arrival order, ``log_paths`` / ``log_headers`` what came with them, and
``logs_received`` is set by the first. The trace and metric side is theirs, unchanged.
"""

from __future__ import annotations

import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests._otlp_receiver import GrpcReceiver, HttpReceiver, _GrpcMetrics


class _Logs:
    def _init_logs(self) -> None:
        self.log_requests: list[ExportLogsServiceRequest] = []
        self.log_headers: list[dict[str, str]] = []
        self.log_paths: list[str] = []
        self._logs_lock = threading.Lock()
        self.logs_received = threading.Event()

    def record_logs(self, request: ExportLogsServiceRequest, headers: dict[str, str], path: str = "") -> None:
        with self._logs_lock:
            self.log_requests.append(request)
            self.log_headers.append(headers)
            self.log_paths.append(path)
        self.logs_received.set()

    def log_records(self) -> list[Any]:
        """Every log record of every request, in arrival order."""
        return [lr for r in self.log_requests for rl in r.resource_logs for sl in rl.scope_logs
                for lr in sl.log_records]

    def log_resources(self) -> list[dict[str, Any]]:
        return [{kv.key: kv.value.string_value for kv in rl.resource.attributes}
                for r in self.log_requests for rl in r.resource_logs]


class GrpcLogsReceiver(GrpcReceiver, _Logs):
    """OTLP/gRPC receiver for traces, metrics and logs; ``endpoint`` is ``http://127.0.0.1:<port>``."""

    def __enter__(self) -> GrpcLogsReceiver:
        self._init_logs()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_GrpcMetrics(self), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_GrpcLogs(self), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        return self


class _GrpcLogs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: _Logs) -> None:
        self._receiver = receiver

    def Export(self, request: ExportLogsServiceRequest, context: grpc.ServicerContext) -> Any:
        self._receiver.record_logs(request, dict(context.invocation_metadata()))
        return logs_service_pb2.ExportLogsServiceResponse()


class HttpLogsReceiver(HttpReceiver, _Logs):
    """OTLP/HTTP protobuf receiver; POSTs to a path ending in ``/v1/logs`` are log requests, ``/v1/metrics`` metric
    requests, any other path trace requests."""

    def __enter__(self) -> HttpLogsReceiver:
        self._init_logs()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = self.path.rstrip("/")
                if path.endswith("/v1/logs"):
                    logs_request = ExportLogsServiceRequest()
                    logs_request.ParseFromString(body)
                    receiver.record_logs(logs_request, headers, self.path)
                    payload = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
                elif path.endswith("/v1/metrics"):
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
