"""Every private-internal probe in ``emit.compat`` pinned to what it reads, on the versions CI runs.

When an SDK, API or CPython release changes one of these internals the probe falls back (the handler keeps working,
more slowly); these tests then fail, so the change is seen instead of silently costing speed or equivalence.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context, create_key
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.emit import compat

SDK = compat.sdk_version()


class TestProvenRange:
    def test_the_installed_sdk_is_one_the_fast_path_is_proven_on(self) -> None:
        """CI runs only SDKs inside the range; widen the range only together with CI's matrix."""
        assert SDK is not None
        assert compat.FAST_PATH_SDK_MIN <= SDK <= compat.FAST_PATH_SDK_MAX, (SDK, compat.FAST_PATH_SDK_MAX)
        assert compat.fast_path_proven()

    def test_outside_the_range_the_handler_takes_the_sdk_path_and_says_so(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tracer_provider: TracerProvider,
    ) -> None:
        """An SDK newer than the proven range gets the public path, with one debug log naming the version."""
        monkeypatch.setattr(compat, "sdk_version", lambda: (1, 99))
        with caplog.at_level(logging.DEBUG, logger="otel_callbacks"):
            handler = OpenTelemetryCallbackHandler(tracer_provider)
        assert handler.emission_path == "sdk"
        assert [r for r in caplog.records if "outside the range" in r.getMessage() and "(1, 99)" in r.getMessage()]

    def test_a_release_known_to_differ_gets_the_sdk_path(self, monkeypatch: pytest.MonkeyPatch,
                                                         tracer_provider: TracerProvider) -> None:
        monkeypatch.setattr(compat, "sdk_version", lambda: (1, 42))
        monkeypatch.setattr(compat, "_sdk_release", lambda: "1.42.0")
        assert OpenTelemetryCallbackHandler(tracer_provider).emission_path == "sdk"
        monkeypatch.setattr(compat, "_sdk_release", lambda: "1.42.1")
        assert OpenTelemetryCallbackHandler(tracer_provider).emission_path == "fast"

    def test_inside_the_range_the_sdk_tracer_gets_the_fast_path(self, tracer_provider: TracerProvider) -> None:
        assert OpenTelemetryCallbackHandler(tracer_provider).emission_path == "fast"

    def test_other_tracer_providers_get_the_api_path(self) -> None:
        assert OpenTelemetryCallbackHandler(trace.NoOpTracerProvider()).emission_path == "sdk"


class TestContextProbes:
    def test_the_runtime_context_var_is_the_apis_own(self) -> None:
        """Setting through the probed ContextVar is what ``context.get_current()`` then returns."""
        get_current, attach, reset, direct = compat.runtime_context_ops()
        assert direct, "the default ContextVarsRuntimeContext is no longer laid out as the fast path expects"
        key = create_key("probe")
        ctx = Context({key: 1})
        token = attach(ctx)
        try:
            assert context_api.get_current() is ctx and get_current() is ctx
        finally:
            reset(token)
        assert context_api.get_current() is not ctx

    def test_reset_raises_for_a_token_of_another_context(self) -> None:
        """``runs.context`` relies on the exception (the public detach only logs)."""
        import contextvars

        _, attach, reset, _ = compat.runtime_context_ops()
        token = contextvars.copy_context().run(attach, Context())
        with pytest.raises(ValueError):
            reset(token)

    def test_running_tasks_map_holds_the_running_task(self) -> None:
        tasks = compat.running_tasks_map()
        assert tasks is not None, f"_asyncio._current_tasks is gone on {sys.version}"

        async def probe() -> bool:
            return asyncio.current_task() in tasks.values()

        assert asyncio.run(probe())


class TestMetricsProbes:
    def test_unset_global_meter_provider_is_seen(self) -> None:
        """In a fresh process no MeterProvider is installed; after one is, the probe says so."""
        import subprocess

        code = (
            "from opentelemetry import metrics\n"
            "from otel_callbacks.emit import compat\n"
            "assert compat.global_meter_provider_unset()\n"
            "assert compat.is_proxy_meter_provider(metrics.get_meter_provider())\n"
            "from opentelemetry.sdk.metrics import MeterProvider\n"
            "metrics.set_meter_provider(MeterProvider())\n"
            "assert not compat.global_meter_provider_unset()\n"
            "assert not compat.is_proxy_meter_provider(metrics.get_meter_provider())\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


FEED_ATTRS = {"gen_ai.operation.name": "chat", "server.port": 443}


class TestHistogramFeedProbe:
    """``compat.histogram_feed`` reads the SDK's consumer, reader storages, view matches and aggregations."""

    @staticmethod
    def _histogram(reader: object) -> tuple[object, object]:
        from opentelemetry.sdk.metrics import MeterProvider

        provider = MeterProvider(metric_readers=[reader])
        return provider, provider.get_meter("t").create_histogram("h", explicit_bucket_boundaries_advisory=(1.0, 2.0))

    def test_found_after_the_sdk_aggregated_the_attribute_set(self) -> None:
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        provider, histogram = self._histogram(InMemoryMetricReader())
        assert compat.histogram_feed(histogram, FEED_ATTRS) is None  # nothing aggregated yet: the SDK makes it
        histogram.record(1.5, FEED_ATTRS)
        feed = compat.histogram_feed(histogram, FEED_ATTRS)
        assert feed is not None and feed.valid() and len(feed.aggregations) == 1
        # the default filter and reservoir: offered straight into the bucket, only a bucket's last offer kept
        assert feed.boundaries == (1.0, 2.0) and feed._buckets is not None and feed.last_per_bucket
        assert feed.context_only
        assert compat.histogram_feed(histogram, {**FEED_ATTRS, "server.port": True}) is None  # another key
        provider.shutdown()  # type: ignore[attr-defined]

    def test_the_sdk_key_function_is_the_one_read(self) -> None:
        """SDK >= 1.40 keys aggregations by ``_hash_attributes``; 1.39 by a frozenset of the items."""
        from opentelemetry.sdk.metrics._internal import _view_instrument_match as matching

        assert hasattr(matching, "_hash_attributes") == (SDK is not None and SDK >= (1, 40))

    def test_none_where_the_sdk_would_drop_aggregations_on_collect(self) -> None:
        from opentelemetry.sdk.metrics import Histogram
        from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

        provider, histogram = self._histogram(
            InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA}))
        histogram.record(1.5, FEED_ATTRS)
        feed = compat.histogram_feed(histogram, FEED_ATTRS)
        # SDK >= 1.40 starts a delta reader's aggregations afresh on each collection; 1.39 resets them in place
        assert (feed is None) == (SDK is not None and SDK >= (1, 40))
        provider.shutdown()  # type: ignore[attr-defined]

    def test_none_outside_the_proven_range_or_for_other_histograms(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        provider, histogram = self._histogram(InMemoryMetricReader())
        histogram.record(1.5, FEED_ATTRS)
        assert compat.histogram_feed(NoOpMeterProvider().get_meter("t").create_histogram("h"), FEED_ATTRS) is None
        monkeypatch.setattr(compat, "sdk_version", lambda: (1, 99))
        assert compat.histogram_feed(histogram, FEED_ATTRS) is None
        provider.shutdown()  # type: ignore[attr-defined]


class TestTracerProbes:
    def test_tracer_parts_read_the_sdk_tracer(self) -> None:
        provider = TracerProvider(span_limits=SpanLimits(max_events=7))
        parts = compat.tracer_parts(provider.get_tracer("t", "1.0"))
        assert parts is not None
        assert isinstance(parts.limits, SpanLimits) and parts.limits.max_events == 7
        assert isinstance(parts.scope, InstrumentationScope) and parts.scope.name == "t"
        assert (parts.enabled is not None) == (SDK >= (1, 40))  # the tracer configurator arrived in 1.40
        # Span metrics: always-on objects in 1.40/1.41, a no-op class from 1.42 unless enabled.
        assert (parts.tracer_metrics is not None) == ((1, 40) <= SDK < (1, 42))

    def test_span_processors_are_the_providers(self) -> None:
        provider = TracerProvider()
        processor = SimpleSpanProcessor(InMemorySpanExporter())
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("t")
        assert compat.span_processors(tracer.span_processor) == (processor,)

    def test_on_ending_is_found_only_where_overridden(self) -> None:
        class Ending(SpanProcessor):
            def _on_ending(self, span: object) -> None:
                pass

        assert compat.on_ending_hook(SpanProcessor()) is None  # the base class's no-op is skipped
        hook = compat.on_ending_hook(Ending())
        if SDK >= (1, 40):
            assert hook is not None
        else:  # 1.39 has no _on_ending hook: the SDK never calls one, and neither does the fast path
            assert hook is None and not hasattr(SpanProcessor, "_on_ending")

    def test_child_span_context_takes_the_tuple_layout(self) -> None:
        parent = SpanContext(0xABC, 0xDEF, True, TraceFlags(1), TraceState([("k", "v")]))
        assert compat.child_span_context is compat._tuple_child_context, "SpanContext's tuple layout changed"
        fast = compat.child_span_context(parent, 42)
        assert fast == compat._checked_child_context(parent, 42) and type(fast) is SpanContext
        assert (fast.trace_id, fast.span_id, fast.is_remote, fast.is_valid, fast.trace_state) == (
            0xABC, 42, False, True, parent.trace_state)
