"""A LangGraph agent (``langchain.agents.create_agent``) that calls a tool, traced. Runs offline on a scripted model.

    pip install 'otel-callbacks[demo]'   # langgraph + langchain
    python examples/langgraph_agent.py
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

import otel_callbacks
from otel_callbacks import OpenTelemetryCallbackHandler


class ScriptedModel(GenericFakeChatModel):
    """Replays canned replies; accepts tools like a real chat model. Replace with e.g. ChatOpenAI(model=...)."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self


@tool
def convert_currency(amount: float, to: str) -> str:
    """Convert an amount of euros to another currency."""
    rates = {"USD": 1.08, "GBP": 0.85}
    return f"{amount * rates[to.upper()]:.2f} {to.upper()}"


def main() -> str:
    otel_callbacks.setup_tracing(service_name="langgraph-agent-example")
    handler = OpenTelemetryCallbackHandler()
    model = ScriptedModel(messages=iter([
        AIMessage(content="", tool_calls=[{"name": "convert_currency", "args": {"amount": 120, "to": "USD"},
                                           "id": "call_1", "type": "tool_call"}],
                  usage_metadata={"input_tokens": 55, "output_tokens": 18, "total_tokens": 73}),
        AIMessage(content="120 EUR is 129.60 USD.",
                  usage_metadata={"input_tokens": 90, "output_tokens": 9, "total_tokens": 99}),
    ]))
    agent = create_agent(model, [convert_currency], name="fx_agent", system_prompt="You convert currencies.")
    state = agent.invoke({"messages": [("human", "How much is 120 EUR in USD?")]}, config={"callbacks": [handler]})
    return str(state["messages"][-1].content)


if __name__ == "__main__":
    print(main())
