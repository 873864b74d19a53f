"""Test helpers: spans as a tree, fake models that LangChain's agents accept."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
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
    """GenericFakeChatModel that accepts ``bind_tools`` (agents require it) and replays its messages."""

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


def fake_chat(*messages: AIMessage, repeat: int = 1) -> ToolCallingFakeChatModel:
    return ToolCallingFakeChatModel(messages=iter(list(messages) * repeat))
