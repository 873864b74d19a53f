"""Callbacks that become span events on an open run's span: streamed chunks, agent steps, text, retries, custom.

A mixin of :class:`~otel_callbacks.OpenTelemetryCallbackHandler`. Events go only to runs that are recording, so an
unsampled trace costs one dict lookup per event.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from time import time_ns as _time_ns
from typing import TYPE_CHECKING, Any
from uuid import UUID

from otel_callbacks import _semconv as sc
from otel_callbacks.handler.guard import failed, guarded
from otel_callbacks.mapping import errors as _errors
from otel_callbacks.mapping import values as _values
from otel_callbacks.mapping.content import ContentPolicy, json_attribute, safe_str, text_attribute
from otel_callbacks.mapping.text import safe_text

if TYPE_CHECKING:
    from otel_callbacks.emit.emitter import Emitter
    from otel_callbacks.emit.metrics import GenAIMetrics
    from otel_callbacks.runs.registry import RunRecord, RunRegistry


# The event types of langchain-core's stream protocol (``langchain_protocol``, ``stream_events(version="v3")``).
_STREAM_EVENT_TYPES = frozenset({
    "message-start", "content-block-start", "content-block-delta", "content-block-finish", "message-finish", "error",
    "tool-started", "tool-output-delta", "tool-finished", "tool-error",
})


def _chunk_text(token: Any) -> str:
    if isinstance(token, str):
        return token
    if isinstance(token, list):  # content blocks
        return "".join(b if isinstance(b, str) else safe_str(b.get("text", "")) if isinstance(b, Mapping) else ""
                       for b in token)
    return ""


def _has_tool_call_chunk(chunk: Any) -> bool:
    message = getattr(chunk, "message", None)
    return bool(getattr(message, "tool_call_chunks", None))


class EventCallbacks:
    """Streaming and event callbacks; expects ``_runs``, ``_policy``, ``_capture``, ``_stream_events`` on self."""

    _runs: RunRegistry
    _emit: Emitter
    _policy: ContentPolicy
    _capture: bool
    _stream_events: bool
    _metrics: GenAIMetrics | None

    def _recording(self, run_id: UUID) -> RunRecord | None:
        record = self._runs.get(run_id.int)
        return record if record is not None and record.recording else None

    def _chunk(self, record: RunRecord, non_empty: bool) -> bool:
        """Count a chunk of a run that records or has metrics, time it; whether to write its event."""
        now = time.monotonic_ns()
        record.chunks += 1
        if non_empty and not record.first_chunk_ns:
            record.first_chunk_ns = now
        elif record.first_chunk_ns and record.metric_attrs is not None and self._metrics is not None:
            # time per output chunk: from the end of the previous chunk to the end of this one, after the first
            self._metrics.chunk_gap(record.metric_attrs, (now - record.last_chunk_ns) / 1e9)
        record.last_chunk_ns = now
        return self._stream_events and record.recording

    def on_llm_new_token(
        self, token: Any, *, chunk: Any = None, run_id: UUID, parent_run_id: UUID | None = None, tags: Any = None,
        **kwargs: Any,
    ) -> None:
        # Called once per streamed chunk, so guarded inline rather than through the @guarded wrapper; the
        # arguments LangChain always passes are named, so that no kwargs dict is made per chunk.
        try:
            streaming = self._runs.streaming
            if streaming[0] is run_id:  # the steady state of a recorded stream without metrics or content
                streaming[1].chunks += 1
                streaming[2](_time_ns())
                return
            record = self._runs.get(run_id.int)
            if record is None:
                return
            sink = record.chunk_sink
            if sink is not None:  # the same, for one of several streams whose chunks interleave
                self._runs.streaming = (run_id, record, sink)
                record.chunks += 1
                sink(_time_ns())
                return
            if not (record.recording or record.metric_attrs is not None):
                return
            text = token if type(token) is str else _chunk_text(token)
            if not self._chunk(record, bool(text) or _has_tool_call_chunk(chunk)):
                return
            span = record.span
            # No attributes unless there is text to record: an event with attributes costs the SDK twice as
            # much, and the chunk's position is the event's position (``langchain.stream.chunk_count`` gives the
            # total).
            if self._capture and text:
                value = text_attribute(text, self._policy)
                if value is not None:
                    span.add_event(sc.EVENT_NEW_TOKEN, {sc.ATTR_CHUNK_TEXT: value})
                    return
            sink = self._emit.chunk_sink(span, sc.EVENT_NEW_TOKEN)
            if sink is not None:
                sink(_time_ns())
                metrics = self._metrics
                if record.first_chunk_ns and not self._capture and (record.metric_attrs is None or metrics is not None):
                    # From now on nothing but the count, the stamp (and the gap, with metrics) changes per chunk.
                    if record.metric_attrs is not None and metrics is not None:
                        sink = metrics.chunk_sink(record, sink)
                    record.chunk_sink = sink
                    self._runs.streaming = (run_id, record, sink)
        except Exception as exc:
            failed(self, "on_llm_new_token", exc)

    @guarded
    def on_stream_event(self, event: Any, *, run_id: UUID, **kwargs: Any) -> None:
        kind = event.get("event") if isinstance(event, Mapping) else None
        delta = event.get("delta") if isinstance(event, Mapping) else None
        non_empty = kind == "content-block-delta" and isinstance(delta, Mapping) and any(
            v for k, v in delta.items() if k != "type"
        )
        record = self._runs.get(run_id.int)
        if record is None or not (record.recording or record.metric_attrs is not None):
            return
        if not self._chunk(record, non_empty):
            return
        if not isinstance(kind, str):
            kind = "unknown"
        elif kind not in _STREAM_EVENT_TYPES:  # anything else may be content: recorded only with capture on
            kind = safe_text(kind[:64]) if self._capture else "other"
        attrs: dict[str, Any] = {sc.ATTR_STREAM_EVENT_TYPE: kind}
        if self._capture:
            value = json_attribute(event, self._policy)
            if value is not None:
                attrs[sc.ATTR_STREAM_EVENT_DATA] = value
        record.span.add_event(sc.EVENT_STREAM_EVENT, attrs)

    def _event(self, run_id: UUID, name: str, attrs: dict[str, Any], content: dict[str, Any]) -> None:
        record = self._recording(run_id)
        if record is None:
            return
        if self._capture:
            for key, value in content.items():
                if value is None:
                    continue
                if isinstance(value, str):
                    text = text_attribute(value, self._policy)
                else:
                    text = json_attribute(value, self._policy)
                if text is not None:
                    attrs[key] = text
        record.span.add_event(name, _values.clip_attributes(attrs, self._policy.max_length))

    @guarded
    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        tool = getattr(action, "tool", None)
        attrs = {sc.ATTR_AGENT_TOOL: tool} if isinstance(tool, str) else {}
        self._event(run_id, sc.EVENT_AGENT_ACTION, attrs, {
            sc.ATTR_AGENT_TOOL_INPUT: getattr(action, "tool_input", None),
            sc.ATTR_AGENT_LOG: getattr(action, "log", None),
        })

    @guarded
    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._event(run_id, sc.EVENT_AGENT_FINISH, {}, {
            sc.ATTR_AGENT_OUTPUT: getattr(finish, "return_values", None),
            sc.ATTR_AGENT_LOG: getattr(finish, "log", None),
        })

    @guarded
    def on_text(self, text: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._event(run_id, sc.EVENT_TEXT, {}, {sc.ATTR_TEXT: text})

    @guarded
    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        attrs: dict[str, Any] = {}
        attempt = getattr(retry_state, "attempt_number", None)
        if isinstance(attempt, int):
            attrs[sc.ATTR_RETRY_ATTEMPT] = attempt
        outcome = getattr(retry_state, "outcome", None)
        if outcome is not None and getattr(outcome, "failed", False):
            error = outcome.exception()
            if error is not None:
                attrs[sc.ATTR_RETRY_ERROR] = _errors.error_type(error)
        self._event(run_id, sc.EVENT_RETRY, attrs, {})

    @guarded
    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        attrs = {sc.ATTR_CUSTOM_EVENT_NAME: safe_str(name)[:256]}
        self._event(run_id, sc.EVENT_CUSTOM, attrs, {sc.ATTR_CUSTOM_EVENT_DATA: data})
