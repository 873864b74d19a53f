"""Sampling: unsampled traces cost almost nothing and stay consistent; sampled ones are always complete."""

from __future__ import annotations

from collections import Counter

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.emit.sampling import children_follow_parent as _children_follow_parent
from tests.support import SpanTree, ai, fake_chat


def provider_with(sampler: Sampler) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def chain_with_user_span(provider: TracerProvider, repeat: int):  # type: ignore[no-untyped-def]
    tracer = provider.get_tracer("app")

    def lookup(text: str) -> str:
        with tracer.start_as_current_span("db.query"):
            return text

    return (ChatPromptTemplate.from_messages([("human", "{q}")]) | fake_chat(ai("answer"), repeat=repeat)
            | StrOutputParser() | RunnableLambda(lookup))


def traced_chain(ratio: float, repeat: int):  # type: ignore[no-untyped-def]
    """The exporter, a handler and the chain with a user span, under ParentBased(TraceIdRatioBased(ratio))."""
    provider, exporter = provider_with(ParentBased(TraceIdRatioBased(ratio)))
    handler = OpenTelemetryCallbackHandler(provider)
    handler.raise_error = True
    return exporter, handler, chain_with_user_span(provider, repeat=repeat)


class TestRatioZero:
    def test_nothing_exported_context_clean_registry_empty(self) -> None:
        exporter, handler, chain = traced_chain(0, repeat=20)
        for _ in range(20):
            assert chain.invoke({"q": "x"}, config={"callbacks": [handler]}) == "answer"
            assert trace.get_current_span() is trace.INVALID_SPAN
        assert exporter.get_finished_spans() == ()  # the user's span inside is unsampled too: same trace decision
        assert handler.open_runs == 0


class TestPartialSampling:
    def test_every_exported_trace_is_complete(self) -> None:
        """With a 50 % ratio, a sampled trace has all its runs and the user's span; no fragments of others."""
        exporter, handler, chain = traced_chain(0.5, repeat=200)
        for _ in range(200):
            chain.invoke({"q": "x"}, config={"callbacks": [handler]})
        tree = SpanTree(exporter.get_finished_spans())
        per_trace = Counter(s.context.trace_id for s in tree.spans)
        assert 40 < len(per_trace) < 160  # about half of 200 traces
        assert set(per_trace.values()) == {6}  # sequence, prompt, chat, parser, lambda, db.query
        for root in tree.roots():
            assert root.name == "RunnableSequence" and root.parent is None
        assert all(tree.parent(s).name == "lookup" for s in tree.all("db.query"))  # type: ignore[union-attr]


class TestFastPathOnlyForSamplersThatFollowTheParent:
    def test_builtin_samplers(self) -> None:
        assert _children_follow_parent(ParentBased(TraceIdRatioBased(0.1)))
        assert _children_follow_parent(ALWAYS_OFF)
        assert _children_follow_parent(ParentBased(ALWAYS_ON))
        assert not _children_follow_parent(ParentBased(ALWAYS_ON, local_parent_not_sampled=ALWAYS_ON))
        assert not _children_follow_parent(None)

    def test_custom_sampler_gets_every_run(self) -> None:
        """A custom sampler may sample a child of an unsampled run; then that child must get its span."""

        class EveryOtherName(Sampler):
            def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                              trace_state=None) -> SamplingResult:  # type: ignore[no-untyped-def,override]
                return ALWAYS_ON.should_sample(parent_context, trace_id, name) if name == "chat" else \
                    TraceIdRatioBased(0).should_sample(parent_context, trace_id, name)

            def get_description(self) -> str:
                return "EveryOtherName"

        assert not _children_follow_parent(EveryOtherName())
        provider, exporter = provider_with(EveryOtherName())
        handler = OpenTelemetryCallbackHandler(provider)
        handler.raise_error = True
        chain_with_user_span(provider, repeat=1).invoke({"q": "x"}, config={"callbacks": [handler]})
        names = [s.name for s in exporter.get_finished_spans()]
        assert names == ["chat"]
        span = exporter.get_finished_spans()[0]
        assert span.attributes["gen_ai.operation.name"] == "chat"  # the custom sampler saw it at start too
