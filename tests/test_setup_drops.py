"""What ``setup_tracing`` returns is bounded and counts its losses (issue 13, item 6).

Before: against a dead (connection refused) or silent (accepts, never answers) collector the provider took 30 s to
``shutdown()`` and 43.5 s for ``force_flush(timeout_millis=2000)``, and dropped spans were counted nowhere. Collectors
are on 127.0.0.1 only (``tests.test_failing_exporters.collector``); the official OTLP exporters keep their default
10 s request timeout, the setting under which the unbounded times were measured.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_callbacks.setup.batching import DropCounter
from otel_callbacks.setup.tracing import BoundedTracerProvider, setup_tracing
from tests.test_failing_exporters import collector, finishes
from tests.test_setup import _OTEL_VARS, end_spans, run_script


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* setting from the shell; frequent exports."""
    for name in _OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")


@pytest.fixture(autouse=True)
def _quiet_sdk(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The exporters log every failed export; what is checked here is ours. A shutdown that gave up goes on in the
    background until its exporter, shut down too, has failed the rest: wait for that, so that no later test sees its
    log lines."""
    caplog.set_level(logging.CRITICAL, logger="opentelemetry")
    yield
    for thread in threading.enumerate():
        if thread.name.startswith("otel-callbacks-") and thread.name != "otel-callbacks-exit-flush":
            thread.join(30)
            assert not thread.is_alive(), f"{thread.name} still running"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("dead", ["refused", "blackhole"])
def test_flush_and_shutdown_bounded_and_losses_counted(dead: str, protocol: str) -> None:
    """force_flush(500) and shutdown() (bound: the exit timeout, 1000 ms here) return well within 10 s, the request
    timeout that held them before; every span that never arrived is counted in ``dropped``."""
    spans = 1500  # three batches of the default 512: several exports would each wait for the request timeout
    with collector(dead) as port:
        provider = setup_tracing(["otlp"], endpoint=f"http://127.0.0.1:{port}", protocol=protocol,
                                 exit_timeout_millis=1000, set_global=False)
        assert isinstance(provider, BoundedTracerProvider)
        end_spans(provider, spans)
        flush = finishes(lambda: provider.force_flush(timeout_millis=500), bound=60)
        shutdown = finishes(provider.shutdown, bound=60)
    print(f"\n{dead} {protocol}: force_flush(500) {flush:.2f} s, shutdown() {shutdown:.2f} s, "
          f"dropped {provider.dropped}")
    assert flush < 5 and shutdown < 8
    assert sum(provider.dropped.values()) == spans  # nothing arrived: every span is counted, once
    assert provider.dropped["queue_full"] == 0


class Gated(SpanExporter):
    """Keeps the spans it is handed; each export waits until ``answering`` is set (a collector that is slow)."""

    def __init__(self) -> None:
        self.answering = threading.Event()
        self.received = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.answering.wait(30)
        self.received += len(spans)
        return SpanExportResult.SUCCESS


def test_full_queue_losses_counted_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the exporter is stuck the queue (50) fills and later spans are refused; once it answers the rest is
    delivered: what arrived plus what ``dropped`` counts as queue_full is every span ended, nothing else is lost."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "50")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10")
    exporter = Gated()
    provider = setup_tracing([exporter], set_global=False, exit_timeout_millis=20000)
    end_spans(provider, 1000)
    exporter.answering.set()
    finishes(provider.shutdown, bound=60)
    dropped = provider.dropped
    print(f"\n1000 spans, queue 50, exporter stuck: arrived {exporter.received}, dropped {dropped}")
    assert dropped["queue_full"] > 0
    assert exporter.received + dropped["queue_full"] == 1000
    assert dropped["export_failed"] == dropped["shutdown"] == 0


def test_failed_exports_counted_by_batch_size() -> None:
    """An HTTP collector answering 503 to everything: each failed batch is counted with its size."""
    with collector("503") as port:
        provider = setup_tracing(["otlp"], endpoint=f"http://127.0.0.1:{port}", protocol="http/protobuf",
                                 timeout=0.5, set_global=False, exit_timeout_millis=20000)
        end_spans(provider, 100)
        assert finishes(lambda: provider.force_flush(timeout_millis=20000), bound=60) < 20
        finishes(provider.shutdown, bound=60)
    assert provider.dropped == {"queue_full": 0, "export_failed": 100, "shutdown": 0}


class Failing(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE


def test_losses_warned_once_per_interval_and_at_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    """Fifty failed exports in a burst give one warning (the interval is a minute), and shutdown one more with
    the rest; both name the count and the reason."""
    provider = setup_tracing([Failing()], batch=False, set_global=False)
    caplog.set_level(logging.WARNING, logger="otel_callbacks")
    end_spans(provider, 50)
    burst = [r.getMessage() for r in caplog.records if r.name.startswith("otel_callbacks")]
    provider.shutdown()
    at_shutdown = [r.getMessage() for r in caplog.records if r.name.startswith("otel_callbacks")][len(burst):]
    assert len(burst) == 1 and burst[0].startswith("Dropped 1 spans bound for Failing")
    assert "exporter failed" in burst[0]
    assert len(at_shutdown) == 1 and at_shutdown[0].startswith("Dropped 49 spans bound for Failing")
    assert provider.dropped["export_failed"] == 50


def test_counter_interval_lets_the_next_warning_through(caplog: pytest.LogCaptureFixture) -> None:
    """Once the interval has passed the next loss is warned about again, with what was lost meanwhile."""
    counter = DropCounter("X", interval_s=0)
    caplog.set_level(logging.WARNING, logger="otel_callbacks")
    counter.drop("queue_full", 3)
    counter.drop("queue_full", 4)
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["Dropped 3 spans bound for X",
                                                                       "Dropped 4 spans bound for X"]
    assert counter.totals()["queue_full"] == 7


def test_drops_observed_as_a_metric() -> None:
    """With a global MeterProvider (here installed after tracing, as setup_tracing(metrics=...) does), the running
    totals are the observable counter otel_callbacks.spans.dropped, by reason."""
    result = run_script("""
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
        from otel_callbacks.setup.metrics import setup_metrics
        from otel_callbacks.setup.tracing import setup_tracing

        class Failing(SpanExporter):
            def export(self, spans):
                return SpanExportResult.FAILURE

        provider = setup_tracing([Failing()], batch=False, set_global=False)
        reader = InMemoryMetricReader()
        setup_metrics([reader])
        for _ in range(5):
            provider.get_tracer("t").start_span("s").end()
        points = {p.attributes["reason"]: p.value for rm in reader.get_metrics_data().resource_metrics
                  for sm in rm.scope_metrics for m in sm.metrics if m.name == "otel_callbacks.spans.dropped"
                  for p in m.data.data_points}
        assert points == {"queue_full": 0, "export_failed": 5, "shutdown": 0}, points
    """)
    assert result.returncode == 0, result.stderr
