"""``otel_callbacks.instrument()`` / ``uninstrument()``, the ``LangChainInstrumentor`` and zero-code tracing.

Chains here are invoked with no callbacks at all: whatever is traced comes from instrumentation. Spans are counted
per ``langchain.run.id`` against an independent witness (a plain LangChain callback handler passed alongside, or
LangChain's own run ids), so a duplicate or a missing span shows.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import otel_callbacks
from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.handler.instrument import instrumented_handler
from otel_callbacks.handler.instrumentor import LangChainInstrumentor
from tests.conftest import SpanTreeFactory
from tests.support import SpanTree, ai, fake_chat

REPO_ROOT = Path(__file__).resolve().parents[1]
# The spans one invocation of ``_chain()`` makes, as a shape (children sorted by name).
CHAIN_SHAPE = ("RunnableSequence", [("ChatPromptTemplate", []), ("StrOutputParser", []), ("chat", [])])


@pytest.fixture(autouse=True)
def _uninstrumented() -> Iterator[None]:
    otel_callbacks.uninstrument()
    yield
    instrumentor = LangChainInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    otel_callbacks.uninstrument()
    assert instrumented_handler() is None


def _chain(answer: str = "pong", repeat: int = 1) -> Runnable[dict[str, str], str]:
    prompt = ChatPromptTemplate.from_messages([("human", "{q}")])
    return prompt | fake_chat(ai(answer), repeat=repeat) | StrOutputParser()


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


class RunWitness(BaseCallbackHandler):
    """Records every run id LangChain starts: the ground truth for span counts."""

    def __init__(self) -> None:
        self.run_ids: list[str] = []
        self._lock = threading.Lock()

    def _seen(self, run_id: UUID) -> None:
        with self._lock:
            self.run_ids.append(str(run_id))

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._seen(run_id)

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._seen(run_id)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._seen(run_id)


def _run_id_counts(spans: SpanTree | list[ReadableSpan] | tuple[ReadableSpan, ...]) -> Counter[str]:
    items = spans.spans if isinstance(spans, SpanTree) else spans
    return Counter(str((s.attributes or {})["langchain.run.id"]) for s in items)


def _assert_one_chain_trace(tree: SpanTree) -> None:
    assert tree.shape() == [CHAIN_SHAPE]
    assert len({s.context.trace_id for s in tree.spans}) == 1
    chat = tree.one("chat")
    assert chat.kind is SpanKind.CLIENT
    assert (chat.attributes or {})["gen_ai.operation.name"] == "chat"
    assert (chat.attributes or {})["gen_ai.response.model"] == "fake-model-1"
    assert (chat.attributes or {})["gen_ai.usage.input_tokens"] == 10
    assert max(_run_id_counts(tree).values()) == 1


# --- instrument() / uninstrument() ----------------------------------------------------------------------------------
def test_instrument_traces_a_chain_invoked_without_callbacks(
    tracer_provider: TracerProvider, spans: SpanTreeFactory
) -> None:
    handler = otel_callbacks.instrument(tracer_provider=tracer_provider)

    assert isinstance(handler, OpenTelemetryCallbackHandler)
    assert instrumented_handler() is handler
    assert _chain().invoke({"q": "ping"}) == "pong"

    tree = spans()
    _assert_one_chain_trace(tree)
    assert handler.open_runs == 0


async def test_instrument_traces_ainvoke(tracer_provider: TracerProvider, spans: SpanTreeFactory) -> None:
    otel_callbacks.instrument(tracer_provider=tracer_provider)

    assert await _chain().ainvoke({"q": "ping"}) == "pong"

    _assert_one_chain_trace(spans())


async def test_instrument_traces_concurrent_ainvokes_as_separate_traces(
    tracer_provider: TracerProvider, spans: SpanTreeFactory
) -> None:
    otel_callbacks.instrument(tracer_provider=tracer_provider)
    chain = _chain(repeat=5)

    results = await asyncio.gather(*(chain.ainvoke({"q": str(i)}) for i in range(5)))

    assert results == ["pong"] * 5
    tree = spans()
    assert tree.shape() == [CHAIN_SHAPE] * 5
    assert len({s.context.trace_id for s in tree.spans}) == 5
    assert max(_run_id_counts(tree).values()) == 1


def test_instrument_traces_a_plain_thread_with_an_empty_context(
    tracer_provider: TracerProvider, spans: SpanTreeFactory
) -> None:
    marker: contextvars.ContextVar[str | None] = contextvars.ContextVar("marker", default=None)
    marker.set("main")
    otel_callbacks.instrument(tracer_provider=tracer_provider)
    seen: dict[str, Any] = {}

    def work() -> None:
        try:
            seen["marker"] = marker.get()  # proves the thread did not inherit the main thread's context
            seen["result"] = _chain().invoke({"q": "from a thread"})
        except BaseException as exc:  # reported in the main thread
            seen["error"] = exc

    thread = threading.Thread(target=work, name="plain-worker")
    thread.start()
    thread.join(timeout=30)

    assert not thread.is_alive()
    assert "error" not in seen, seen.get("error")
    assert seen == {"marker": None, "result": "pong"}
    _assert_one_chain_trace(spans())


def test_instrument_traces_batch_items_as_separate_traces(
    tracer_provider: TracerProvider, spans: SpanTreeFactory
) -> None:
    otel_callbacks.instrument(tracer_provider=tracer_provider)

    results = _chain(repeat=4).batch([{"q": str(i)} for i in range(4)], config={"max_concurrency": 2})

    assert results == ["pong"] * 4
    tree = spans()
    assert tree.shape() == [CHAIN_SHAPE] * 4
    assert len({s.context.trace_id for s in tree.spans}) == 4


def test_uninstrument_stops_tracing(tracer_provider: TracerProvider, spans: SpanTreeFactory) -> None:
    otel_callbacks.instrument(tracer_provider=tracer_provider)
    chain = _chain(repeat=2)
    chain.invoke({"q": "traced"})
    traced = len(spans())
    assert traced == 4

    otel_callbacks.uninstrument()
    assert instrumented_handler() is None
    assert chain.invoke({"q": "not traced"}) == "pong"

    assert len(spans()) == traced


def test_uninstrument_without_instrument_is_harmless(spans: SpanTreeFactory) -> None:
    otel_callbacks.uninstrument()
    otel_callbacks.uninstrument()

    assert _chain().invoke({"q": "x"}) == "pong"
    assert len(spans()) == 0


def test_explicit_handler_while_instrumented_makes_no_duplicates(tracer_provider: TracerProvider) -> None:
    """The explicitly passed handler (same class, another instance) traces the run; the global one stays out."""
    explicit_provider, explicit_exporter = _provider()
    global_handler = otel_callbacks.instrument(tracer_provider=tracer_provider)
    explicit = OpenTelemetryCallbackHandler(explicit_provider)
    explicit.raise_error = True
    witness = RunWitness()

    assert _chain().invoke({"q": "ping"}, config={"callbacks": [explicit, witness]}) == "pong"

    explicit_spans = explicit_exporter.get_finished_spans()
    assert _run_id_counts(explicit_spans) == Counter(witness.run_ids)
    assert len(witness.run_ids) == 4
    assert max(Counter(witness.run_ids).values()) == 1
    assert SpanTree(explicit_spans).shape() == [CHAIN_SHAPE]
    assert global_handler.open_runs == 0 and explicit.open_runs == 0
    explicit_provider.shutdown()


def test_instrumented_root_and_explicit_constructor_handler_inside_make_no_duplicates(
    tracer_provider: TracerProvider, spans: SpanTreeFactory
) -> None:
    """The global handler traces the chain, the model also carries its own handler: each run is one span."""
    otel_callbacks.instrument(tracer_provider=tracer_provider)
    inner = OpenTelemetryCallbackHandler(tracer_provider)
    inner.raise_error = True
    witness = RunWitness()
    model = fake_chat(ai("pong"))
    model.callbacks = [inner]
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | model | StrOutputParser()

    assert chain.invoke({"q": "ping"}, config={"callbacks": [witness]}) == "pong"

    tree = spans()
    assert _run_id_counts(tree) == Counter(witness.run_ids)
    assert len(witness.run_ids) == 4
    assert tree.shape() == [CHAIN_SHAPE]
    assert len({s.context.trace_id for s in tree.spans}) == 1


def test_instrument_twice_replaces_the_handler(spans: SpanTreeFactory) -> None:
    first_provider, first_exporter = _provider()
    second_provider, second_exporter = _provider()
    first = otel_callbacks.instrument(tracer_provider=first_provider)
    second = otel_callbacks.instrument(tracer_provider=second_provider, capture_content=True)

    assert first is not second
    assert instrumented_handler() is second
    assert _chain().invoke({"q": "ping"}) == "pong"

    assert first_exporter.get_finished_spans() == ()
    tree = SpanTree(second_exporter.get_finished_spans())
    assert tree.shape() == [CHAIN_SHAPE]
    # The second call's options are in force: content is captured.
    root_inputs = (tree.one("RunnableSequence").attributes or {})["langchain.chain.inputs"]
    assert json.loads(str(root_inputs)) == {"q": "ping"}
    first_provider.shutdown()
    second_provider.shutdown()


# --- the BaseInstrumentor and its entry point ---------------------------------------------------------------------
def test_instrumentor_instrument_and_uninstrument(tracer_provider: TracerProvider, spans: SpanTreeFactory) -> None:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, capture_content=True)
    assert instrumentor.is_instrumented_by_opentelemetry
    handler = instrumented_handler()
    assert handler is not None

    chain = _chain(repeat=2)
    assert chain.invoke({"q": "ping"}) == "pong"
    tree = spans()
    assert tree.shape() == [CHAIN_SHAPE]
    assert "langchain.chain.inputs" in (tree.one("RunnableSequence").attributes or {})  # the option reached it

    instrumentor.uninstrument()
    assert not instrumentor.is_instrumented_by_opentelemetry
    assert instrumented_handler() is None
    assert chain.invoke({"q": "ping"}) == "pong"
    assert len(spans()) == 4


def test_instrumentor_declares_its_dependency() -> None:
    assert list(LangChainInstrumentor().instrumentation_dependencies()) == ["langchain-core >= 1.8"]


def test_entry_point_is_registered_and_loads_the_instrumentor() -> None:
    found = [ep for ep in importlib.metadata.entry_points(group="opentelemetry_instrumentor")
             if ep.name == "otel_callbacks"]

    assert len(found) == 1
    assert found[0].value == "otel_callbacks.handler.instrumentor:LangChainInstrumentor"
    assert found[0].load() is LangChainInstrumentor


# --- zero code: opentelemetry-instrument --------------------------------------------------------------------------
_APP = '''
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

reply = AIMessage("pong", response_metadata={"model_name": "fake-model-1", "finish_reason": "stop"},
                  usage_metadata={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4})
chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | GenericFakeChatModel(messages=iter([reply])) \\
    | StrOutputParser()
print("RESULT=" + chain.invoke({"q": "ping"}), flush=True)
'''


def _console_spans(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects ConsoleSpanExporter printed (one per span, possibly between other lines)."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i = 0
    while (start := stdout.find("{", i)) != -1:
        try:
            obj, end = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        if isinstance(obj, dict) and "context" in obj and "name" in obj:
            out.append(obj)
        i = end
    return out


def _configurator_path(tmp_path: Path) -> str | None:
    """A ``PYTHONPATH`` entry that registers a configurator when none is installed, else ``None``.

    ``opentelemetry-instrument`` sets up a TracerProvider only through an ``opentelemetry_configurator`` entry point;
    ``opentelemetry-distro`` registers the SDK's own configurator there. Without the distro, register that same
    SDK class through a throwaway dist-info, so the check is about our entry point and instrumentor, not the distro.
    """
    if importlib.metadata.entry_points(group="opentelemetry_configurator"):
        return None
    site = tmp_path / "site"
    dist_info = site / "sdk_configurator_shim-0.0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: sdk-configurator-shim\nVersion: 0.0.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[opentelemetry_configurator]\nconfigurator = opentelemetry.sdk._configuration:_OTelSDKConfigurator\n"
    )
    return str(site)


def test_zero_code_opentelemetry_instrument_traces_langchain(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    launcher = bin_dir / "opentelemetry-instrument"
    assert launcher.exists(), "opentelemetry-instrument (opentelemetry-instrumentation) is not installed"
    script = tmp_path / "app.py"
    script.write_text(_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "zero-code-test",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO_ROOT), _configurator_path(tmp_path), env.get("PYTHONPATH")])
        ),
        "PATH": os.pathsep.join(filter(None, [str(bin_dir), env.get("PATH")])),
    })

    proc = subprocess.run(
        [str(launcher), sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )

    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "RESULT=pong" in proc.stdout
    printed = _console_spans(proc.stdout)
    by_name = {s["name"]: s for s in printed}
    assert sorted(by_name) == ["ChatPromptTemplate", "RunnableSequence", "StrOutputParser", "chat"], proc.stdout
    assert len(printed) == 4
    root, chat = by_name["RunnableSequence"], by_name["chat"]
    assert root["parent_id"] is None
    for name in ("ChatPromptTemplate", "StrOutputParser", "chat"):
        assert by_name[name]["parent_id"] == root["context"]["span_id"]
        assert by_name[name]["context"]["trace_id"] == root["context"]["trace_id"]
    assert chat["kind"] == "SpanKind.CLIENT"
    assert chat["attributes"]["gen_ai.operation.name"] == "chat"
    assert chat["attributes"]["gen_ai.response.model"] == "fake-model-1"
    assert chat["attributes"]["gen_ai.usage.input_tokens"] == 3
    assert root["attributes"]["langchain.usage.input_tokens"] == 3
    assert chat["resource"]["attributes"]["service.name"] == "zero-code-test"
    assert "langchain.chain.inputs" not in root["attributes"]  # content capture stays off by default
