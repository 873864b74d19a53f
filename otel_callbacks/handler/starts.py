"""Start callbacks: map the run to a span name, kind and start attributes, book it, start its span, make it current.

A mixin of :class:`~otel_callbacks.OpenTelemetryCallbackHandler`. Every attribute known at start is given to the
span at start, so samplers and ``on_start`` processors see them (as the GenAI conventions ask for
sampling-relevant attributes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from opentelemetry.trace import SpanKind

from otel_callbacks import _config
from otel_callbacks import _semconv as sc
from otel_callbacks.emit.compat import global_meter_provider_unset
from otel_callbacks.emit.metrics import METRIC_START_KEYS, GenAIMetrics, metrics_enabled
from otel_callbacks.handler import graph as _graph
from otel_callbacks.handler.guard import failed
from otel_callbacks.mapping import latest as _sc_latest
from otel_callbacks.mapping import messages as _messages
from otel_callbacks.mapping import spans as _mapping
from otel_callbacks.mapping import values as _values
from otel_callbacks.mapping.content import json_attribute, text_attribute
from otel_callbacks.runs.context import enter, parent_context
from otel_callbacks.runs.registry import RunRecord
from otel_callbacks.runs.suppress import model_run_entries

if TYPE_CHECKING:
    from otel_callbacks.emit.content_events import ContentEvents
    from otel_callbacks.emit.emitter import Emitter
    from otel_callbacks.mapping.content import ContentPolicy
    from otel_callbacks.mapping.secrets import MetadataPolicy
    from otel_callbacks.runs.registry import RunRegistry


_EVENT_ATTR_PREFIXES = ("gen_ai.", "server.")


def _model_content(inputs: Any, chat: bool, params: Any) -> dict[str, Any]:
    """A model run's input content as the conventions shape it, for its content event."""
    content: dict[str, Any] = {}
    if chat:
        system, history = _messages.input_messages(inputs)
        if system:
            content[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = system
    else:
        history = _messages.prompt_messages(inputs)
    content[sc.GEN_AI_INPUT_MESSAGES] = history
    tools = _messages.tool_definitions(params)
    if tools:
        content[sc.GEN_AI_TOOL_DEFINITIONS] = tools
    return content


class StartCallbacks:
    """``on_chain_start``, ``on_chat_model_start``, ``on_llm_start``, ``on_tool_start``, ``on_retriever_start``."""

    _runs: RunRegistry
    _emit: Emitter
    _policy: ContentPolicy
    _capture: bool
    _max_len: int
    _max_metadata: int
    _metadata_policy: MetadataPolicy | None
    _metrics: GenAIMetrics | None
    _metrics_pending: bool
    _tracer_pending: bool
    _children_follow_unsampled: bool
    _suppress_providers: bool
    _graph_aware: bool
    _latest: bool
    _content_events: ContentEvents | None
    raise_error: bool

    if TYPE_CHECKING:
        def _rebind_if_installed(self) -> None: ...
        def _evict(self, record: RunRecord) -> None: ...

    def _start(
        self, run_id: UUID, parent_run_id: UUID | None, name: str, kind: SpanKind, op: str,
        attrs: dict[str, Any], run_type: str, tags: Any, metadata: Any,
        extra: Callable[[], dict[str, Any]] | None = None, context_entries: dict[str, object] | None = None,
    ) -> RunRecord | None:
        """Start the span with every start attribute, register the run, make its span current. ``extra`` adds
        attributes computed only for spans that get them (request parameters); ``context_entries`` go into the
        context the run's own code sees (provider suppression keys)."""
        if self._tracer_pending:
            self._rebind_if_installed()
        runs = self._runs
        if runs.claimed(run_id):  # a second start, or another handler on this provider already traces this run
            return None
        parent = runs.lookup(parent_run_id)
        context = parent_context(parent, metadata)
        max_len = self._max_len
        if len(name) > max_len:
            name = name[:max_len]
        if extra is not None:
            attrs.update(extra())
        _values.clip_attributes(attrs, max_len)  # names and parameters come from user code
        attrs.update(_values.run_attributes(run_id, run_type, tags, metadata, max_len, self._max_metadata,
                                            redact=self._policy.redact, metadata_policy=self._metadata_policy))
        span = self._emit.start(name, kind, attrs, parent.span if parent is not None else None, context)
        record = RunRecord(span, parent, op, time.monotonic_ns())
        # Registered before anything else can fail, so that the run's end (or eviction) always ends the span.
        for old in runs.add(run_id, record):
            self._evict(old)
        enter(record, context_entries)
        return record

    def _unsampled_child(self, run_id: UUID, parent_run_id: UUID | None, op: str) -> RunRecord | None:
        """Register a child of an unsampled run without any span work, when the sampler would drop it anyway.

        Production runs sample 1-10 % of traces; this keeps the other 90-99 % nearly free. The child shares the
        parent's non-recording span, which is already current in the context its code runs in.
        """
        if not self._children_follow_unsampled or parent_run_id is None:
            return None
        runs = self._runs
        parent = runs.lookup(parent_run_id)
        if parent is None or parent.recording or runs.claimed(run_id):
            return None
        record = RunRecord(parent.span, parent, op, time.monotonic_ns())
        record.borrowed = True
        for old in runs.add(run_id, record):
            self._evict(old)
        return record

    def on_chain_start(
        self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
        tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        try:
            if not self._graph_aware:
                self._graph_aware = _graph.adopt(self)  # before the graph collects its lifecycle handlers
            if self._unsampled_child(run_id, parent_run_id, "chain") is not None:
                return
            name = _mapping.serialized_name(serialized, kwargs.get("name"))
            span_name, kind, attrs = _mapping.chain_span(name, metadata, tags, serialized,
                                                         root=parent_run_id is None)
            op = attrs.get(sc.GEN_AI_OPERATION_NAME, "chain")
            run_type = kwargs.get("run_type")
            if not isinstance(run_type, str) or not run_type:
                run_type = "chain"
            agent_name = attrs.get(sc.GEN_AI_AGENT_NAME)
            record = self._start(run_id, parent_run_id, span_name, kind, op, attrs, run_type, tags, metadata)
            if record is None:
                return
            if parent_run_id is None and isinstance(metadata, dict):
                thread = metadata.get("thread_id")
                if isinstance(thread, str) and thread:
                    record.thread_id = thread
                    if _graph.is_resume(inputs):
                        _graph.link_resumed(record, None, self._latest)
            if op == sc.OP_INVOKE_AGENT and self._metrics is not None and self._metrics.agent_duration is not None:
                record.metric_attrs = {sc.GEN_AI_OPERATION_NAME: op}
                if agent_name is not None:
                    record.metric_attrs[sc.GEN_AI_AGENT_NAME] = agent_name
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
        if self._metrics_pending and not global_meter_provider_unset() and metrics_enabled(None):
            self._metrics_pending = False
            self._metrics = GenAIMetrics(None, experimental=_config.latest_experimental())
        # Provider suppression needs the run's own context, which an unsampled child borrowing its parent's has not.
        suppress = model_run_entries() if self._suppress_providers else None
        record = self._unsampled_child(run_id, parent_run_id, op) if suppress is None else None
        if record is not None:
            if self._metrics is not None:  # metrics count every call, sampled or not
                attrs = _mapping.llm_span(serialized, params, metadata, chat=chat)[1]
                record.metric_attrs = {k: attrs[k] for k in METRIC_START_KEYS if k in attrs}
            return
        span_name, attrs = _mapping.llm_span(serialized, params, metadata, chat=chat)
        metric_attrs = {k: attrs[k] for k in METRIC_START_KEYS if k in attrs} if self._metrics is not None else None
        record = self._start(run_id, parent_run_id, span_name, SpanKind.CLIENT, op, attrs, "llm", tags, metadata,
                             self._request_attributes(params, metadata), suppress)
        if record is None:
            return
        record.metric_attrs = metric_attrs
        if record.recording and self._content_events is not None:
            record.event_attrs = {k: v for k, v in attrs.items() if k.startswith(_EVENT_ATTR_PREFIXES)}
            record.content = _model_content(inputs, chat, params)
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

    def _request_attributes(self, params: Any, metadata: Any) -> Callable[[], dict[str, Any]]:
        if self._latest:
            return lambda: _sc_latest.model_attributes(_mapping.llm_request_attributes(params, metadata))
        return lambda: _mapping.llm_request_attributes(params, metadata)

    def on_tool_start(
        self, serialized: dict[str, Any] | None, input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None,
        tags: list[str] | None = None, metadata: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            if self._unsampled_child(run_id, parent_run_id, sc.OP_EXECUTE_TOOL) is not None:
                return
            span_name, attrs = _mapping.tool_span(serialized, kwargs.get("name"), kwargs.get("tool_call_id"))
            tool_name = attrs[sc.GEN_AI_TOOL_NAME]
            record = self._start(
                run_id, parent_run_id, span_name, SpanKind.INTERNAL, sc.OP_EXECUTE_TOOL, attrs, "tool", tags, metadata
            )
            if record is None:
                return
            if self._metrics is not None and self._metrics.tool_duration is not None:
                record.metric_attrs = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: tool_name}
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

    def _set_json(self, record: RunRecord, key: str, value: Any) -> None:
        text = json_attribute(value, self._policy)
        if text is not None:
            record.span.set_attribute(key, text)
