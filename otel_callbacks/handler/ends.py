"""End and error callbacks: read the response, record metrics, set status, restore the context, end the span.

A mixin of :class:`~otel_callbacks.OpenTelemetryCallbackHandler`. Whatever happens before, a run's span ends
exactly once (``_finish`` / ``_error`` end it in ``finally``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from uuid import UUID

from opentelemetry.trace import Status, StatusCode

from otel_callbacks import _semconv as sc
from otel_callbacks.emit.status import OK
from otel_callbacks.handler import graph as _graph
from otel_callbacks.handler.guard import failed, guarded
from otel_callbacks.mapping import errors as _errors
from otel_callbacks.mapping import latest as _sc_latest
from otel_callbacks.mapping import messages as _messages
from otel_callbacks.mapping import response as _response
from otel_callbacks.mapping import values as _values
from otel_callbacks.runs.context import leave

if TYPE_CHECKING:
    from otel_callbacks.emit.content_events import ContentEvents
    from otel_callbacks.emit.emitter import Emitter
    from otel_callbacks.emit.metrics import GenAIMetrics
    from otel_callbacks.mapping.content import ContentPolicy
    from otel_callbacks.runs.registry import RunRecord, RunRegistry


def _end(record: RunRecord) -> None:
    """Restore the context and end the span; the span ends even if restoring fails."""
    if record.borrowed:
        return
    try:
        leave(record)
    finally:
        record.span.end()


def _record_exception(span: Any, error: BaseException, policy: ContentPolicy) -> None:
    """The ``exception`` event, built by ``mapping`` (never raises; the message and stacktrace cut, redacted and
    stripped of URL credentials) instead of the span's ``record_exception``, which records them as they are."""
    span.add_event(sc.EVENT_EXCEPTION, _errors.exception_attributes(error, redact=policy.redact,
                                                                    max_length=policy.max_length))


class EndCallbacks:
    """``on_*_end`` and ``on_*_error`` for chains, models, tools and retrievers."""

    _runs: RunRegistry
    _emit: Emitter
    _policy: ContentPolicy
    _capture: bool
    _max_len: int
    _metrics: GenAIMetrics | None
    _latest: bool
    _content_events: ContentEvents | None
    raise_error: bool

    if TYPE_CHECKING:
        def _set_json(self, record: RunRecord, key: str, value: Any) -> None: ...

    def _finish(self, record: RunRecord) -> None:
        """Totals, status OK, restore the context, end the span: whatever happened before, the span ends once."""
        try:
            if record.children:
                self._end_orphans(record, sc.ERROR_NOT_ENDED, "the run above it ended first")
            if record.metric_attrs is not None and record.op != sc.OP_CHAT and record.op != sc.OP_TEXT_COMPLETION:
                self._record_operation(record, None)
            if record.interrupt is not None:
                _graph.end_interrupted(record, self._latest)
            if record.recording:
                if record.model_runs:
                    self._emit.set_attributes(record.span, {
                        sc.LC_USAGE_INPUT_TOKENS: min(record.input_tokens, _values.INT64_MAX),
                        sc.LC_USAGE_OUTPUT_TOKENS: min(record.output_tokens, _values.INT64_MAX),
                        sc.LC_USAGE_MODEL_RUNS: record.model_runs,
                    })
                record.span.set_status(OK)
        finally:
            _end(record)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        try:
            record = self._runs.pop(run_id)
            if record is None:
                return
            try:
                if record.recording and self._capture:
                    self._set_json(record, sc.LC_CHAIN_OUTPUTS, outputs)
            finally:
                self._finish(record)
        except Exception as exc:
            failed(self, "on_chain_end", exc)

    def on_llm_end(self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        try:
            record = self._runs.pop(run_id)
            if record is None or (record.borrowed and record.metric_attrs is None):
                return  # unknown, or unsampled with no metrics to record: nothing to read from the response
            try:
                self._model_response(record, response)
            finally:
                self._finish(record)
        except Exception as exc:
            failed(self, "on_llm_end", exc)

    def _model_response(self, record: RunRecord, response: Any) -> None:
        """Usage totals, metrics and the response attributes of a model run that ended."""
        attrs = _response.llm_response_attributes(response)
        if self._latest:
            _sc_latest.model_attributes(attrs)
        inp = attrs.get(sc.GEN_AI_USAGE_INPUT_TOKENS, 0)
        out = attrs.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 0)
        if inp or out:
            self._runs.add_usage(record, inp, out)
        if record.metric_attrs is not None:
            self._record_model(record, attrs, None)
        if not record.recording:
            return
        if record.chunks:
            attrs[sc.GEN_AI_REQUEST_STREAM] = True
            attrs[sc.LC_STREAM_CHUNK_COUNT] = record.chunks
            if record.first_chunk_ns:
                attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (record.first_chunk_ns - record.start_ns) / 1e9
        self._emit.set_attributes(record.span, _values.clip_attributes(attrs, self._max_len))
        if not self._capture and record.content is None:
            return
        output = _messages.output_messages(response)
        if self._latest:
            output = _sc_latest.output_messages(output)
        if self._capture:
            self._set_json(record, sc.GEN_AI_OUTPUT_MESSAGES, output)
        if record.content is not None and self._content_events is not None:
            content = {**record.content, sc.GEN_AI_OUTPUT_MESSAGES: output}
            self._content_events.inference(record.span, {**(record.event_attrs or {}), **attrs}, content)

    def on_tool_end(self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any) -> None:
        try:
            record = self._runs.pop(run_id)
            if record is None:
                return
            try:
                if record.recording and self._capture:
                    self._set_json(record, sc.GEN_AI_TOOL_CALL_RESULT, _messages.tool_result(output))
            finally:
                self._finish(record)
        except Exception as exc:
            failed(self, "on_tool_end", exc)

    def on_retriever_end(
        self, documents: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        try:
            record = self._runs.pop(run_id)
            if record is None:
                return
            try:
                if record.recording and isinstance(documents, list):
                    record.span.set_attribute(sc.LC_RETRIEVAL_DOCUMENT_COUNT, len(documents))
                    if self._capture:
                        self._set_json(record, sc.GEN_AI_RETRIEVAL_DOCUMENTS, _messages.documents(documents))
            finally:
                self._finish(record)
        except Exception as exc:
            failed(self, "on_retriever_end", exc)

    def _error(self, error: BaseException, run_id: UUID) -> None:
        record = self._runs.pop(run_id)
        if record is None:
            return
        try:
            control_flow = _errors.is_control_flow(error)
            if record.children:
                self._end_orphans(record, None if control_flow else _errors.error_type(error),
                                  _errors.error_description(error, redact=self._policy.redact))
            if record.metric_attrs is not None and not control_flow:
                if record.op == sc.OP_CHAT or record.op == sc.OP_TEXT_COMPLETION:
                    self._record_model(record, {}, _errors.error_type(error))
                else:
                    self._record_operation(record, _errors.error_type(error))
            if control_flow:
                ids = _graph.interrupt_ids(error)
                if ids is not None:
                    _graph.mark_interrupted(record, ids)
                if record.interrupt is not None:
                    _graph.end_interrupted(record, self._latest)
            if record.recording:
                span = record.span
                if not control_flow:
                    if record.content is not None and self._content_events is not None:
                        self._content_events.inference(span, {**(record.event_attrs or {}),
                                                              sc.ERROR_TYPE: _errors.error_type(error)}, record.content)
                    span.set_attribute(sc.ERROR_TYPE, _errors.error_type(error)[: self._max_len])
                    description = _errors.error_description(error, redact=self._policy.redact)
                    span.set_status(Status(StatusCode.ERROR, description))
                    _record_exception(span, error, self._policy)
        finally:
            _end(record)

    @guarded
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(error, run_id)

    @guarded
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(error, run_id)

    @guarded
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(error, run_id)

    @guarded
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._error(error, run_id)

    def _record_model(self, record: RunRecord, response_attrs: dict[str, Any], error: str | None) -> None:
        metrics, attrs = self._metrics, record.metric_attrs
        if metrics is None or attrs is None:
            return
        model = response_attrs.get(sc.GEN_AI_RESPONSE_MODEL)
        if model:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = model
        now = time.monotonic_ns()
        first = (record.first_chunk_ns - record.start_ns) / 1e9 if record.first_chunk_ns else None
        metrics.model_end(attrs, (now - record.start_ns) / 1e9, response_attrs, error, first)

    def _record_operation(self, record: RunRecord, error: str | None) -> None:
        if self._metrics is not None and record.metric_attrs is not None:
            seconds = (time.monotonic_ns() - record.start_ns) / 1e9
            self._metrics.operation_end(record.op, record.metric_attrs, seconds, error)

    def _end_orphans(self, record: RunRecord, error_type: str | None, why: str) -> None:
        """End the runs still open beneath a run that is ending: LangChain sends no end to a model call cancelled
        inside ``agenerate``, timed out by ``wait_for`` or left by an abandoned stream. Each ends now (when it
        stopped), ERROR with the reason above it (none for a graph interrupt), its metrics recorded as failed,
        and no usage added (it reported none)."""
        for orphan in self._runs.pop_orphans(record):
            try:
                if orphan.metric_attrs is not None and error_type is not None:
                    if orphan.op == sc.OP_CHAT or orphan.op == sc.OP_TEXT_COMPLETION:
                        self._record_model(orphan, {}, error_type)
                    else:
                        self._record_operation(orphan, error_type)
                if orphan.recording:
                    orphan.span.set_attribute(sc.LC_ORPHANED, True)
                    if error_type is not None:
                        orphan.span.set_attribute(sc.ERROR_TYPE, error_type[: self._max_len])
                        orphan.span.set_status(Status(StatusCode.ERROR, f"not ended: {why}"[:256]))
            finally:
                _end(orphan)

    def _evict(self, record: RunRecord) -> None:
        try:
            if record.recording:
                record.span.set_attribute(sc.LC_EVICTED, True)
                record.span.set_status(Status(StatusCode.ERROR, "run never ended; evicted to bound memory"))
        finally:
            _end(record)
