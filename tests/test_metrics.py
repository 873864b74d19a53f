"""GenAI client metrics with the SDK's InMemoryMetricReader: values, counts, buckets, streaming-only, errors."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.emit import compat
from otel_callbacks.emit import metrics as metrics_module
from otel_callbacks.emit.metrics import DURATION_BUCKETS, TOKEN_BUCKETS, GenAIMetrics
from tests.support import ai, fake_chat


@pytest.fixture(name="reader")
def _reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture(name="meter_provider")
def _meter_provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


@pytest.fixture(name="mhandler")
def _mhandler(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> OpenTelemetryCallbackHandler:
    handler = OpenTelemetryCallbackHandler(tracer_provider, meter_provider=meter_provider)
    handler.raise_error = True
    return handler


def points(reader: InMemoryMetricReader, name: str) -> list[HistogramDataPoint]:
    data = reader.get_metrics_data()
    found: list[HistogramDataPoint] = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)  # type: ignore[arg-type]
    return found


def unit_of(reader: InMemoryMetricReader, name: str) -> str:
    data = reader.get_metrics_data()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    return metric.unit or ""
    raise AssertionError(name)


def model(**kw: Any) -> Any:
    return fake_chat(ai("a b c", input_tokens=11, output_tokens=7, model="gpt-4o-2024"),
                     ai("d e", input_tokens=5, output_tokens=2, model="gpt-4o-2024"),
                     ls_provider="openai", ls_model_name="gpt-4o", **kw)


class TestModelMetrics:
    def test_token_usage_equals_reported_usage(self, mhandler, reader) -> None:
        chat = model()
        chat.invoke("q", config={"callbacks": [mhandler]})
        chat.invoke("q", config={"callbacks": [mhandler]})
        pts = {p.attributes["gen_ai.token.type"]: p for p in points(reader, "gen_ai.client.token.usage")}
        assert pts["input"].sum == 16 and pts["input"].count == 2
        assert pts["output"].sum == 9 and pts["output"].count == 2
        attrs = dict(pts["input"].attributes)
        assert attrs == {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                         "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024",
                         "gen_ai.token.type": "input"}
        assert tuple(pts["input"].explicit_bounds) == TOKEN_BUCKETS
        assert unit_of(reader, "gen_ai.client.token.usage") == "{token}"

    def test_duration_count_equals_runs(self, mhandler, reader) -> None:
        chat = model()
        for _ in range(2):
            chat.invoke("q", config={"callbacks": [mhandler]})
        (pt,) = points(reader, "gen_ai.client.operation.duration")
        assert pt.count == 2 and pt.sum > 0
        assert tuple(pt.explicit_bounds) == DURATION_BUCKETS
        assert unit_of(reader, "gen_ai.client.operation.duration") == "s"

    def test_streaming_metrics_only_for_streaming(self, mhandler, reader) -> None:
        chat = model()
        chat.invoke("q", config={"callbacks": [mhandler]})
        assert points(reader, "gen_ai.client.operation.time_to_first_chunk") == []
        assert points(reader, "gen_ai.client.operation.time_per_output_chunk") == []
        chunks = list(chat.stream("q", config={"callbacks": [mhandler]}))
        (ttfc,) = points(reader, "gen_ai.client.operation.time_to_first_chunk")
        assert ttfc.count == 1 and ttfc.sum > 0
        (tpoc,) = points(reader, "gen_ai.client.operation.time_per_output_chunk")
        assert tpoc.count == len(chunks) - 1
        assert tuple(tpoc.explicit_bounds) == DURATION_BUCKETS

    def test_errors_tagged(self, mhandler, reader) -> None:
        from langchain_core.language_models.fake_chat_models import FakeListChatModel

        broken = FakeListChatModel(responses=["x"], error_on_chunk_number=0)
        with pytest.raises(Exception) as info:
            list(broken.stream("q", config={"callbacks": [mhandler]}))
        assert type(info.value).__name__ == "FakeListChatModelError"
        (pt,) = points(reader, "gen_ai.client.operation.duration")
        assert pt.attributes["error.type"].endswith("FakeListChatModelError")
        assert points(reader, "gen_ai.client.token.usage") == []

    def test_metrics_recorded_even_when_trace_not_sampled(self, meter_provider, reader) -> None:
        handler = OpenTelemetryCallbackHandler(TracerProvider(sampler=ALWAYS_OFF), meter_provider=meter_provider)
        handler.raise_error = True
        list(model().stream("q", config={"callbacks": [handler]}))
        assert points(reader, "gen_ai.client.operation.duration")[0].count == 1
        assert points(reader, "gen_ai.client.operation.time_to_first_chunk")[0].count == 1


    def test_model_inside_an_unsampled_chain_still_counted(self, meter_provider, reader) -> None:
        """The unsampled fast path (no span work for children) still records the model run's metrics."""
        from langchain_core.prompts import ChatPromptTemplate

        handler = OpenTelemetryCallbackHandler(TracerProvider(sampler=ALWAYS_OFF), meter_provider=meter_provider)
        handler.raise_error = True
        (ChatPromptTemplate.from_messages([("human", "{q}")]) | model()).invoke({"q": "x"},
                                                                               config={"callbacks": [handler]})
        (pt,) = points(reader, "gen_ai.client.operation.duration")
        assert pt.count == 1 and pt.attributes["gen_ai.request.model"] == "gpt-4o"
        assert {p.attributes["gen_ai.token.type"]: p.sum for p in points(reader, "gen_ai.client.token.usage")} == {
            "input": 11, "output": 7}


class TestOtherOperations:
    def test_no_tool_or_agent_metrics_without_opt_in(self, mhandler, reader, monkeypatch) -> None:
        @tool
        def ping(x: str) -> str:
            """Ping."""
            return x

        ping.invoke({"x": "1"}, config={"callbacks": [mhandler]})
        RunnableLambda(lambda x: x).invoke(1, config={"callbacks": [mhandler]})
        data = reader.get_metrics_data()
        assert data is None or points(reader, "gen_ai.execute_tool.duration") == []

    def test_tool_and_agent_durations_with_latest_experimental(self, tracer_provider, meter_provider, reader,
                                                              monkeypatch) -> None:
        from langchain.agents import create_agent

        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,gen_ai_latest_experimental")
        handler = OpenTelemetryCallbackHandler(tracer_provider, meter_provider=meter_provider)
        handler.raise_error = True

        @tool
        def ping(x: str) -> str:
            """Ping."""
            return x

        chat = fake_chat(ai(tool_calls=[{"name": "ping", "args": {"x": "1"}, "id": "c"}]), ai("done"))
        create_agent(chat, tools=[ping], name="pinger").invoke({"messages": [("human", "go")]},
                                                                config={"callbacks": [handler]})
        (tool_pt,) = points(reader, "gen_ai.execute_tool.duration")
        assert tool_pt.count == 1 and tool_pt.attributes["gen_ai.tool.name"] == "ping"
        (agent_pt,) = points(reader, "gen_ai.invoke_agent.duration")
        assert agent_pt.count == 1 and agent_pt.attributes["gen_ai.agent.name"] == "pinger"


@pytest.mark.parametrize("path", ["fast", "public"])
def test_latest_metric_names_under_the_opt_in(tracer_provider, meter_provider, reader, monkeypatch, path) -> None:
    """semantic-conventions-genai's names: inference.* histograms, token histograms per direction (no
    gen_ai.token.type), usage counters per kind reported; none of the v1.41 names."""
    from langchain_core.messages import AIMessage

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    if path == "public":
        monkeypatch.setattr(compat, "fast_path_proven", lambda: False)
    handler = OpenTelemetryCallbackHandler(tracer_provider, meter_provider=meter_provider)
    handler.raise_error = True
    answer = AIMessage("a b c", usage_metadata={"input_tokens": 40, "output_tokens": 9, "total_tokens": 49,
                                                "input_token_details": {"cache_read": 8, "cache_creation": 16},
                                                "output_token_details": {"reasoning": 3}},
                       response_metadata={"model_name": "gpt-4o-2024", "finish_reason": "stop"})
    fake_chat(answer, ls_provider="openai", ls_model_name="gpt-4o").invoke("hi", config={"callbacks": [handler]})
    for _ in model().stream("hi", config={"callbacks": [handler]}):
        pass
    for old in ("gen_ai.client.token.usage", "gen_ai.client.operation.duration",
                "gen_ai.client.operation.time_to_first_chunk", "gen_ai.client.operation.time_per_output_chunk"):
        assert points(reader, old) == [], old
    assert sum(pt.count for pt in points(reader, "gen_ai.client.inference.duration")) == 2
    assert points(reader, "gen_ai.client.inference.time_to_first_chunk")[0].count == 1
    assert points(reader, "gen_ai.client.inference.time_per_output_chunk")[0].count >= 1
    (inp,) = points(reader, "gen_ai.client.inference.operation.input_tokens")
    (out,) = points(reader, "gen_ai.client.inference.operation.output_tokens")
    assert (inp.sum, out.sum) == (40, 9) and "gen_ai.token.type" not in inp.attributes
    counted = {name: [pt.value for pt in points(reader, "gen_ai.client.inference.usage." + name)]
               for name in ("input_tokens", "output_tokens", "cache_read.input_tokens", "cache_write.input_tokens",
                            "reasoning.output_tokens")}
    assert counted == {"input_tokens": [40], "output_tokens": [9], "cache_read.input_tokens": [8],
                       "cache_write.input_tokens": [16], "reasoning.output_tokens": [3]}


def test_no_meter_provider_means_no_metrics_work(tracer_provider) -> None:
    """With only the API's proxy/no-op provider, the handler holds no instruments at all."""
    handler = OpenTelemetryCallbackHandler(tracer_provider)
    assert handler._metrics is None


def test_handler_made_before_the_global_meter_provider_picks_it_up(tracer_provider, monkeypatch) -> None:
    """The common pattern: handler created at import time, setup_metrics() called later in main()."""
    from opentelemetry import metrics
    from opentelemetry.metrics import _internal as metrics_internal

    handler = OpenTelemetryCallbackHandler(tracer_provider)
    handler.raise_error = True
    assert handler._metrics is None
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    # Install it globally for this test only: the API allows one global set per process, so restore afterwards.
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER", None)
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER_SET_ONCE", metrics_internal.Once())
    metrics.set_meter_provider(provider)
    try:
        model().invoke("q", config={"callbacks": [handler]})
        (pt,) = points(reader, "gen_ai.client.operation.duration")
        assert pt.count == 1
    finally:
        provider.shutdown()


# --- the fast path: same collected data as the SDK's public record(), one value per gap ----------------------------
ATTRS = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
         "server.address": "api.example.com", "server.port": 443}
# Gaps spread over several buckets, with float sums whose value depends on the order they are added in.
GAPS = (0.1, 0.2, 0.3, 0.005, 0.7, 3.0, 0.015, 0.1, 99.0, 0.33, 1e-7, 0.31)


def _streaming_record(metric_attrs: dict[str, Any]) -> Any:
    """A model run past its first chunk, as the handler's per-chunk path leaves it for a chunk sink."""
    import time

    from opentelemetry.trace import INVALID_SPAN

    from otel_callbacks.runs.registry import RunRecord

    record = RunRecord(INVALID_SPAN, None, "chat", time.monotonic_ns())
    record.metric_attrs = metric_attrs
    record.first_chunk_ns = record.last_chunk_ns = time.monotonic_ns()
    return record


def _in_span(trace_id: int, sampled: bool) -> Any:
    """A context whose current span is a fixed one (the same ids on both paths), for exemplars to carry."""
    from opentelemetry import context as context_api
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    span = NonRecordingSpan(SpanContext(trace_id, trace_id + 1, False, TraceFlags(1 if sampled else 0)))
    return context_api.attach(set_span_in_context(span))


def _feed_runs(metrics: GenAIMetrics) -> None:
    """Streams and plain calls, in a sampled span (exemplars offered), outside any span, failing, in an unsampled
    span."""
    from opentelemetry import context as context_api

    for run in range(3):
        attrs = dict(ATTRS)
        token = _in_span(100 + run, sampled=True)
        try:
            for i, gap in enumerate(GAPS[run:]):
                if run == 2 and i == 4:  # a context change mid-stream: later gaps carry the other span
                    context_api.detach(token)
                    token = _in_span(150, sampled=True)
                metrics.chunk_gap(attrs, gap)
            attrs["gen_ai.response.model"] = "gpt-4o-2024"  # the handler adds it at the end, after the gaps
            metrics.model_end(attrs, 0.5 + run, {"gen_ai.usage.input_tokens": 7 + run,
                                                  "gen_ai.usage.output_tokens": 3}, None, 0.04 * run)
        finally:
            context_api.detach(token)
    attrs = dict(ATTRS)
    for gap in GAPS:
        metrics.chunk_gap(attrs, gap)
    metrics.model_end(attrs, 2.0, {"gen_ai.usage.output_tokens": 5}, "TimeoutError", None)
    token = _in_span(200, sampled=False)
    try:
        attrs = dict(ATTRS)
        metrics.chunk_gap(attrs, 0.25)
        metrics.model_end(attrs, 0.1, {}, None, None)
    finally:
        context_api.detach(token)
    token = _in_span(300, sampled=True)
    try:
        for i, op in enumerate(("execute_tool", "invoke_agent", "execute_tool")):
            metrics.operation_end(op, {"gen_ai.operation.name": op}, 0.05 * i, "KeyError" if i == 2 else None)
    finally:
        context_api.detach(token)


def _collected(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[Any, ...]], tuple[Any, ...]]:
    found = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    exemplars = tuple((e.value, e.span_id, e.trace_id, e.filtered_attributes) for e in p.exemplars)
                    fields = ("count", "sum", "value", "bucket_counts", "explicit_bounds", "min", "max")
                    found[(metric.name, tuple(sorted(p.attributes.items())))] = (
                        *(getattr(p, f, None) for f in fields), exemplars)
    return found


def _paths(make_reader: Any, views: tuple[Any, ...] = (), *, experimental: bool = True,
           ) -> tuple[list[Any], list[Any], GenAIMetrics]:
    """Each path's collections after the same runs, twice (a collection between runs), and the fast path's metrics."""
    collections = []
    for fast in (True, False):
        random.seed(16)  # a Sum's exemplar reservoir samples at random
        reader = make_reader()
        provider = MeterProvider(metric_readers=[reader], views=list(views))
        metrics = GenAIMetrics(provider, experimental=experimental)
        metrics._fast = metrics._fast and fast
        _feed_runs(metrics)
        first = _collected(reader)
        _feed_runs(metrics)
        collections.append((first, _collected(reader)))
        provider.shutdown()
        if fast:
            fast_metrics = metrics
    return collections[0], tuple(_unaliased(c) for c in collections[1]), fast_metrics


ALIASES = compat.sdk_version() == (1, 39)
"""SDK 1.39 keeps the dict passed to ``record()`` as the data point's attributes, so on the public path the gaps' point
shows the response model the handler adds to that dict at the run's end (its key, and later runs' gaps, do not have
it). The fast path records the attributes as they were at the gaps, as SDK >= 1.40 does."""


def _unaliased(collection: dict[tuple[str, tuple[Any, ...]], Any]) -> dict[tuple[str, tuple[Any, ...]], Any]:
    if not ALIASES:
        return collection
    out = {}
    for (name, attrs), value in collection.items():
        if name.endswith(".time_per_output_chunk"):
            assert ("gen_ai.response.model", "gpt-4o-2024") in attrs
            attrs = tuple(kv for kv in attrs if kv[0] != "gen_ai.response.model")
        out[(name, attrs)] = value
    return out


@pytest.mark.skipif(not compat.fast_path_proven(), reason="CI runs only SDKs the fast path is proven on")
class TestFastPath:
    @pytest.mark.parametrize("experimental", [False, True])
    def test_collected_data_identical_to_the_public_path(self, experimental: bool) -> None:
        fast, public, metrics = _paths(InMemoryMetricReader, experimental=experimental)
        assert fast == public
        gaps = fast[0][(metrics.time_per_output_chunk.name, tuple(sorted(ATTRS.items())))]
        assert gaps[0] == 3 * len(GAPS) - 3 + len(GAPS) + 1  # one value per gap
        assert gaps[6], "exemplars were offered in the sampled runs"
        # the values after each attribute set's first went through the feeds, not through record()
        assert all(feed is not None for feed in metrics._fast_gaps._feeds.values())
        tokens = (metrics._fast_in, metrics._fast_out) if experimental else (metrics._fast_tokens,)
        assert metrics._fast_gaps._feeds and metrics._fast_duration._feeds
        assert all(feed is not None and feed._feeds for feed in tokens)
        tool = fast[0].get(("gen_ai.execute_tool.duration", (("gen_ai.operation.name", "execute_tool"),)))
        assert (tool[0] if tool else None) == (1 if experimental else None)

    def test_identical_with_a_delta_reader(self) -> None:
        from opentelemetry.sdk.metrics import Histogram
        from opentelemetry.sdk.metrics.export import AggregationTemporality

        fast, public, _ = _paths(lambda: InMemoryMetricReader(
            preferred_temporality={Histogram: AggregationTemporality.DELTA}))
        assert fast == public

    def test_identical_with_views_that_filter_or_reaggregate(self) -> None:
        from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, SumAggregation, View

        views = (View(instrument_name="gen_ai.client.operation.duration", attribute_keys={"gen_ai.operation.name"}),
                 View(instrument_name="gen_ai.client.token.usage", aggregation=SumAggregation()),
                 View(instrument_name="gen_ai.client.operation.time_per_output_chunk",
                      aggregation=ExplicitBucketHistogramAggregation((0.01, 1.0))))
        fast, public, _ = _paths(InMemoryMetricReader, views)
        assert fast == public

    def test_gaps_held_until_the_run_ends_then_one_value_each(self, mhandler, reader) -> None:
        chunks = list(model().stream("q", config={"callbacks": [mhandler]}))
        (tpoc,) = points(reader, "gen_ai.client.operation.time_per_output_chunk")
        assert tpoc.count == len(chunks) - 1 and not mhandler._metrics._held
        assert "gen_ai.response.model" not in tpoc.attributes

    def test_chunk_sink_records_what_the_per_chunk_path_records(self, meter_provider, reader) -> None:
        """The sink a stream's steady state can call instead of the per-chunk path: the span sink gets every stamp,
        each call is one gap from ``last_chunk_ns``, which it advances as the per-chunk path does."""
        metrics = GenAIMetrics(meter_provider, experimental=False)
        record = _streaming_record(dict(ATTRS))
        stamps: list[int] = []
        sink = metrics.chunk_sink(record, stamps.append)
        for stamp in range(5):
            sink(stamp)
        assert stamps == [0, 1, 2, 3, 4] and record.last_chunk_ns > record.first_chunk_ns
        metrics.model_end(record.metric_attrs, 0.5, {}, None, 0.01)
        (tpoc,) = points(reader, "gen_ai.client.operation.time_per_output_chunk")
        assert tpoc.count == 5 and 0 < tpoc.sum < 1

    def test_chunk_sink_loses_no_gap_across_a_flush_or_a_full_hold(self, meter_provider, reader) -> None:
        """The sink writes into the stream's held gaps directly: after they are recorded (a flush, or the bound per
        stream) its next gap must start new ones, not land in the recorded ones."""
        metrics = GenAIMetrics(meter_provider, experimental=False)
        record = _streaming_record(dict(ATTRS))
        sink = metrics.chunk_sink(record, lambda stamp: None)
        total = 2 * metrics_module.MAX_HELD_GAPS + 7
        for index in range(total):
            sink(index)
            if index == 10:
                metrics.flush()
        metrics.model_end(record.metric_attrs, 0.5, {}, None, 0.01)
        (tpoc,) = points(reader, "gen_ai.client.operation.time_per_output_chunk")
        assert tpoc.count == total and not metrics._held

    def test_streams_that_never_end_are_bounded(self, meter_provider, reader) -> None:
        metrics = GenAIMetrics(meter_provider, experimental=False)
        open_runs = [dict(ATTRS, run=i) for i in range(metrics_module.MAX_OPEN_STREAMS + 1)]
        for attrs in open_runs:
            metrics.chunk_gap(attrs, 0.2)
        assert len(metrics._held) == 1  # the held gaps of the others were recorded
        metrics.flush()
        assert sum(p.count for p in points(reader, "gen_ai.client.operation.time_per_output_chunk")) == len(open_runs)


def test_outside_the_proven_range_every_value_is_recorded_when_it_happens(monkeypatch, meter_provider,
                                                                        reader) -> None:
    monkeypatch.setattr(compat, "sdk_version", lambda: (1, 99))
    metrics = GenAIMetrics(meter_provider, experimental=False)
    assert not metrics._fast
    attrs = dict(ATTRS)
    metrics.chunk_gap(attrs, 0.2)
    (tpoc,) = points(reader, "gen_ai.client.operation.time_per_output_chunk")
    assert tpoc.count == 1 and not metrics._held
    metrics.model_end(attrs, 0.5, {"gen_ai.usage.input_tokens": 3}, None, None)
    assert points(reader, "gen_ai.client.token.usage")[0].sum == 3
    assert compat.histogram_feed(metrics.duration, attrs) is None
    # A stream's steady-state sink records each gap when it happens too.
    record = _streaming_record(dict(ATTRS, stream="sink"))
    sink = metrics.chunk_sink(record, lambda stamp: None)
    for stamp in range(3):
        sink(stamp)
    streamed = [p for p in points(reader, "gen_ai.client.operation.time_per_output_chunk")
                if p.attributes.get("stream") == "sink"]
    assert [p.count for p in streamed] == [3] and not metrics._held
