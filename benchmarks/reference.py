"""The reference handlers the tracers are measured against: LangChain's dispatch to a handler that does nothing
(``noop``), one bare SDK span per run (``minimal``), and the contract floor (``floor``). See README.md.
"""

from __future__ import annotations

import asyncio
import time
from asyncio.events import _get_running_loop  # public in asyncio.events.__all__
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider


class NoopHandler(BaseCallbackHandler):
    """The floor of any callback tracer: LangChain's dispatch to an inline handler whose methods do nothing."""

    run_inline = True

    def __copy__(self) -> NoopHandler:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> NoopHandler:
        return self


class MinimalHandler(BaseCallbackHandler):
    """The floor of a span-per-run tracer: one bare SDK span per run, parent by run id, no attributes."""

    run_inline = True

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer("benchmarks.minimal")
        self._spans: dict[UUID, trace.Span] = {}

    def __copy__(self) -> MinimalHandler:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> MinimalHandler:
        return self

    def _start(self, name: str, run_id: UUID, parent_run_id: UUID | None) -> None:
        parent = self._spans.get(parent_run_id) if parent_run_id is not None else None
        context = trace.set_span_in_context(parent) if parent is not None else None
        self._spans[run_id] = self._tracer.start_span(name, context=context)

    def _end(self, run_id: UUID) -> None:
        span = self._spans.pop(run_id, None)
        if span is not None:
            span.end()

    def on_chain_start(
        self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._start("chain", run_id, parent_run_id)

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._start("chat", run_id, parent_run_id)

    def on_llm_start(
        self, serialized: Any, prompts: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._start("llm", run_id, parent_run_id)

    def on_tool_start(
        self, serialized: Any, input_str: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._start("tool", run_id, parent_run_id)

    def on_retriever_start(
        self, serialized: Any, query: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._start("retriever", run_id, parent_run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)


def _current_task() -> Any:
    loop = _get_running_loop()
    return None if loop is None else asyncio.current_task(loop)


class FloorHandler(MinimalHandler):
    """The floor of a tracer that keeps our span contract's two costs no attribute can stand in for: the minimal
    handler plus the run's span made current while the run's code runs (so spans the user opens inside a tool
    nest under it), and one timestamp kept per streamed chunk (for the one event per chunk). No attributes, no
    status, no parsing, and the SDK's own spans as in the minimal handler: a tracer on SDK spans that keeps the
    contract costs at least this (ours makes cheaper spans than the SDK's, so for it the floor is a yardstick, not
    a bound)."""

    def __init__(self, provider: TracerProvider) -> None:
        super().__init__(provider)
        self._attached: dict[UUID, tuple[Any, Any, Any]] = {}
        self._stamps: dict[UUID, list[int]] = {}

    def _start(self, name: str, run_id: UUID, parent_run_id: UUID | None) -> None:
        super()._start(name, run_id, parent_run_id)
        ctx = trace.set_span_in_context(self._spans[run_id])
        self._attached[run_id] = (ctx, otel_context.attach(ctx), _current_task())

    def _end(self, run_id: UUID) -> None:
        attached = self._attached.pop(run_id, None)
        # Reset only in the context and task the run was attached in (a sync end): langchain-core runs async ends
        # in a task of their own, where the API's detach would fail and log.
        if attached is not None and otel_context.get_current() is attached[0] and _current_task() is attached[2]:
            otel_context.detach(attached[1])
        self._stamps.pop(run_id, None)
        super()._end(run_id)

    def on_llm_new_token(self, token: Any, *, chunk: Any = None, run_id: UUID, parent_run_id: UUID | None = None,
                         tags: list[str] | None = None, **kwargs: Any) -> None:
        stamps = self._stamps.get(run_id)
        if stamps is None:
            stamps = self._stamps[run_id] = []
        stamps.append(time.time_ns())
