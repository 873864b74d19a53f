"""Test helpers: spans as a tree, fake models that LangChain's agents accept."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.language_models.llms import LLM
from langchain_core.messages import AIMessage
from langchain_core.outputs import GenerationChunk
from opentelemetry.sdk.trace import ReadableSpan


class SpanTree:
    """Finished spans with lookups by name and by parent."""

    def __init__(self, spans: Iterable[ReadableSpan]) -> None:
        self.spans: list[ReadableSpan] = list(spans)
        self.by_id = {s.context.span_id: s for s in self.spans}

    def __len__(self) -> int:
        return len(self.spans)

    def names(self) -> list[str]:
        return [s.name for s in self.spans]

    def one(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, found {len(found)} among {self.names()}"
        return found[0]

    def all(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        if span.parent is None:
            return None
        return self.by_id.get(span.parent.span_id)

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in self.spans if s.parent is not None and s.parent.span_id == span.context.span_id]

    def roots(self) -> list[ReadableSpan]:
        return [s for s in self.spans if s.parent is None or s.parent.span_id not in self.by_id]

    def shape(self, span: ReadableSpan | None = None) -> Any:
        """Nested ``(name, [children...])`` with children sorted by name, for order-free comparisons."""
        if span is None:
            return sorted((self.shape(r) for r in self.roots()), key=repr)
        return (span.name, sorted((self.shape(c) for c in self.children(span)), key=repr))

    def run_id(self, span: ReadableSpan) -> str:
        return str(span.attributes["langchain.run.id"])  # type: ignore[index]


class ToolCallingFakeChatModel(GenericFakeChatModel):
    """GenericFakeChatModel that accepts ``bind_tools`` (agents require it) and replays its messages.

    ``ls_params`` stands in for what a real integration reports (``ls_provider``, ``ls_model_name``, ...).
    """

    ls_params: dict[str, Any] = {}  # noqa: RUF012 - a pydantic field; pydantic copies the default

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {**super()._get_ls_params(stop=stop, **kwargs), **self.ls_params}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolCallingFakeChatModel:  # type: ignore[override]
        return self


def ai(content: str = "", *, tool_calls: list[dict[str, Any]] | None = None, model: str = "fake-model-1",
       input_tokens: int = 10, output_tokens: int = 5, response_id: str | None = None,
       finish_reason: str | None = None) -> AIMessage:
    """An AIMessage as a provider would return it: usage, response metadata, maybe tool calls."""
    meta: dict[str, Any] = {"model_name": model}
    if finish_reason or tool_calls:
        meta["finish_reason"] = finish_reason or "tool_calls"
    else:
        meta["finish_reason"] = "stop"
    return AIMessage(
        content=content,
        tool_calls=tool_calls or [],
        usage_metadata={"input_tokens": input_tokens, "output_tokens": output_tokens,
                        "total_tokens": input_tokens + output_tokens},
        response_metadata=meta,
        id=response_id,
    )


def fake_chat(*messages: AIMessage, repeat: int = 1, **ls_params: Any) -> ToolCallingFakeChatModel:
    return ToolCallingFakeChatModel(messages=iter(list(messages) * repeat), ls_params=ls_params)


class CharStreamLLM(LLM):
    """A completion LLM that answers ``response`` and streams it one character per chunk through the callbacks."""

    response: str = "abc"

    @property
    def _llm_type(self) -> str:
        return "char-stream"

    def _call(self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any) -> str:
        return self.response

    def _stream(self, prompt: str, stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[GenerationChunk]:
        for char in self.response:
            chunk = GenerationChunk(text=char)
            if run_manager is not None:
                run_manager.on_llm_new_token(char, chunk=chunk)
            yield chunk


def one_warning(caplog: Any) -> str:
    """The single warning a test expects (a malformed variable logs exactly one), as text."""
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    return warnings[0]
