"""Failing exporters and collectors never block or break the application.

Collectors on 127.0.0.1 only: an unreachable port (connection refused), a server that accepts and never answers
(black hole) and an HTTP server answering 503; the official OTLP gRPC and HTTP exporters with a short timeout, behind
a BatchSpanProcessor as in production. Plus an exporter that raises.

What is measured in the same test, so the bound is a ratio: a chain's latency traced-to-the-dead-collector vs untraced,
interleaved in blocks. What must merely finish (hang detection, not performance): ``force_flush``/``shutdown`` run in
a thread that is joined with a generous bound of many exporter timeouts.

SDK behaviour found here (opentelemetry-sdk 1.45), for the docs: ``BatchSpanProcessor.force_flush(timeout_millis)``
ignores its timeout (it exports every queued batch synchronously; upstream TODO #4568), so a flush against a dead
collector takes about (queued batches x exporter timeout); ``shutdown()`` takes no timeout and waits up to 30 s for
the worker. The exporter's own timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``) is the knob that bounds both. A full queue
drops spans; SDK 1.40+ logs one "Queue full" warning per dropped span (not rate-limited), 1.39 drops silently.
"""

from __future__ import annotations

import contextlib
import http.server
import logging
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

from otel_callbacks import OpenTelemetryCallbackHandler

EXPORT_TIMEOUT_S = 0.5
HANG_BOUND_S = 40 * EXPORT_TIMEOUT_S  # "it returned at all", with room for a loaded 2-core box


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BlackHole:
    """Accepts TCP connections on 127.0.0.1 and never answers; stop() closes everything."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


class Unavailable(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def collector(kind: str) -> Iterator[int]:
    """A dead collector on 127.0.0.1: yields its port, stops whatever it started."""
    if kind == "refused":
        yield free_port()
    elif kind == "blackhole":
        hole = BlackHole()
        try:
            yield hole.port
        finally:
            hole.stop()
    elif kind == "503":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield int(server.server_address[1])
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
    else:
        raise ValueError(kind)


def otlp_exporter(protocol: str, port: int) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=EXPORT_TIMEOUT_S)  # type: ignore[arg-type]
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=EXPORT_TIMEOUT_S)


def finishes(call: Callable[[], Any], bound: float = HANG_BOUND_S, allowed: tuple[type[BaseException], ...] = ()
             ) -> float:
    """Run ``call`` in a daemon thread; its duration, or fail if it has not returned within ``bound`` seconds."""
    done: list[float] = []
    errors: list[BaseException] = []

    def target() -> None:
        start = time.perf_counter()
        try:
            call()
        except BaseException as exc:
            errors.append(exc)
        done.append(time.perf_counter() - start)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"{call} did not return within {bound:.0f} s"
    assert [e for e in errors if not isinstance(e, allowed)] == []
    return done[0]


def work(x: int) -> int:
    time.sleep(0.001)  # a chain step waits on I/O (a model, a database); 1 ms is a fast one
    return x + 1


CHAIN = RunnableLambda(work) | RunnableLambda(lambda x: x * 2)


def block_seconds(config: dict[str, Any] | None, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        assert CHAIN.invoke(i, config=config) == (i + 1) * 2  # type: ignore[arg-type]
    return (time.perf_counter() - start) / n


@pytest.fixture(autouse=True)
def _bsp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch processors built without arguments read these: a small queue, frequent exports."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "256")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")


@pytest.mark.parametrize(("protocol", "dead"), [("grpc", "refused"), ("http", "refused"), ("grpc", "blackhole"),
                                                ("http", "blackhole"), ("http", "503")])
def test_dead_collector_does_not_slow_the_chain(protocol: str, dead: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="opentelemetry")  # export failures are expected and logged per batch
    with collector(dead) as port:
        exporter = otlp_exporter(protocol, port)
        provider = TracerProvider(shutdown_on_exit=False)
        processor = BatchSpanProcessor(exporter)
        provider.add_span_processor(processor)
        handler = OpenTelemetryCallbackHandler(provider)
        traced: dict[str, Any] = {"callbacks": [handler]}
        try:
            block_seconds(None, 10)
            block_seconds(traced, 10)  # warm-up: the exporter's first failure is under way
            untraced, dead_times = [], []
            for _ in range(6):  # interleaved, so both see the same machine load
                untraced.append(block_seconds(None, 25))
                dead_times.append(block_seconds(traced, 25))
            base, with_dead = statistics.median(untraced), statistics.median(dead_times)
            ratio = with_dead / base
            print(f"\nOTLP {protocol} -> {dead} collector: untraced {base * 1e3:.2f} ms/invoke, traced "
                  f"{with_dead * 1e3:.2f} ms/invoke, ratio {ratio:.2f}")
            assert handler.open_runs == 0
            assert with_dead < 3 * base + 0.0005, f"tracing to a dead collector slowed the chain {ratio:.1f}x"
            flush = finishes(lambda: provider.force_flush(timeout_millis=200))
            print(f"  force_flush(timeout_millis=200) returned after {flush:.2f} s")
        finally:
            shutdown = finishes(provider.shutdown)
            print(f"  shutdown returned after {shutdown:.2f} s")


def test_full_queue_drops_spans_instead_of_growing() -> None:
    """A collector that does not answer while the app keeps producing: at most OTEL_BSP_MAX_QUEUE_SIZE spans wait,
    plus the one batch being exported; every other span is dropped instead of buffered."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    answering = threading.Event()

    class Counting(HttpExporter):
        handed = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            Counting.handed += len(spans)
            # Hold the export thread until production ends, however fast the machine, so the bound below is exact.
            answering.wait(HANG_BOUND_S)
            return super().export(spans)

    produced, queue_size, batch_size = 5_000, 256, 64  # the sizes _bsp_env sets
    with collector("blackhole") as port:
        provider = TracerProvider(shutdown_on_exit=False)
        exporter = Counting(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=EXPORT_TIMEOUT_S)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        handler = OpenTelemetryCallbackHandler(provider)
        handler.raise_error = True
        # SDK 1.40+ logs "Queue full" once per dropped span, 1.39 drops silently: what counts is the count.
        with _quiet("opentelemetry"):
            try:
                for _ in range(produced):
                    run_id = uuid4()
                    handler.on_chain_start({"name": "c"}, {"q": "x" * 1000}, run_id=run_id)
                    handler.on_chain_end({"a": "y" * 1000}, run_id=run_id)
            finally:
                answering.set()
                shutdown = finishes(provider.shutdown)  # drains what the queue kept
    assert handler.open_runs == 0
    dropped = produced - Counting.handed
    print(f"\n{produced} spans to a collector that did not answer: handed to the exporter {Counting.handed}, "
          f"dropped {dropped}; shutdown drained the queue in {shutdown:.2f} s")
    assert 0 < Counting.handed <= queue_size + batch_size, "the queue must stay bounded"
    assert dropped >= produced - queue_size - batch_size


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class RaisingExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        raise RuntimeError("exporter is broken")

    def shutdown(self) -> None:
        raise RuntimeError("exporter shutdown is broken")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        raise RuntimeError("exporter flush is broken")


@pytest.mark.parametrize("processor_kind", ["simple", "batch"])
def test_raising_exporter(processor_kind: str, caplog: pytest.LogCaptureFixture) -> None:
    exporter = RaisingExporter()
    processor = SimpleSpanProcessor(exporter) if processor_kind == "simple" else BatchSpanProcessor(exporter)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    handler = OpenTelemetryCallbackHandler(provider)
    handler.raise_error = True  # the exporter's exception must not even reach our callbacks
    traced: dict[str, Any] = {"callbacks": [handler]}
    with caplog.at_level(logging.CRITICAL, logger="opentelemetry"):
        base = statistics.median(block_seconds(None, 20) for _ in range(3))
        with_raising = statistics.median(block_seconds(traced, 20) for _ in range(3))
        finishes(lambda: provider.force_flush(timeout_millis=200))
        finishes(provider.shutdown, allowed=(RuntimeError,))  # the SDK lets the exporter's shutdown error through
    print(f"\nraising exporter ({processor_kind}): untraced {base * 1e3:.2f} ms, traced {with_raising * 1e3:.2f} ms")
    assert exporter.calls > 0
    assert handler.open_runs == 0
    assert with_raising < 3 * base + 0.0005
