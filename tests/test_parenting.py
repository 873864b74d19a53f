"""The span tree equals LangChain's run tree under every concurrency mode; user spans nest; context never leaks."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig, RunnableLambda, RunnableParallel
from langchain_core.tools import tool
from opentelemetry import baggage, trace
from opentelemetry import context as context_api
from opentelemetry.sdk.trace import TracerProvider

from otel_callbacks import OpenTelemetryCallbackHandler
from tests.support import SpanTree, ai, fake_chat


class RunTreeRecorder(BaseCallbackHandler):
    """Records LangChain's own run tree (run id -> parent run id) beside ours, to compare the two."""

    run_inline = True

    def __init__(self) -> None:
        self.parents: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def _record(self, run_id: Any, parent_run_id: Any) -> None:
        with self._lock:
            self.parents[str(run_id)] = str(parent_run_id) if parent_run_id else None

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, parent_run_id: Any = None,
                       **kw: Any) -> None:
        self._record(run_id, parent_run_id)

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any, parent_run_id: Any = None,
                            **kw: Any) -> None:
        self._record(run_id, parent_run_id)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: Any, parent_run_id: Any = None, **kw: Any) -> None:
        self._record(run_id, parent_run_id)

    def on_tool_start(self, serialized: Any, input_str: Any, *, run_id: Any, parent_run_id: Any = None,
                      **kw: Any) -> None:
        self._record(run_id, parent_run_id)

    def on_retriever_start(self, serialized: Any, query: Any, *, run_id: Any, parent_run_id: Any = None,
                           **kw: Any) -> None:
        self._record(run_id, parent_run_id)


def assert_tree_matches_runs(tree: SpanTree, recorder: RunTreeRecorder) -> int:
    """Every run has exactly one span whose parent span is its parent run's span; returns runs checked."""
    by_run = {}
    for span in tree.spans:
        run_id = span.attributes.get("langchain.run.id") if span.attributes else None
        if run_id is not None:
            assert run_id not in by_run, f"two spans for run {run_id}"
            by_run[run_id] = span
    assert set(by_run) == set(recorder.parents), "a run without a span, or a span without a run"
    wrong = []
    for run_id, parent_run in recorder.parents.items():
        span = by_run[run_id]
        if parent_run is None:
            continue
        expected = by_run[parent_run]
        if span.parent is None or span.parent.span_id != expected.context.span_id:
            wrong.append((span.name, run_id))
        assert span.context.trace_id == expected.context.trace_id
    assert not wrong, f"wrong parents: {wrong}"
    return len(recorder.parents)


def make_chain(repeat: int = 1) -> Any:
    model = fake_chat(ai("hello there"), repeat=repeat)
    return ChatPromptTemplate.from_messages([("human", "{q}")]) | model | StrOutputParser()


def config(handler: OpenTelemetryCallbackHandler, recorder: RunTreeRecorder, **extra: Any) -> RunnableConfig:
    return {"callbacks": [handler, recorder], **extra}  # type: ignore[typeddict-item]


class TestRunTree:
    def test_sync_invoke_nests_every_run_under_the_sequence(self, handler, spans) -> None:
        """prompt | model | parser: one root, three children, in one trace."""
        recorder = RunTreeRecorder()
        make_chain().invoke({"q": "hi"}, config=config(handler, recorder))
        tree = spans()
        assert tree.shape() == [("RunnableSequence", [("ChatPromptTemplate", []), ("StrOutputParser", []),
                                                      ("chat", [])])]
        assert assert_tree_matches_runs(tree, recorder) == 4

    def test_runnable_parallel_in_threads(self, handler, spans) -> None:
        """RunnableParallel runs branches in a thread pool; each branch nests under the parallel run."""
        recorder = RunTreeRecorder()
        par = RunnableParallel(a=make_chain(), b=make_chain(), c=RunnableLambda(lambda x: x))
        par.invoke({"q": "hi"}, config=config(handler, recorder))
        tree = spans()
        assert len(tree.roots()) == 1
        assert assert_tree_matches_runs(tree, recorder) == 10

    def test_batch_with_max_concurrency_gives_one_trace_per_item(self, handler, spans) -> None:
        """Sync batch: each item is its own root trace (OpenLLMetry nests item N under item N-1)."""
        recorder = RunTreeRecorder()
        inputs = [{"q": str(i)} for i in range(8)]
        make_chain(repeat=8).batch(inputs, config=config(handler, recorder, max_concurrency=3))
        tree = spans()
        roots = tree.roots()
        assert len(roots) == 8
        assert len({r.context.trace_id for r in roots}) == 8
        assert assert_tree_matches_runs(tree, recorder) == 32
        assert trace.get_current_span() is trace.INVALID_SPAN

    async def test_gather_of_many_ainvoke(self, handler, spans) -> None:
        """50 concurrent ainvoke in one loop: 50 traces, every parent right."""
        recorder = RunTreeRecorder()
        chain = make_chain(repeat=50)
        await asyncio.gather(*(chain.ainvoke({"q": str(i)}, config=config(handler, recorder)) for i in range(50)))
        tree = spans()
        assert len(tree.roots()) == 50
        assert len({r.context.trace_id for r in tree.roots()}) == 50
        assert assert_tree_matches_runs(tree, recorder) == 200

    async def test_abatch(self, handler, spans) -> None:
        recorder = RunTreeRecorder()
        await make_chain(repeat=6).abatch([{"q": str(i)} for i in range(6)], config=config(handler, recorder))
        tree = spans()
        assert len(tree.roots()) == 6
        assert assert_tree_matches_runs(tree, recorder) == 24

    async def test_astream(self, handler, spans) -> None:
        recorder = RunTreeRecorder()
        chunks = [c async for c in make_chain().astream({"q": "hi"}, config=config(handler, recorder))]
        assert "".join(chunks) == "hello there"
        assert assert_tree_matches_runs(spans(), recorder) == 4

    async def test_astream_events(self, handler, spans) -> None:
        recorder = RunTreeRecorder()
        events = [e async for e in make_chain().astream_events({"q": "hi"}, config=config(handler, recorder),
                                                              version="v2")]
        assert events
        assert assert_tree_matches_runs(spans(), recorder) == 4

    def test_langgraph_agent(self, handler, spans) -> None:
        """create_agent with a tool: agent -> model/tools nodes -> chat / execute_tool, exactly as the run tree."""
        from langchain.agents import create_agent

        @tool
        def add(a: int, b: int) -> int:
            """Add two integers."""
            return a + b

        model = fake_chat(ai(tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1"}]), ai("3"))
        agent = create_agent(model, tools=[add], name="calc")
        recorder = RunTreeRecorder()
        agent.invoke({"messages": [("human", "1+2?")]}, config=config(handler, recorder))
        tree = spans()
        root = tree.one("invoke_agent calc")
        assert tree.roots() == [root]
        tool_span = tree.one("execute_tool add")
        assert tree.parent(tree.parent(tool_span)).name == "invoke_agent calc"  # type: ignore[union-attr]
        assert assert_tree_matches_runs(tree, recorder) >= 6

    async def test_langgraph_agent_async_stream(self, handler, spans) -> None:
        from langchain.agents import create_agent

        @tool
        async def add(a: int, b: int) -> int:
            """Add two integers."""
            return a + b

        model = fake_chat(ai(tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1"}]), ai("3"))
        agent = create_agent(model, tools=[add], name="calc")
        recorder = RunTreeRecorder()
        async for _ in agent.astream({"messages": [("human", "1+2?")]}, config=config(handler, recorder)):
            pass
        tree = spans()
        assert len(tree.roots()) == 1
        assert assert_tree_matches_runs(tree, recorder) >= 6
        assert trace.get_current_span() is trace.INVALID_SPAN


class TestAmbientContext:
    def test_root_run_is_child_of_the_current_span(self, handler, spans, tracer_provider) -> None:
        """A web request's span, current when the chain starts, is the root run's parent."""
        tracer = tracer_provider.get_tracer("app")
        with tracer.start_as_current_span("GET /ask") as request_span:
            make_chain().invoke({"q": "hi"}, config={"callbacks": [handler]})
        tree = spans()
        seq = tree.one("RunnableSequence")
        assert seq.parent is not None and seq.parent.span_id == request_span.get_span_context().span_id
        assert tree.roots() == [tree.one("GET /ask")]

    async def test_root_run_joins_request_span_async(self, handler, spans, tracer_provider) -> None:
        tracer = tracer_provider.get_tracer("app")
        with tracer.start_as_current_span("POST /chat"):
            await make_chain().ainvoke({"q": "hi"}, config={"callbacks": [handler]})
            await make_chain().ainvoke({"q": "hi"}, config={"callbacks": [handler]})
        tree = spans()
        request = tree.one("POST /chat")
        assert [tree.parent(s) for s in tree.all("RunnableSequence")] == [request, request]

    def test_baggage_survives_into_the_run(self, handler, tracer_provider) -> None:
        """The context made current for the run's code keeps the caller's baggage."""
        seen: list[object] = []
        token = context_api.attach(baggage.set_baggage("tenant", "acme"))
        try:
            RunnableLambda(lambda x: seen.append(baggage.get_baggage("tenant")) or x).invoke(
                1, config={"callbacks": [handler]})
        finally:
            context_api.detach(token)
        assert seen == ["acme"]


class TestUserSpansNest:
    def test_span_opened_in_a_lambda(self, handler, spans, tracer_provider) -> None:
        tracer = tracer_provider.get_tracer("app")

        def work(x: int) -> int:
            with tracer.start_as_current_span("db.query"):
                return x + 1

        (RunnableLambda(work) | RunnableLambda(lambda x: x)).invoke(1, config={"callbacks": [handler]})
        tree = spans()
        assert tree.parent(tree.one("db.query")).name == "work"  # type: ignore[union-attr]

    async def test_span_opened_in_an_async_lambda(self, handler, spans, tracer_provider) -> None:
        tracer = tracer_provider.get_tracer("app")

        async def work(x: int) -> int:
            with tracer.start_as_current_span("http.call"):
                await asyncio.sleep(0)
                return x + 1

        await (RunnableLambda(work) | RunnableLambda(lambda x: x)).ainvoke(1, config={"callbacks": [handler]})
        tree = spans()
        assert tree.parent(tree.one("http.call")).name == "work"  # type: ignore[union-attr]

    @pytest.mark.parametrize("is_async", [False, True])
    async def test_span_opened_in_a_tool(self, handler, spans, tracer_provider, is_async: bool) -> None:
        tracer = tracer_provider.get_tracer("app")

        @tool
        def lookup(city: str) -> str:
            """Look up the weather."""
            with tracer.start_as_current_span("weather.api"):
                return "sunny"

        if is_async:
            await lookup.ainvoke({"city": "Paris"}, config={"callbacks": [handler]})
        else:
            lookup.invoke({"city": "Paris"}, config={"callbacks": [handler]})
        tree = spans()
        assert tree.parent(tree.one("weather.api")).name == "execute_tool lookup"  # type: ignore[union-attr]

    @pytest.mark.parametrize("is_async", [False, True])
    async def test_span_opened_in_a_langgraph_node(self, handler, spans, tracer_provider, is_async: bool) -> None:
        from typing import TypedDict

        from langgraph.graph import END, START, StateGraph

        tracer = tracer_provider.get_tracer("app")

        class State(TypedDict):
            x: int

        def inc(state: State) -> State:
            with tracer.start_as_current_span("inside.node"):
                return {"x": state["x"] + 1}

        async def ainc(state: State) -> State:
            with tracer.start_as_current_span("inside.node"):
                await asyncio.sleep(0)
                return {"x": state["x"] + 1}

        graph = StateGraph(State)
        graph.add_node("inc", ainc if is_async else inc)
        graph.add_edge(START, "inc")
        graph.add_edge("inc", END)
        app = graph.compile(name="pipeline")
        if is_async:
            assert await app.ainvoke({"x": 1}, config={"callbacks": [handler]}) == {"x": 2}
        else:
            assert app.invoke({"x": 1}, config={"callbacks": [handler]}) == {"x": 2}
        tree = spans()
        node = tree.parent(tree.one("inside.node"))
        assert node is not None and node.name == "inc"
        assert tree.parent(node).name == "invoke_workflow pipeline"  # type: ignore[union-attr]


class TestNoLeak:
    async def test_two_sequential_ainvokes_are_two_traces(self, handler, spans) -> None:
        """End callbacks run in a shielded task with a copied context; the caller's context must still be restored."""
        chain = make_chain(repeat=2)
        await chain.ainvoke({"q": "1"}, config={"callbacks": [handler]})
        assert trace.get_current_span() is trace.INVALID_SPAN
        await chain.ainvoke({"q": "2"}, config={"callbacks": [handler]})
        assert trace.get_current_span() is trace.INVALID_SPAN
        roots = spans().roots()
        assert len(roots) == 2 and roots[0].context.trace_id != roots[1].context.trace_id

    async def test_current_span_after_ainvoke_is_the_ambient_one(self, handler, tracer_provider) -> None:
        tracer = tracer_provider.get_tracer("app")
        with tracer.start_as_current_span("ambient") as ambient:
            await make_chain().ainvoke({"q": "1"}, config={"callbacks": [handler]})
            assert trace.get_current_span() is ambient
            with tracer.start_as_current_span("after") as after:
                assert after.parent.span_id == ambient.get_span_context().span_id  # type: ignore[union-attr]
        assert trace.get_current_span() is trace.INVALID_SPAN

    def test_sync_stream_consumed_to_the_end(self, handler, spans) -> None:
        chain = make_chain(repeat=2)
        for _ in range(2):
            assert "".join(chain.stream({"q": "hi"}, config={"callbacks": [handler]})) == "hello there"
            assert trace.get_current_span() is trace.INVALID_SPAN
        assert len(spans().roots()) == 2

    def test_repeated_invokes_in_one_thread(self, handler, spans) -> None:
        chain = make_chain(repeat=5)
        for i in range(5):
            chain.invoke({"q": str(i)}, config={"callbacks": [handler]})
            assert trace.get_current_span() is trace.INVALID_SPAN
        roots = spans().roots()
        assert len(roots) == 5 and len({r.context.trace_id for r in roots}) == 5

    async def test_no_failed_detach_log(self, handler, caplog) -> None:
        caplog.set_level(logging.DEBUG)
        await asyncio.gather(*(make_chain().ainvoke({"q": "x"}, config={"callbacks": [handler]}) for _ in range(5)))
        assert not [r for r in caplog.records if "detach" in r.getMessage().lower()]

    def test_context_object_is_restored_after_sync_invoke(self, handler) -> None:
        before = context_api.get_current()
        make_chain().invoke({"q": "hi"}, config={"callbacks": [handler]})
        assert context_api.get_current() is before
        assert handler.open_runs == 0

    @pytest.mark.parametrize("here", ["sync", "async"])
    def test_another_threads_loop_mid_task(self, handler, spans, here: str) -> None:
        """leave() reads the running task as a cheap hint; with another thread's loop inside a task the hint can
        name that task (sync here) or must be asked of asyncio (two loops running): spans and context stay exact."""
        inside, release = threading.Event(), threading.Event()

        async def blocking_task() -> None:
            inside.set()
            release.wait(10)  # holds the other loop inside this task

        other = threading.Thread(target=lambda: asyncio.run(blocking_task()))
        other.start()
        assert inside.wait(10)
        recorder = RunTreeRecorder()
        try:
            before = context_api.get_current()
            if here == "sync":
                make_chain().invoke({"q": "hi"}, config=config(handler, recorder))
            else:
                async def main() -> None:
                    inner = context_api.get_current()
                    await make_chain().ainvoke({"q": "hi"}, config=config(handler, recorder))
                    assert trace.get_current_span(context_api.get_current()) is trace.get_current_span(inner)

                asyncio.run(main())
            assert context_api.get_current() is before
        finally:
            release.set()
            other.join()
        assert assert_tree_matches_runs(spans(), recorder) == 4
        assert handler.open_runs == 0


class TestStress:
    async def test_threads_and_tasks_sharing_one_handler(self, tracer_provider: TracerProvider, spans) -> None:
        """8 threads x 25 sync invokes + 200 concurrent ainvokes on one handler: 0 wrong parents, 0 open runs."""
        handler = OpenTelemetryCallbackHandler(tracer_provider)
        handler.raise_error = True
        recorder = RunTreeRecorder()
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                chain = make_chain(repeat=25)
                for i in range(25):
                    chain.invoke({"q": str(i)}, config=config(handler, recorder))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        chain = make_chain(repeat=200)
        await asyncio.gather(*(chain.ainvoke({"q": str(i)}, config=config(handler, recorder)) for i in range(200)))
        for t in threads:
            t.join()
        assert not errors
        tree = spans()
        assert len(tree.roots()) == 400
        assert assert_tree_matches_runs(tree, recorder) == 1600
        assert handler.open_runs == 0
