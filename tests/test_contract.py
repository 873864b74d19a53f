"""The handler's contract with OpenTelemetry, on both emission paths (conftest parametrises this module).

Each test pins a defect the fast path or the core once had: a processor added after the handler, attribute keys
exporters reject, a 0-event limit, deepcopy, start attributes for on_start processors, one provider per handler,
Contexts that never change after a run ends, and an import that survives a malformed SDK variable.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import logging
import subprocess
import sys
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_callbacks import OpenTelemetryCallbackHandler
from tests.support import SpanTree, ai, fake_chat


def provider_with_exporter(**kwargs: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(**kwargs)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


class TestProcessors:
    def test_processor_added_after_the_handler_gets_every_span(self, emission: str) -> None:
        """The app adds its processor after making the handler (SDK 1.39 once exported 0 spans here)."""
        provider = TracerProvider()
        handler = OpenTelemetryCallbackHandler(provider)
        handler.raise_error = True
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        (RunnableLambda(lambda x: x) | RunnableLambda(lambda x: x)).invoke(1, config={"callbacks": [handler]})
        assert handler.emission_path == emission
        assert len(exporter.get_finished_spans()) == 3

    def test_on_start_sees_the_start_attributes(self, handler: OpenTelemetryCallbackHandler,
                                                tracer_provider: TracerProvider) -> None:
        """Sampling-relevant attributes are there when processors' on_start runs, as the conventions ask."""
        seen: dict[str, dict[str, Any]] = {}

        class AtStart(SpanProcessor):
            def on_start(self, span: Any, parent_context: Any = None) -> None:
                seen[span.name] = dict(span.attributes or {})

        tracer_provider.add_span_processor(AtStart())
        model = fake_chat(ai("hi"), ls_provider="openai", ls_model_name="gpt-4o-mini")
        (RunnableLambda(lambda x: x) | model).invoke("q", config={"callbacks": [handler], "metadata": {"k": "v"}})
        chat = seen["chat gpt-4o-mini"]
        assert chat["gen_ai.operation.name"] == "chat"
        assert chat["gen_ai.request.model"] == "gpt-4o-mini"
        assert chat["gen_ai.provider.name"] == "openai"
        assert chat["langchain.run.type"] == "llm" and chat["langchain.metadata.k"] == "v"
        assert all("langchain.run.id" in attrs for attrs in seen.values())


class TestSpanApiEdges:
    def test_keys_exporters_reject_are_dropped_as_the_sdk_drops_them(
        self, handler: OpenTelemetryCallbackHandler, spans: Any, caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Empty and non-str keys set by user code never reach the OTLP encoder."""

        @tool
        def odd(x: str) -> str:
            """Sets odd keys on the current span."""
            span = trace.get_current_span()
            span.set_attribute("", 1)
            span.set_attributes({5: "five", "fine": "yes"})  # type: ignore[dict-item]
            return x

        odd.invoke("a", config={"callbacks": [handler]})
        (exported,) = spans.raw()
        assert exported.attributes["fine"] == "yes"
        assert all(isinstance(k, str) and k for k in exported.attributes)
        with caplog.at_level(logging.ERROR):
            encode_spans([exported])
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    def test_a_zero_event_limit_keeps_no_event(self, emission: str) -> None:
        provider, exporter = provider_with_exporter(span_limits=SpanLimits(max_events=0))
        handler = OpenTelemetryCallbackHandler(provider)
        handler.raise_error = True
        live: list[int] = []

        def step(x: int) -> int:
            span = trace.get_current_span()
            span.add_event("mine")
            live.append(len(span.events))  # type: ignore[attr-defined]
            return x

        RunnableLambda(step).invoke(1, config={"callbacks": [handler]})
        assert live == [0]
        assert [len(s.events) for s in exporter.get_finished_spans()] == [0]

    def test_an_exported_span_deep_copies_as_the_sdks_own(
        self, handler: OpenTelemetryCallbackHandler, tracer_provider: TracerProvider, spans: Any,
    ) -> None:
        """Where the SDK's own exported span deep-copies (SDK >= 1.40), ours does too; where it does not (1.39:
        an event's attributes hold a lock), ours fails the same way rather than differently."""
        reference = tracer_provider.get_tracer("reference").start_span("reference")
        reference.add_event("e", {"k": 1})
        reference.end()
        model = fake_chat(ai("hello"))
        for _ in model.stream("q", config={"callbacks": [handler]}):
            pass
        sdk_span, exported = spans.raw()
        try:
            copy.deepcopy(sdk_span)
        except TypeError:
            with pytest.raises(TypeError):
                copy.deepcopy(exported)
            return
        clone = copy.deepcopy(exported)
        assert isinstance(clone, ReadableSpan)
        assert (clone.name, clone.context, dict(clone.attributes), len(clone.events), clone.status.status_code) == (
            exported.name, exported.context, dict(exported.attributes), len(exported.events),
            exported.status.status_code)


class TestProviders:
    def test_two_handlers_on_two_providers_each_trace_every_run(self, emission: str) -> None:
        """Each handler does its own job: the second provider's exporter is not starved by the first."""
        (p1, e1), (p2, e2) = provider_with_exporter(), provider_with_exporter()
        h1, h2 = OpenTelemetryCallbackHandler(p1), OpenTelemetryCallbackHandler(p2)
        chain = RunnableLambda(lambda x: x) | RunnableLambda(lambda x: x)
        chain.invoke(1, config={"callbacks": [h1, h2]})
        one, two = SpanTree(e1.get_finished_spans()), SpanTree(e2.get_finished_spans())
        assert len(one) == len(two) == 3
        assert len(one.roots()) == len(two.roots()) == 1
        assert {s.context.trace_id for s in one.spans}.isdisjoint({s.context.trace_id for s in two.spans})

    def test_two_handlers_on_one_provider_trace_a_run_once(self, emission: str) -> None:
        provider, exporter = provider_with_exporter()
        h1, h2 = OpenTelemetryCallbackHandler(provider), OpenTelemetryCallbackHandler(provider)
        (RunnableLambda(lambda x: x) | RunnableLambda(lambda x: x)).invoke(1, config={"callbacks": [h1, h2]})
        tree = SpanTree(exporter.get_finished_spans())
        assert len(tree) == 3 and len(tree.roots()) == 1


class TestContexts:
    async def test_a_context_captured_inside_a_child_run_never_changes(
        self, handler: OpenTelemetryCallbackHandler, tracer_provider: TracerProvider, spans: Any,
    ) -> None:
        """A background task started in an async lambda opens its later spans under that lambda's span, and the
        caller's context after the await is exactly the ambient one."""
        tracer = tracer_provider.get_tracer("app")
        release = asyncio.Event()
        background: list[asyncio.Task[None]] = []

        async def later() -> None:
            await release.wait()
            with tracer.start_as_current_span("background"):
                pass

        async def work(x: int) -> int:
            background.append(asyncio.create_task(later()))
            return x

        chain = RunnableLambda(lambda x: x).with_config(run_name="first") | RunnableLambda(work).with_config(
            run_name="work")
        with tracer.start_as_current_span("request") as request:
            ambient = context_api.get_current()
            await chain.ainvoke(1, config={"callbacks": [handler]})
            assert context_api.get_current() == ambient and trace.get_current_span() is request
        release.set()
        await background[0]
        tree = spans()
        assert tree.parent(tree.one("background")).name == "work"
        assert tree.parent(tree.one("RunnableSequence")).name == "request"

    async def test_an_async_root_run_ends_in_a_copied_context(self) -> None:
        """The limit: langchain-core runs an async run's end callback in a task of its own (a copy of the caller's
        context), so nothing set there reaches the caller — which is why an async root's attached context is
        the one Context the handler retires (see runs/context.py)."""
        marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")

        class SetsAtEnd(BaseCallbackHandler):
            run_inline = True

            def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
                marker.set("start")

            def on_chain_end(self, *args: Any, **kwargs: Any) -> None:
                marker.set("end")

        async def work(x: int) -> int:
            return x

        await RunnableLambda(work).ainvoke(1, config={"callbacks": [SetsAtEnd()]})
        assert marker.get() == "start"  # the start ran here; the end's set never came back

    async def test_an_async_root_restores_the_caller_and_documents_the_captured_case(
        self, handler: OpenTelemetryCallbackHandler, tracer_provider: TracerProvider, spans: Any,
    ) -> None:
        """The documented exception: a Context captured in an async *root* run's own code reverts to the ambient
        context when the run ends, because the caller goes on in that same context."""
        tracer = tracer_provider.get_tracer("app")
        captured: list[context_api.Context] = []

        async def work(x: int) -> int:
            captured.append(context_api.get_current())
            return x

        with tracer.start_as_current_span("request") as request:
            await RunnableLambda(work).with_config(run_name="root").ainvoke(1, config={"callbacks": [handler]})
            assert trace.get_current_span() is request
            assert trace.get_current_span(captured[0]) is request


class TestImport:
    def test_import_and_the_handler_survive_a_malformed_sdk_variable(self, emission: str) -> None:
        """The SDK raises at import on a malformed span limit; importing otel_callbacks and running the handler's
        callbacks must not (langchain-core's own tracers import the SDK through langsmith and do fail: so
        ``instrument`` and setup load on first use, not at import)."""
        code = (
            "import sys, uuid\n"
            "import otel_callbacks\n"
            "handler = otel_callbacks.OpenTelemetryCallbackHandler()\n"
            "run = uuid.uuid4()\n"
            "handler.on_chain_start({'name': 'c'}, {}, run_id=run)\n"
            "handler.on_chain_end({}, run_id=run)\n"
            "print(handler.emission_path, handler.open_runs, 'opentelemetry.sdk.trace' in sys.modules)\n"
        )
        env = {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "abc", "PATH": "/usr/bin:/bin"}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["sdk", "0", "False"]  # no SDK provider could exist: the API's path
