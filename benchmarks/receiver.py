"""A loopback OTLP trace receiver for the real-export table: accepts, counts and discards.

    python benchmarks/receiver.py --ports-file /tmp/ports.json

Serves OTLP/HTTP protobuf (POST to any path, gzip or plain) and OTLP/gRPC on 127.0.0.1, ports chosen by the OS
and written as JSON ``{"http": PORT, "grpc": PORT}`` to ``--ports-file`` once both listen. ``GET /stats`` answers
the running totals per protocol (requests, spans, their attributes and events, wire and protobuf bytes) as JSON,
so the traced process can count what really arrived. Runs in its own process, started by run.py and stopped by its
pid: its CPU (parsing to count spans) is not the traced process's and is never timed. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import sys
import threading
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class Totals:
    """Per-protocol counters; a request is recorded before its response is sent, so once an exporter's
    ``force_flush`` returns, everything it sent is already counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_protocol: dict[str, dict[str, int]] = {
            protocol: {"requests": 0, "spans": 0, "attributes": 0, "events": 0, "wire_bytes": 0, "proto_bytes": 0,
                       "bad_requests": 0}
            for protocol in ("http", "grpc")
        }

    def record(self, protocol: str, request: ExportTraceServiceRequest, wire_bytes: int, proto_bytes: int) -> None:
        spans = [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
        with self._lock:
            totals = self.by_protocol[protocol]
            totals["requests"] += 1
            totals["spans"] += len(spans)
            # What the encoder had to walk: attributes and events weigh most in its CPU time.
            totals["attributes"] += sum(len(span.attributes) for span in spans)
            totals["events"] += sum(len(span.events) for span in spans)
            totals["wire_bytes"] += wire_bytes
            totals["proto_bytes"] += proto_bytes

    def bad(self, protocol: str) -> None:
        with self._lock:
            self.by_protocol[protocol]["bad_requests"] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {protocol: dict(totals) for protocol, totals in self.by_protocol.items()}


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def http_server(totals: Totals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as a collector serves it: the exporters' HTTP sessions reuse one connection.
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                data = _decompress(body, (self.headers.get("Content-Encoding") or "").lower())
                request = ExportTraceServiceRequest()
                request.ParseFromString(data)
            except Exception:
                totals.bad("http")
                self._reply(400, b"", "text/plain")
                return
            totals.record("http", request, len(body), len(data))
            self._reply(200, trace_service_pb2.ExportTraceServiceResponse().SerializeToString(),
                        "application/x-protobuf")

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/stats":
                self._reply(404, b"", "text/plain")
                return
            self._reply(200, json.dumps(totals.snapshot()).encode(), "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request would be the loudest thing in a benchmark run

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, totals: Totals) -> None:
        self._totals = totals

    def Export(self, request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> Any:
        # The message's size is the encoder's output; gRPC's framing and HTTP/2 headers come on top.
        size = request.ByteSize()
        self._totals.record("grpc", request, size, size)
        return trace_service_pb2.ExportTraceServiceResponse()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ports-file", type=Path, required=True)
    args = parser.parse_args(argv)
    totals = Totals()
    server = http_server(totals)
    threading.Thread(target=server.serve_forever, name="otlp-http", daemon=True).start()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(totals), grpc_server)
    grpc_port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Written last and atomically: the file's presence means both servers accept connections.
    partial = args.ports_file.with_suffix(".tmp")
    partial.write_text(json.dumps({"http": server.server_address[1], "grpc": grpc_port}))
    partial.replace(args.ports_file)
    stop.wait()
    grpc_server.stop(grace=None)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
