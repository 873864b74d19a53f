"""A traced demo that needs no network and no API key: a LangChain chain, then a tool-calling LangGraph agent.

Both run on scripted fake chat models (langchain-core's ``GenericFakeChatModel``) that report token usage, so the
trace shows realistic ``chat``, ``execute_tool`` and ``invoke_agent`` spans, including one failing tool call. The
chain streams its answer word by word with small delays, so the streaming metrics (time to first chunk, time per
output chunk) have something to measure.

Example:
    >>> # from otel_callbacks.cli.demo import run_demo; run_demo(OpenTelemetryCallbackHandler(tracer_provider=provider))
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

DEMO_MODEL = "demo-model-1"
DEMO_PROVIDER = "demo"
AGENT_NAME = "weather_agent"
_WEATHER = {"paris": "sunny, 22 °C", "oslo": "light snow, -3 °C"}


class DemoChatModel(GenericFakeChatModel):
    """A scripted chat model that looks like a real provider to tracers (model name, provider, tool binding)."""

    model_name: str = DEMO_MODEL
    first_chunk_delay: float = 0.0
    """Seconds before the first streamed chunk (a provider's queueing and prompt processing)."""
    chunk_delay: float = 0.0
    """Seconds between streamed chunks (decoding)."""

    @property
    def _llm_type(self) -> str:
        return "demo-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = DEMO_PROVIDER
        params["ls_model_name"] = self.model_name
        return params

    def _stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # The base class drops usage_metadata when streaming; real providers send it with the last chunk, and the
        # trace and token metrics should not depend on whether the demo streamed.
        message = self._generate(messages, stop=stop, run_manager=run_manager, **kwargs).generations[0].message
        if not isinstance(message, AIMessage) or not isinstance(message.content, str) or message.tool_calls:
            yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
            return
        words = re.findall(r"\S+\s*", message.content) or [message.content]
        for index, word in enumerate(words):
            time.sleep(self.first_chunk_delay if index == 0 else self.chunk_delay)
            last = index == len(words) - 1
            chunk = ChatGenerationChunk(message=AIMessageChunk(
                content=word, id=message.id, usage_metadata=message.usage_metadata if last else None,
                chunk_position="last" if last else None))
            if run_manager:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> DemoChatModel:
        # The replies are scripted, so the tool schemas are not needed; agents only require that binding works.
        return self


def _usage(tokens_in: int, tokens_out: int) -> dict[str, int]:
    return {"input_tokens": tokens_in, "output_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}


@tool
def get_weather(city: str) -> str:
    """Return the current weather for a city."""
    try:
        return f"{city}: {_WEATHER[city.lower()]}"
    except KeyError:
        raise ValueError(f"no weather station in {city!r}") from None


def build_chain() -> Any:
    """prompt | model | parser — the classic LangChain pipeline; its model streams ten word chunks."""
    replies: Iterator[AIMessage | str] = iter(
        [AIMessage(content="Traces show how a request flows through your LLM app.", usage_metadata=_usage(18, 11))]
    )
    prompt = ChatPromptTemplate.from_messages([("system", "Answer in one sentence."), ("human", "{question}")])
    model = DemoChatModel(messages=replies, first_chunk_delay=0.03, chunk_delay=0.005)
    return (prompt | model | StrOutputParser()).with_config(run_name="explain_chain")


def build_agent() -> Any:
    """A ``langchain.agents.create_agent`` (LangGraph) agent that calls a tool twice, once failing, then answers."""
    from langchain.agents import create_agent
    from langchain.agents.middleware import wrap_tool_call
    from langchain_core.messages import ToolMessage

    @wrap_tool_call
    def report_tool_errors(request: Any, handler: Any) -> Any:
        # Turn a tool exception into a message for the model (as production agents do) so the run continues;
        # the tool's span still records the error.
        try:
            return handler(request)
        except ValueError as exc:
            return ToolMessage(content=f"error: {exc}", tool_call_id=request.tool_call["id"], status="error")

    replies: Iterator[AIMessage | str] = iter(
        [
            AIMessage(content="", usage_metadata=_usage(42, 21), tool_calls=[
                {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"},
                {"name": "get_weather", "args": {"city": "Atlantis"}, "id": "call_2", "type": "tool_call"},
            ]),
            AIMessage(content="Paris is sunny at 22 °C; I have no data for Atlantis.", usage_metadata=_usage(77, 16)),
        ]
    )
    return create_agent(DemoChatModel(messages=replies), [get_weather], name=AGENT_NAME,
                        system_prompt="You report the weather.", middleware=[report_tool_errors])


def run_demo(handler: BaseCallbackHandler) -> dict[str, Any]:
    """Stream the chain, then invoke the agent, with ``handler`` attached; returns their outputs.

    Example:
        >>> # outputs = run_demo(OpenTelemetryCallbackHandler(tracer_provider=provider))
        >>> # outputs["agent"]  -> 'Paris is sunny at 22 °C; I have no data for Atlantis.'
    """
    config: dict[str, Any] = {"callbacks": [handler]}
    answer = "".join(build_chain().stream({"question": "Why trace an LLM app?"}, config=config))
    state = build_agent().invoke({"messages": [("human", "Weather in Paris and Atlantis?")]}, config=config)
    messages: list[BaseMessage] = state["messages"]
    return {"chain": answer, "agent": messages[-1].content}
