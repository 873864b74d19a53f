"""The graph a LangGraph server serves (``langgraph.json``: ``fx``): a tool-calling agent on a scripted chat model.

``import server_tracing`` is the whole server-side set-up: a tracer provider configured from the ``OTEL_*``
variables of the server's environment, and every LangChain run in the server process traced. A run whose request
came from a traced client (``client.py``) joins the client's trace: the client puts its trace context in the
run's metadata, and the graph's root run is started under it.

    langgraph dev --no-browser          # in this directory, with otel-callbacks installed in langgraph's env
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import server_tracing  # noqa: F401  (sets up tracing: every run of this graph is traced)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

MODEL = "scripted-fx-1"


class ScriptedModel(BaseChatModel):
    """Asks for the conversion tool, then answers with its result: no network, same reply for every run.
    Replace with e.g. ``ChatOpenAI(model=...)``."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params.update(ls_provider="scripted", ls_model_name=MODEL)
        return params

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=f"That is {last.content}.",
                              usage_metadata={"input_tokens": 90, "output_tokens": 9, "total_tokens": 99})
        else:
            reply = AIMessage(content="", tool_calls=[{"name": "convert_currency", "args": {"amount": 120, "to": "USD"},
                                                       "id": "call_1", "type": "tool_call"}],
                              usage_metadata={"input_tokens": 55, "output_tokens": 18, "total_tokens": 73})
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self


@tool
def convert_currency(amount: float, to: str) -> str:
    """Convert an amount of euros to another currency."""
    rates = {"USD": 1.08, "GBP": 0.85}
    return f"{amount * rates[to.upper()]:.2f} {to.upper()}"


_model = ScriptedModel().bind_tools([convert_currency])


def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
    return {"messages": [_model.invoke(state["messages"])]}


_builder = StateGraph(MessagesState)
_builder.add_node("agent", agent)
_builder.add_node("tools", ToolNode([convert_currency]))
_builder.add_edge(START, "agent")
_builder.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
_builder.add_edge("tools", "agent")
graph = _builder.compile(name="fx_agent")
