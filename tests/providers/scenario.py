"""Run by ``tests/test_provider_spans.py`` with a provider virtualenv's interpreter (``tests/providers/venvs.py``).

Instruments the OpenAI client with a real provider instrumentation, traces ChatOpenAI calls (against the test's
loopback OpenAI server) with our handler, and prints every finished span as one JSON line, so the test can count
inference spans per model call and sum the usage over each trace.

    python scenario.py PROVIDER BASE_URL PROVIDER_SPANS

PROVIDER: ``openllmetry`` (OpenLLMetry's OpenAI instrumentation), ``openai-v2`` (the official one) or ``util-genai``
(a provider instrumented through util-genai's ``TelemetryHandler.inference``, as util-genai based instrumentations
make their inference spans; no released openai-v2 imports with the util-genai release that has the suppression key).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import openai
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_callbacks import OpenTelemetryCallbackHandler


def instrument(provider: str, tracer_provider: TracerProvider) -> None:
    if provider == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    elif provider == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as V2Instrumentor

        V2Instrumentor().instrument(tracer_provider=tracer_provider)
    elif provider == "util-genai":
        _instrument_through_util_genai(tracer_provider)
    else:
        raise SystemExit(f"unknown provider {provider!r}")


def _instrument_through_util_genai(tracer_provider: TracerProvider) -> None:
    from opentelemetry.util.genai.handler import TelemetryHandler

    telemetry = TelemetryHandler(tracer_provider=tracer_provider, instrumentation_scope_name="provider.util_genai")
    completions = openai.resources.chat.completions
    sync_create, async_create = completions.Completions.create, completions.AsyncCompletions.create

    def record_usage(invocation: Any, response: Any) -> None:
        parsed = response.parse() if hasattr(response, "parse") else response  # ChatOpenAI asks for the raw one
        usage = getattr(parsed, "usage", None)
        if usage is not None:
            invocation.input_tokens = usage.prompt_tokens
            invocation.output_tokens = usage.completion_tokens

    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        with telemetry.inference("openai", request_model=kwargs.get("model")) as invocation:
            response = sync_create(self, *args, **kwargs)
            record_usage(invocation, response)
            return response

    async def acreate(self: Any, *args: Any, **kwargs: Any) -> Any:
        with telemetry.inference("openai", request_model=kwargs.get("model")) as invocation:
            response = await async_create(self, *args, **kwargs)
            if asyncio.iscoroutine(response):  # the raw-response wrapper of some versions
                response = await response
            record_usage(invocation, response)
            return response

    completions.Completions.create = create  # type: ignore[method-assign]
    completions.AsyncCompletions.create = acreate  # type: ignore[method-assign]


def main() -> None:
    provider, base_url, provider_spans = sys.argv[1:4]
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(provider, tracer_provider)
    handler = OpenTelemetryCallbackHandler(tracer_provider, provider_spans=provider_spans)
    config: Any = {"callbacks": [handler]}
    model = ChatOpenAI(model="gpt-4o-mini", base_url=base_url, api_key="sk-test-secret", max_retries=0, timeout=10,
                       stream_usage=True)
    direct = openai.OpenAI(base_url=base_url, api_key="sk-test-secret", max_retries=0)

    def emit(scenario: str) -> None:
        for span in exporter.get_finished_spans():
            print(json.dumps({"scenario": scenario, **_span(span)}))
        exporter.clear()

    model.invoke("What color is the sky?", config=config)
    emit("invoke")
    asyncio.run(model.ainvoke("What color is the sky?", config=config))
    emit("ainvoke")
    for _ in model.stream("What color is the sky?", config=config):
        pass
    emit("stream")

    async def astream() -> None:
        async for _ in model.astream("What color is the sky?", config=config):
            pass

    asyncio.run(astream())
    emit("astream")

    # A provider call made directly in a node and in a tool, not through a LangChain model: the provider's own span
    # is the only one, so it must stay (OpenLLMetry's LangChain instrumentation loses it, its issue #2271).
    @tool
    def ask_directly(question: str) -> str:
        """Ask the model without LangChain."""
        reply = direct.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
        return reply.choices[0].message.content or ""

    def node(state: MessagesState) -> dict[str, Any]:
        direct.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "from a node"}])
        answer = ask_directly.invoke({"question": "from a tool"})
        return {"messages": [("ai", answer)]}

    graph = StateGraph(MessagesState)
    graph.add_node("direct", node)
    graph.add_edge(START, "direct")
    graph.add_edge("direct", END)
    graph.compile().invoke({"messages": [("user", "hi")]}, config=config)
    emit("direct")


def _span(span: ReadableSpan) -> dict[str, Any]:
    attrs = dict(span.attributes or {})
    return {
        "name": span.name,
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "operation": attrs.get("gen_ai.operation.name"),
        "input_tokens": attrs.get("gen_ai.usage.input_tokens"),
        "output_tokens": attrs.get("gen_ai.usage.output_tokens"),
        "node": attrs.get("langchain.metadata.langgraph_node"),
    }


if __name__ == "__main__":
    main()
