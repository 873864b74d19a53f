"""LangGraph interrupts read as pauses, and resumes link back (issue 14, item 2).

Real LangGraph with an in-memory checkpointer: ``interrupt()`` in a node, in a subgraph's node, in a ToolNode tool,
several in one step; sync and async; the explicit handler (which LangGraph also calls ``on_interrupt`` /
``on_resume`` on) and ``instrument()`` (which it does not); a fresh handler per request.
"""

from __future__ import annotations

import asyncio
import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, Send, interrupt
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import StatusCode

import otel_callbacks
from otel_callbacks import OpenTelemetryCallbackHandler
from tests.conftest import SpanTreeFactory

INTERRUPTED = "langchain.graph.interrupted"
IDS = "langchain.graph.interrupt.ids"
CHECKPOINT = "langchain.graph.checkpoint.id"


class State(TypedDict):
    answers: Annotated[list[str], operator.add]


def ask(state: State) -> dict[str, Any]:
    return {"answers": [interrupt("name?")]}


def node_graph() -> Any:
    graph = StateGraph(State)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    return graph.compile(checkpointer=InMemorySaver(), name="asker")


def subgraph_graph() -> Any:
    inner = StateGraph(State)
    inner.add_node("ask", ask)
    inner.add_edge(START, "ask")
    inner.add_edge("ask", END)
    outer = StateGraph(State)
    outer.add_node("inner", inner.compile(name="inner"))
    outer.add_edge(START, "inner")
    outer.add_edge("inner", END)
    return outer.compile(checkpointer=InMemorySaver(), name="outer")


def fan_out_graph() -> Any:
    """Two branches in one step, each interrupting: one pause, two interrupt ids."""
    def ask_one(state: dict[str, Any]) -> dict[str, Any]:
        return {"answers": [interrupt(f"question {state['n']}?")]}

    graph = StateGraph(State)
    graph.add_node("ask_one", ask_one)
    graph.add_conditional_edges(START, lambda s: [Send("ask_one", {"n": n}) for n in (1, 2)], ["ask_one"])
    graph.add_edge("ask_one", END)
    return graph.compile(checkpointer=InMemorySaver(), name="fan_out")


@tool
def approve(action: str) -> str:
    """Ask a human to approve the action."""
    return f"{action}: {interrupt('approve?')}"


def tool_graph() -> Any:
    call = AIMessage("", tool_calls=[{"name": "approve", "args": {"action": "deploy"}, "id": "call-1"}])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [call]} if len(state["messages"]) == 1 else {"messages": [AIMessage("done")]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([approve]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", lambda s: "tools" if s["messages"][-1].tool_calls else END)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=InMemorySaver(), name="approver")


GRAPHS = {
    "node": (node_graph, {"answers": []}, ["ask"]),
    "subgraph": (subgraph_graph, {"answers": []}, ["ask", "inner", "inner"]),  # the node and the subgraph's run
    "tool": (tool_graph, {"messages": [("user", "deploy it")]}, ["execute_tool approve", "tools"]),
    "fan_out": (fan_out_graph, {"answers": []}, ["ask_one", "ask_one"]),
}


def run(app: Any, value: Any, config: dict[str, Any], mode: str) -> Any:
    if mode == "async":
        return asyncio.run(app.ainvoke(value, config))
    return app.invoke(value, config)


def roots(tree: Any) -> list[ReadableSpan]:
    return sorted(tree.roots(), key=lambda s: s.start_time)


def assert_no_error(spans: list[ReadableSpan]) -> None:
    assert [s.name for s in spans if s.status.status_code == StatusCode.ERROR] == []


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("shape", list(GRAPHS))
def test_interrupt_reads_as_pause_and_resume_links_back(
    tracer_provider: TracerProvider, spans: SpanTreeFactory, shape: str, mode: str
) -> None:
    make, first_input, interrupted_names = GRAPHS[shape]
    app = make()
    config: Any = {"configurable": {"thread_id": f"{shape}-{mode}-{uuid.uuid4()}"}}
    # A handler per request, as web apps make them: the resume still finds the paused run.
    result = run(app, first_input, {**config, "callbacks": [OpenTelemetryCallbackHandler(tracer_provider)]}, mode)
    pending = result["__interrupt__"]
    expected_ids = {i.id for i in pending}
    assert len(expected_ids) == (2 if shape == "fan_out" else 1)

    first = spans()
    [paused] = first.roots()
    assert paused.status.status_code == StatusCode.OK
    assert paused.attributes[INTERRUPTED] is True
    [event] = [e for e in paused.events if e.name == "langchain.graph.interrupt"]
    assert set(event.attributes[IDS]) == expected_ids
    assert event.attributes[CHECKPOINT]  # from LangGraph's on_interrupt
    marked = sorted(s.name for s in first.spans if s.attributes.get(INTERRUPTED) and s is not paused)
    assert marked == sorted(interrupted_names)
    assert_no_error(list(first.spans))

    resume = Command(resume={i.id: "yes" for i in pending}) if shape == "fan_out" else Command(resume="yes")
    final = run(app, resume, {**config, "callbacks": [OpenTelemetryCallbackHandler(tracer_provider)]}, mode)
    assert "__interrupt__" not in final
    both = spans()
    [_, resumed] = roots(both)
    assert resumed.context.trace_id != paused.context.trace_id
    assert resumed.attributes["langchain.graph.resumed"] is True
    assert resumed.attributes["langchain.graph.resumed_from.checkpoint_id"]
    [link] = resumed.links
    assert link.context.span_id == paused.context.span_id and link.context.trace_id == paused.context.trace_id
    assert link.attributes["langchain.link.type"] == "resumed_from"
    assert set(link.attributes[IDS]) == expected_ids
    assert not resumed.attributes.get(INTERRUPTED)
    assert_no_error(list(both.spans))
    # The proposed lifecycle names stay off without the opt-in.
    assert not [e for s in both.spans for e in s.events if e.name.startswith("gen_ai.agent.")]


def test_lifecycle_events_under_the_opt_in(
    tracer_provider: TracerProvider, spans: SpanTreeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    handler = OpenTelemetryCallbackHandler(tracer_provider)
    app = fan_out_graph()
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": f"opt-in-{uuid.uuid4()}"}}
    pending = app.invoke({"answers": []}, config)["__interrupt__"]
    app.invoke(Command(resume={i.id: "ok" for i in pending}), config)
    paused, resumed = roots(spans())
    paused_events = [e for e in paused.events if e.name == "gen_ai.agent.paused"]
    assert {e.attributes["gen_ai.agent.pause.id"] for e in paused_events} == {i.id for i in pending}
    checkpoint = paused_events[0].attributes["gen_ai.agent.checkpoint.id"]
    assert all(e.attributes["gen_ai.agent.pause.reason"] == "interrupt" for e in paused_events)
    [resumed_event] = [e for e in resumed.events if e.name == "gen_ai.agent.resumed"]
    assert resumed_event.attributes["gen_ai.agent.resumed_from.type"] == "checkpoint"
    assert resumed_event.attributes["gen_ai.agent.resumed_from.id"] == checkpoint


def test_instrumented_without_lifecycle_callbacks(tracer_provider: TracerProvider, spans: SpanTreeFactory) -> None:
    """``instrument()``'s handler is not in the graph's own callbacks, so LangGraph calls no ``on_interrupt`` on
    it: the pause is still marked (from the GraphInterrupt), without the checkpoint id, and the resume linked."""
    handler = otel_callbacks.instrument(tracer_provider)
    try:
        app = node_graph()
        config: Any = {"configurable": {"thread_id": f"instrumented-{uuid.uuid4()}"}}
        app.invoke({"answers": []}, config)
        app.invoke(Command(resume="yes"), config)
    finally:
        otel_callbacks.uninstrument()
    paused, resumed = roots(spans())
    assert handler.open_runs == 0
    assert paused.attributes[INTERRUPTED] is True
    [event] = [e for e in paused.events if e.name == "langchain.graph.interrupt"]
    assert CHECKPOINT not in event.attributes
    [link] = resumed.links
    assert link.context.span_id == paused.context.span_id


def test_a_new_input_on_the_thread_is_not_a_resume(handler: OpenTelemetryCallbackHandler,
                                                   spans: SpanTreeFactory) -> None:
    app = node_graph()
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": f"fresh-{uuid.uuid4()}"}}
    app.invoke({"answers": []}, config)
    app.invoke({"answers": ["restart"]}, config)  # new input, not Command(resume=...)
    _, second = roots(spans())
    assert not second.links
    assert "langchain.graph.resumed" not in second.attributes


def test_the_handler_becomes_a_graph_callback_handler_only_once_langgraph_is_loaded() -> None:
    from langgraph.callbacks import GraphCallbackHandler

    handler = OpenTelemetryCallbackHandler()
    assert not isinstance(handler, GraphCallbackHandler)  # importing otel_callbacks does not import LangGraph
    node_graph().invoke({"answers": []}, {"callbacks": [handler], "configurable": {"thread_id": str(uuid.uuid4())}})
    assert isinstance(handler, GraphCallbackHandler) and isinstance(handler, OpenTelemetryCallbackHandler)
    assert type(handler).__name__ == "OpenTelemetryCallbackHandler"
