"""The LangChain workloads every tracer is timed on: no network, deterministic fakes, real langchain-core dispatch.

Each workload is built fresh in the worker process and exposes ``run(config)`` for one sync call (or ``arun`` for
the async one). ``config`` carries the callbacks of handler-style tracers; instrumentor-style peers get ``{}``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, BaseCallbackHandler, CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool

STREAM_CHUNKS = 40

# A realistic model answer: usage and model name are present so that tracers do their usual attribute work.
_USAGE = {"input_tokens": 12, "output_tokens": 40, "total_tokens": 52}
_RESPONSE_METADATA = {"model_name": "fake-model-1", "finish_reason": "stop"}


class FakeChatModel(GenericFakeChatModel):
    """GenericFakeChatModel with native async and an exact chunk count.

    The base class has no ``_agenerate``, so ``ainvoke`` would hop to a thread pool and the async workload would
    mostly time the executor; its ``_stream`` splits on whitespace, which always yields an odd number of chunks.
    """

    chunks: int = STREAM_CHUNKS

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FakeChatModel:
        # The agent binds its tool schemas; the scripted answers already contain the tool calls.
        return self

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop=stop, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._generate(messages, stop=stop, **kwargs).generations[0].message
        for index in range(self.chunks):
            last = index == self.chunks - 1
            chunk = ChatGenerationChunk(
                message=AIMessageChunk(
                    content=f"tok{index} ",
                    id=message.id,
                    usage_metadata=message.usage_metadata if last else None,  # type: ignore[attr-defined]
                    response_metadata=message.response_metadata if last else {},
                    chunk_position="last" if last else None,
                )
            )
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._stream(messages, stop=stop, **kwargs):
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


def _answer(text: str, **extra: Any) -> AIMessage:
    return AIMessage(content=text, usage_metadata=_USAGE, response_metadata=_RESPONSE_METADATA, **extra)  # type: ignore[arg-type]


def _chain() -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "Tell me about {topic}.")])
    model = FakeChatModel(messages=itertools.cycle([_answer("Benchmarks measure; they do not guess.")]))
    return prompt | model | StrOutputParser()


@tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"It is sunny in {city}."


def _agent() -> Any:
    # Imported here so the three chain workloads still run where langchain/langgraph are missing.
    from langchain.agents import create_agent

    # Two scripted answers per step: a tool call, then the final answer; itertools.cycle keeps steps identical.
    call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    script = [
        _answer("", tool_calls=[call]),
        _answer("It is sunny in Paris."),
    ]
    model = FakeChatModel(messages=itertools.cycle(script))
    return create_agent(model, tools=[get_weather], system_prompt="You are a weather bot.")


@dataclass(frozen=True)
class Workload:
    """One timed operation: ``call(config)`` returns None (sync) or an awaitable (async)."""

    name: str
    is_async: bool
    call: Callable[[RunnableConfig], Any]
    description: str


def build(name: str) -> Workload:
    """Build a fresh workload by name (see ``NAMES``)."""
    topic = {"topic": "tracing"}
    if name == "invoke":
        chain = _chain()
        return Workload(name, False, lambda cfg: chain.invoke(topic, config=cfg), "prompt | chat model | parser")
    if name == "ainvoke":
        chain = _chain()

        def acall(cfg: RunnableConfig) -> Awaitable[Any]:
            return chain.ainvoke(topic, config=cfg)

        return Workload(name, True, acall, "same chain, await ainvoke")
    if name == "stream":
        chain = _chain()

        def consume(cfg: RunnableConfig) -> None:
            for _ in chain.stream(topic, config=cfg):
                pass

        return Workload(name, False, consume, f"same chain, .stream(), {STREAM_CHUNKS} token chunks")
    if name == "agent":
        agent = _agent()
        request = {"messages": [("human", "Weather in Paris?")]}
        return Workload(
            name, False, lambda cfg: agent.invoke(request, config=cfg), "create_agent: model -> tool -> model"
        )
    raise ValueError(f"unknown workload {name!r}; expected one of {NAMES}")


NAMES = ("invoke", "ainvoke", "stream", "agent")


class RunCounter(BaseCallbackHandler):
    """Counts LangChain runs (start events) and token events; used untimed to know how many spans to expect."""

    run_inline = True

    def __init__(self) -> None:
        self.runs = 0
        self.tokens = 0

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        self.runs += 1

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.runs += 1

    def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
        self.runs += 1

    def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
        self.runs += 1

    def on_retriever_start(self, *args: Any, **kwargs: Any) -> None:
        self.runs += 1

    def on_llm_new_token(self, *args: Any, **kwargs: Any) -> None:
        self.tokens += 1
