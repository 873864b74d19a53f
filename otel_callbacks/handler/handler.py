"""The LangChain callback handler: each callback maps (``_mapping``), books (``_runs``), then emits on the span.

Every ``on_*`` method runs inside ``guard.guarded``, or guards inline the same way (the start
and end callbacks, twice per run, and ``on_llm_new_token``, per chunk: the decorator's argument forwarding costs as
much as the guard): whatever LangChain passes, no exception reaches the user's chain (unless ``raise_error`` is
set, as our own tests do), and each kind of internal failure is logged once. ``test_every_callback_is_guarded``
holds every ``on_*`` method to that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from otel_callbacks import _config
from otel_callbacks import _semconv as sc
from otel_callbacks._version import __version__
from otel_callbacks.emit.lean_span import OK, LeanSpan, lean_tracer
from otel_callbacks.emit.metrics import METRIC_START_KEYS, GenAIMetrics, global_provider_unset, metrics_enabled
from otel_callbacks.emit.sampling import children_follow_parent, sampler_reads_attributes
from otel_callbacks.handler.events import EventCallbacks
from otel_callbacks.handler.guard import failed, guarded
from otel_callbacks.mapping import messages as _messages
from otel_callbacks.mapping import response as _response
from otel_callbacks.mapping import spans as _mapping
from otel_callbacks.mapping.content import (
    DEFAULT_MAX_VALUE_LENGTH,
    ContentPolicy,
    Redactor,
    json_attribute,
    text_attribute,
)
from otel_callbacks.runs.registry import RunRecord, RunRegistry, claimed, enter, leave, lookup, root_context

_logger = logging.getLogger("otel_callbacks")
_SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"
DEFAULT_MAX_OPEN_RUNS = 10_000



def _end(record: RunRecord) -> None:
    """Restore the context and end the span; the span ends even if restoring fails."""
    if record.borrowed:
        return
    try:
        leave(record)
    finally:
        record.span.end()


def _own_attributes(span: Any, attrs: dict[str, Any]) -> None:
    """Attributes built by ``_mapping``: a lean span takes them unchecked, an SDK span in one call (it has a
    sizeable fixed cost per call on top of each attribute)."""
    if type(span) is LeanSpan:
        span.own_attributes(attrs)
    else:
        span.set_attributes(attrs)


def _record_exception(span: Any, error: BaseException) -> None:
    """The SDK's ``record_exception``, which calls ``str(error)`` unguarded; a fallback event if that raises."""
    try:
        span.record_exception(error, escaped=True)
    except Exception:
        span.add_event("exception", {"exception.type": _mapping.error_type(error),
                                     "exception.message": "<unprintable exception>", "exception.escaped": True})


class OpenTelemetryCallbackHandler(EventCallbacks, BaseCallbackHandler):
    """Turns every LangChain run (chain, chat model, LLM, tool, retriever, agent, graph) into an OpenTelemetry span.

    Spans nest exactly as LangChain's run tree, follow the GenAI semantic conventions, and the run's span is current
    while the run's own code executes, so spans your code opens inside a tool or lambda nest under it. Works in sync
    and async code, threads and LangGraph. Content (prompts, messages, tool arguments, documents) is recorded only when
    ``capture_content`` is true or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` says so.

    Args:
        tracer_provider: where spans go; the global provider when ``None``.
        capture_content: record content; ``None`` reads the environment variable (default off).
        redact: applied to every string of content before it is recorded; if it raises, the content is dropped.
        max_value_length: longest attribute value written (content and metadata), default 16 KiB
            (``OTEL_CALLBACKS_MAX_VALUE_LENGTH``); longer values are cut, JSON stays valid.
        max_open_runs: bound on runs open at once (``OTEL_CALLBACKS_MAX_OPEN_RUNS``, default 10000); past it the
            oldest run's span is ended with status ERROR so memory stays bounded.
        max_metadata_attributes: at most this many ``langchain.metadata.*`` attributes per span (default 32), so the
            SDK's attribute limit never drops the GenAI attributes.
        stream_events: one span event per streamed chunk (default on).
        meter_provider: where the GenAI client metrics go (token usage, operation duration, time to first chunk,
            time per output chunk); the global provider when ``None``. No metrics work at all when neither is set.

    Example:
        >>> from otel_callbacks import OpenTelemetryCallbackHandler
        >>> handler = OpenTelemetryCallbackHandler()
        >>> # chain.invoke({"question": "hi"}, config={"callbacks": [handler]})
    """

    run_inline = True  # start callbacks must run in the caller's context so the span can be made current there

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        capture_content: bool | None = None,
        redact: Redactor | None = None,
        max_value_length: int | None = None,
        max_open_runs: int | None = None,
        max_metadata_attributes: int = 32,
        stream_events: bool = True,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._bind_tracer(trace.get_tracer("otel_callbacks", __version__, tracer_provider, schema_url=_SCHEMA_URL))
        self._policy = ContentPolicy(
            capture=_config.capture_content(capture_content),
            max_length=_config.positive_int(max_value_length, sc.ENV_MAX_VALUE_LENGTH, DEFAULT_MAX_VALUE_LENGTH, 64),
            redact=redact,
        )
        self._capture = self._policy.capture
        self._max_len = self._policy.max_length
        self._max_metadata = max_metadata_attributes
        self._stream_events = stream_events
        self._runs = RunRegistry(_config.positive_int(max_open_runs, sc.ENV_MAX_OPEN_RUNS, DEFAULT_MAX_OPEN_RUNS))
        self._failures: set[tuple[str, str]] = set()
        self._metrics = (
            GenAIMetrics(meter_provider, experimental=_config.latest_experimental())
            if metrics_enabled(meter_provider)
            else None
        )
        # A handler made at import time, before the app installs its MeterProvider, picks it up later (as the
        # API's proxy tracer does for spans); checked on each model run until then.
        self._metrics_pending = self._metrics is None and meter_provider is None

    def _bind_tracer(self, tracer: Any) -> None:
        self._tracer = tracer
        self._lean = lean_tracer(tracer) if _config.lean_spans() else None
        # Until the app installs its TracerProvider the API hands out a proxy; rebound on a later start.
        self._tracer_pending = isinstance(tracer, trace.ProxyTracer)
        # The SDK's own samplers never look at attributes, so they are set once after start; a custom sampler also
        # gets the sampling-relevant GenAI attributes at start, as the conventions advise (the SDK then takes them
        # twice, a cost only custom samplers pay).
        sampler = getattr(tracer, "sampler", None)
        self._sampler_reads_attributes = sampler_reads_attributes(sampler)
        self._children_follow_parent = children_follow_parent(sampler)

    def _new_span(self, name: str, parent: RunRecord | None, kind: SpanKind, attrs: dict[str, Any]) -> Any:
        if self._tracer_pending and not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            self._bind_tracer(trace.get_tracer("otel_callbacks", __version__, schema_url=_SCHEMA_URL))
        lean = self._lean
        if lean is not None and parent is not None and parent.recording and lean.children_follow_parent:
            return lean.start_child(name, kind, parent.span.get_span_context(), parent.child_context())
        context = parent.child_context() if parent is not None else None
        start_span = self._tracer.start_span if lean is None else lean.start_span
        return start_span(name, context, kind, attrs if self._sampler_reads_attributes else None)

    # One handler, one run map: LangChain copies handlers when it merges callback managers.
    def __copy__(self) -> OpenTelemetryCallbackHandler:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> OpenTelemetryCallbackHandler:
        return self

    @property
    def open_runs(self) -> int:
        """How many runs this handler has started and not yet ended."""
        return len(self._runs)

    # --- starts -------------------------------------------------------------------------------------------------------
    def _start(
        self, run_id: UUID, parent_run_id: UUID | None, name: str, kind: SpanKind, op: str,
        attrs: dict[str, Any], run_type: str, tags: Any, metadata: Any,
        extra: Callable[[], dict[str, Any]] | None = None,
    ) -> RunRecord | None:
        """Start the span, register the run, make its span current. ``extra`` adds attributes of recorded runs."""
        if claimed(run_id):  # a second start, or another handler already traces this run
            return None
        parent = lookup(parent_run_id)
        if parent is None:
            root_context()  # no known parent: the ambient context (e.g. the web request's span) is the parent
        if len(name) > self._max_len:
            name = name[: self._max_len]
        span = self._new_span(name, parent, kind, attrs)
        record = RunRecord(span, parent, op, time.monotonic_ns())
        # Registered before anything else can fail, so that the run's end (or eviction) always ends the span.
        for old in self._runs.add(run_id, record):
            self._evict(old)
        enter(record)
        if record.recording:
            if extra is not None:
                attrs.update(extra())
            _mapping.clip_attributes(attrs, self._max_len)  # names and parameters come from user code
            attrs.update(_mapping.run_attributes(run_id, run_type, tags, metadata, self._max_len, self._max_metadata))
            _own_attributes(span, attrs)
        return record

    def _unsampled_child(self, run_id: UUID, parent_run_id: UUID | None, op: str) -> RunRecord | None:
        """Register a child of an unsampled run without any span work, when the sampler would drop it anyway.

        Production runs sample 1-10 % of traces; this keeps the other 90-99 % nearly free. The child shares the
        parent's non-recording span, which is already current in the context its code runs in.
        """
        if not self._children_follow_parent or parent_run_id is None:
            return None
        parent = lookup(parent_run_id)
        if parent is None or parent.recording or claimed(run_id):
            return None
        record = RunRecord(parent.span, parent, op, time.monotonic_ns())
        record.borrowed = True
        for old in self._runs.add(run_id, record):
            self._evict(old)
        return record

    def on_chain_start(
        self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
        tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        try:
            if self._unsampled_child(run_id, parent_run_id, "chain") is not None:
                return
            name = _mapping.serialized_name(serialized, kwargs.get("name"))
            span_name, kind, attrs = _mapping.chain_span(name, metadata, tags, serialized)
            op = attrs.get(sc.GEN_AI_OPERATION_NAME, "chain")
            run_type = kwargs.get("run_type")
            if not isinstance(run_type, str) or not run_type:
                run_type = "chain"
            record = self._start(run_id, parent_run_id, span_name, kind, op, attrs, run_type, tags, metadata)
            if record is None:
                return
            if op == sc.OP_INVOKE_AGENT and self._metrics is not None and self._metrics.agent_duration is not None:
                record.metric_attrs = {sc.GEN_AI_OPERATION_NAME: op, sc.GEN_AI_AGENT_NAME: attrs[sc.GEN_AI_AGENT_NAME]}
            if record.recording and self._capture:
                self._set_json(record, sc.LC_CHAIN_INPUTS, inputs)
        except Exception as exc:
            failed(self, "on_chain_start", exc)

    def on_chat_model_start(
        self, serialized: dict[str, Any] | None, messages: list[list[Any]], *, run_id: UUID,
        parent_run_id: UUID | None = None, tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._start_model(serialized, messages, True, run_id, parent_run_id, tags, metadata, kwargs)
        except Exception as exc:
            failed(self, "on_chat_model_start", exc)

    def on_llm_start(
        self, serialized: dict[str, Any] | None, prompts: list[str], *, run_id: UUID,
        parent_run_id: UUID | None = None, tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._start_model(serialized, prompts, False, run_id, parent_run_id, tags, metadata, kwargs)
        except Exception as exc:
            failed(self, "on_llm_start", exc)

    def _start_model(
        self, serialized: Any, inputs: Any, chat: bool, run_id: UUID, parent_run_id: UUID | None, tags: Any,
        metadata: Any, kwargs: dict[str, Any],
    ) -> None:
        params = kwargs.get("invocation_params")
        op = sc.OP_CHAT if chat else sc.OP_TEXT_COMPLETION
        if self._metrics_pending and not global_provider_unset() and metrics_enabled(None):
            self._metrics_pending = False
            self._metrics = GenAIMetrics(None, experimental=_config.latest_experimental())
        record = self._unsampled_child(run_id, parent_run_id, op)
        if record is not None:
            if self._metrics is not None:  # metrics count every call, sampled or not
                attrs = _mapping.llm_span(serialized, params, metadata, chat=chat)[1]
                record.metric_attrs = {k: attrs[k] for k in METRIC_START_KEYS if k in attrs}
            return
        span_name, attrs = _mapping.llm_span(serialized, params, metadata, chat=chat)
        metric_attrs = {k: attrs[k] for k in METRIC_START_KEYS if k in attrs} if self._metrics is not None else None
        record = self._start(run_id, parent_run_id, span_name, SpanKind.CLIENT, op, attrs, "llm", tags, metadata,
                             lambda: _mapping.llm_request_attributes(params, metadata))
        if record is None:
            return
        record.metric_attrs = metric_attrs
        if record.recording and self._capture:
            if chat:
                system, history = _messages.input_messages(inputs)
                if system:
                    self._set_json(record, sc.GEN_AI_SYSTEM_INSTRUCTIONS, system)
            else:
                history = _messages.prompt_messages(inputs)
            self._set_json(record, sc.GEN_AI_INPUT_MESSAGES, history)
            tools = _messages.tool_definitions(params)
            if tools:
                self._set_json(record, sc.GEN_AI_TOOL_DEFINITIONS, tools)

    def on_tool_start(
        self, serialized: dict[str, Any] | None, input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None,
        tags: list[str] | None = None, metadata: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            if self._unsampled_child(run_id, parent_run_id, sc.OP_EXECUTE_TOOL) is not None:
                return
            span_name, attrs = _mapping.tool_span(serialized, kwargs.get("name"), kwargs.get("tool_call_id"))
            record = self._start(
                run_id, parent_run_id, span_name, SpanKind.INTERNAL, sc.OP_EXECUTE_TOOL, attrs, "tool", tags, metadata
            )
            if record is None:
                return
            if self._metrics is not None and self._metrics.tool_duration is not None:
                record.metric_attrs = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
                                       sc.GEN_AI_TOOL_NAME: attrs[sc.GEN_AI_TOOL_NAME]}
            if record.recording and self._capture:
                self._set_json(record, sc.GEN_AI_TOOL_CALL_ARGUMENTS, _messages.tool_arguments(input_str, inputs))
        except Exception as exc:
            failed(self, "on_tool_start", exc)

    def on_retriever_start(
        self, serialized: dict[str, Any] | None, query: str, *, run_id: UUID, parent_run_id: UUID | None = None,
        tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        try:
            if self._unsampled_child(run_id, parent_run_id, sc.OP_RETRIEVAL) is not None:
                return
            span_name, attrs = _mapping.retriever_span(serialized, kwargs.get("name"), metadata)
            record = self._start(
                run_id, parent_run_id, span_name, SpanKind.CLIENT, sc.OP_RETRIEVAL, attrs, "retriever", tags, metadata
            )
            if record is not None and record.recording and self._capture and isinstance(query, str):
                value = text_attribute(query, self._policy)
                if value is not None:
                    record.span.set_attribute(sc.GEN_AI_RETRIEVAL_QUERY_TEXT, value)
        except Exception as exc:
            failed(self, "on_retriever_start", exc)

    # --- ends ---------------------------------------------------------------------------------------------------------
    def _finish(self, record: RunRecord) -> None:
        """Totals, status OK, restore the context, end the span: whatever happened before, the span ends once."""
        try:
            if record.metric_attrs is not None and record.op != sc.OP_CHAT and record.op != sc.OP_TEXT_COMPLETION:
                self._record_operation(record, None)
            if record.recording:
                if record.model_runs:
                    _own_attributes(record.span, {
                        sc.LC_USAGE_INPUT_TOKENS: min(record.input_tokens, _mapping.INT64_MAX),
                        sc.LC_USAGE_OUTPUT_TOKENS: min(record.output_tokens, _mapping.INT64_MAX),
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
        _own_attributes(record.span, _mapping.clip_attributes(attrs, self._max_len))
        if self._capture:
            self._set_json(record, sc.GEN_AI_OUTPUT_MESSAGES, _messages.output_messages(response))

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

    # --- errors -------------------------------------------------------------------------------------------------------
    def _error(self, error: BaseException, run_id: UUID) -> None:
        record = self._runs.pop(run_id)
        if record is None:
            return
        try:
            if record.metric_attrs is not None and not _mapping.is_control_flow(error):
                if record.op == sc.OP_CHAT or record.op == sc.OP_TEXT_COMPLETION:
                    self._record_model(record, {}, _mapping.error_type(error))
                else:
                    self._record_operation(record, _mapping.error_type(error))
            if record.recording:
                span = record.span
                if _mapping.is_control_flow(error):
                    span.add_event(sc.EVENT_INTERRUPT, {"exception.type": _mapping.error_type(error)})
                else:
                    span.set_attribute(sc.ERROR_TYPE, _mapping.error_type(error)[: self._max_len])
                    span.set_status(Status(StatusCode.ERROR, _mapping.error_description(error)))
                    _record_exception(span, error)
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

    # --- helpers ------------------------------------------------------------------------------------------------------
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

    def _set_json(self, record: RunRecord, key: str, value: Any) -> None:
        text = json_attribute(value, self._policy)
        if text is not None:
            record.span.set_attribute(key, text)

    def _evict(self, record: RunRecord) -> None:
        try:
            if record.recording:
                record.span.set_attribute(sc.LC_EVICTED, True)
                record.span.set_status(Status(StatusCode.ERROR, "run never ended; evicted to bound memory"))
        finally:
            _end(record)

    def _report_failure(self, callback: str, exc: Exception) -> None:
        key = (callback, type(exc).__name__)
        if key in self._failures:
            _logger.debug("otel-callbacks: %s failed again: %r", callback, exc)
            return
        if len(self._failures) < 1000:
            self._failures.add(key)
        _logger.warning(
            "otel-callbacks: %s failed (%s); the chain goes on, this kind of failure is logged once.",
            callback, type(exc).__name__, exc_info=exc,
        )
