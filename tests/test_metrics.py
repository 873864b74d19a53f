"""GenAI client metrics with the SDK's InMemoryMetricReader: values, counts, buckets, streaming-only, errors."""

from __future__ import annotations

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
from otel_callbacks.emit.metrics import DURATION_BUCKETS, TOKEN_BUCKETS
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
