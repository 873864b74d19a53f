"""The fast path: lean spans started with an SDK ``Tracer``'s own parts, step for step as ``Tracer.start_span``.

Why: the SDK's ``Tracer.start_span`` + ``Span.end`` cost more per span than everything else the handler does per run
(sampler result objects, three locks, bounded containers, a second validation of attributes the handler built and
checked itself). :class:`LeanTracer` uses the provider's sampler, id generator, resource, span limits,
instrumentation scope, tracer configurator, span metrics and span processors (``on_start``, ``_on_ending``,
``on_end``); the spans are :class:`~otel_callbacks.emit.lean_span.LeanSpan`.

Taken only through :func:`~otel_callbacks.emit.emitter.emitter_for`: the SDK's own ``Tracer`` on an SDK version the
fast path is proven on. What it reads beyond the SDK's public surface comes from ``compat``.
"""

from __future__ import annotations

from collections.abc import Callable
from time import time_ns
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

from otel_callbacks.emit import compat
from otel_callbacks.emit.lean_span import LeanSpan, limit
from otel_callbacks.emit.sampling import children_follow_parent, passes_attributes, sampled_children_follow_parent

_RANDOM_FLAG: int = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)  # W3C trace context level 2; SDK >= 1.40


class LeanTracer:
    """Starts :class:`LeanSpan` s with an SDK ``Tracer``'s parts; see the module docstring."""

    def __init__(self, tracer: Any) -> None:
        parts = compat.tracer_parts(tracer)
        if parts is None:
            raise AttributeError("not the SDK's Tracer")
        self._tracer = tracer
        self.resource = tracer.resource
        self.sampler = tracer.sampler
        self.ids = tracer.id_generator
        self.processor = tracer.span_processor
        self.limits = parts.limits
        self.scope = parts.scope
        self.info = tracer.instrumentation_info
        self._enabled = parts.enabled
        self._span_metrics = parts.tracer_metrics
        limits = self.limits
        self.max_attributes = limit(limits.max_span_attributes)
        self.max_events = limit(limits.max_events)
        self.max_links = limit(limits.max_links)
        self.lengths_bounded = limits.max_span_attribute_length is not None
        self.children_follow_parent = sampled_children_follow_parent(self.sampler)
        self._sampler_passes_attributes = passes_attributes(self.sampler)
        self._hooks_of: object = None
        self._refresh_hooks()

    def _refresh_hooks(self) -> None:
        """Which processor hooks to call: each processor's ``on_end``, and ``on_start`` / ``_on_ending`` only where
        a processor overrides the SDK's no-op (BatchSpanProcessor does not). Redone when processors are added."""
        processor = self.processor
        procs = compat.span_processors(processor)
        self._hooks_of = getattr(processor, "_span_processors", None)
        if procs is None:
            ending = compat.on_ending_hook(processor)
            self._starts: tuple[Any, ...] = (processor.on_start,)
            self._endings: tuple[Any, ...] = (ending,) if ending is not None else ()
            self._ends: tuple[Any, ...] = (processor.on_end,)
            return
        base_start = compat.sdk_trace_module().SpanProcessor.on_start
        self._starts = tuple(p.on_start for p in procs if type(p).on_start is not base_start)
        self._endings = tuple(hook for hook in map(compat.on_ending_hook, procs) if hook is not None)
        self._ends = tuple(p.on_end for p in procs)

    def _on_start(self, span: LeanSpan, context: Context | None) -> None:
        if getattr(self.processor, "_span_processors", None) is not self._hooks_of:
            self._refresh_hooks()
        for on_start in self._starts:
            on_start(span, parent_context=context)

    def start_span(self, name: str, context: Context | None, kind: SpanKind,
                   attributes: dict[str, Any] | None) -> Span:
        """``Tracer.start_span``, step for step, with a lean span for sampled runs."""
        if self._enabled is not None and not self._enabled():
            return self._tracer.start_span(name, context, kind, attributes)  # type: ignore[no-any-return]
        parent: SpanContext | None = trace_api.get_current_span(context).get_span_context()
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = self.ids.generate_trace_id()
            random_id = bool(_RANDOM_FLAG) and self.ids.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_id = bool(parent.trace_flags & _RANDOM_FLAG)
        result = self.sampler.should_sample(context, trace_id, name, kind, attributes, ())
        flags = TraceFlags.SAMPLED if result.decision.is_sampled() else TraceFlags.DEFAULT
        if random_id:
            flags |= _RANDOM_FLAG
        span_context = SpanContext(trace_id, self.ids.generate_span_id(), False, TraceFlags(flags),
                                   result.trace_state)
        end_metrics = self._record_start(parent, result.decision)
        if not result.decision.is_recording():
            return NonRecordingSpan(span_context)
        span = LeanSpan(self, name, span_context, parent, kind, time_ns())
        if attributes is not None:
            span.own_attributes(attributes)
        if not self._sampler_passes_attributes and result.attributes:
            span.set_attributes(result.attributes)  # what a sampler we do not know added, checked
        span.end_metrics = end_metrics
        self._on_start(span, context)
        return span

    def start_child(self, name: str, kind: SpanKind, attributes: dict[str, Any], parent: SpanContext,
                    context: Context) -> LeanSpan:
        """A child of a sampled local span when the sampler keeps every such child unchanged
        (``children_follow_parent``): what ``start_span`` would decide, without asking the sampler."""
        span = LeanSpan(self, name, compat.child_span_context(parent, self.ids.generate_span_id()), parent, kind,
                        time_ns())
        span.own_attributes(attributes)
        span.end_metrics = self._record_start(parent, Decision.RECORD_AND_SAMPLE)
        self._on_start(span, context)
        return span

    def _record_start(self, parent: SpanContext | None, decision: Decision) -> Callable[[], None] | None:
        metrics = self._span_metrics
        return None if metrics is None else metrics.start_span(parent, decision)  # type: ignore[no-any-return]

    def finish(self, span: LeanSpan) -> None:
        if span.end_metrics is not None:
            span.end_metrics()
        for on_ending in self._endings:
            on_ending(span)
        for on_end in self._ends:
            on_end(span)


class FastEmitter:
    """The emitter of lean spans (see :class:`~otel_callbacks.emit.emitter.Emitter`)."""

    name = "fast"

    def __init__(self, tracer: Any) -> None:
        self._lean = lean = LeanTracer(tracer)
        self.children_follow_unsampled = children_follow_parent(lean.sampler)

    def start(self, name: str, kind: SpanKind, attributes: dict[str, Any], parent: Span | None,
              context: Context | None) -> Span:
        lean = self._lean
        if parent is not None and context is not None and lean.children_follow_parent and parent.is_recording():
            return lean.start_child(name, kind, attributes, parent.get_span_context(), context)
        return lean.start_span(name, context, kind, attributes)

    def set_attributes(self, span: Span, attributes: dict[str, Any]) -> None:
        if type(span) is LeanSpan:
            span.own_attributes(attributes)
        else:
            span.set_attributes(attributes)

    def chunk_sink(self, span: Span, name: str) -> Callable[[int], object] | None:
        if type(span) is LeanSpan:
            log = span.chunk_log(name)
            return None if log is None else log.append
        if not span.is_recording():
            return None
        return lambda timestamp: span.add_event(name, None, timestamp)


def lean_tracer(tracer: Any) -> LeanTracer | None:
    """A :class:`LeanTracer` for the SDK's own tracer as we know it; ``None`` for any other tracer."""
    try:
        return LeanTracer(tracer)
    except AttributeError:
        return None
