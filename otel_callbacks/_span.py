"""A lean span for the OpenTelemetry SDK pipeline: the handler's spans without the SDK ``Span``'s fixed costs.

Why it exists: on the project's machines the SDK's ``Tracer.start_span`` + ``Span.end`` cost ~25 µs per span
before any attribute (sampler result objects, three locks, bounded containers) and its attribute path validates
every value again (~1.5 µs each) — more than everything else the handler does per run. The handler's spans have a
known shape: a handful of plain attributes it built and clipped itself, attribute-less chunk events, one status.

:class:`LeanTracer` starts spans as the SDK's ``Tracer`` does, with the provider's own parts: its sampler, id
generator, resource, span limits, instrumentation scope and span processors (``on_start``, ``on_end``).
:class:`LeanSpan` is an ``opentelemetry.trace.Span`` and a ``ReadableSpan``, so processors, exporters and user
code (``trace.get_current_span().set_attribute(...)`` inside a tool) see what the SDK would give them. Values
that are not plain (``str``, ``bool``, ``int``, ``float``, a tuple of ``str``) and any configured span limit go
through the SDK's own ``BoundedAttributes`` at end, so cleaning, truncation and dropping are the SDK's.

Taken only for the SDK's own ``Tracer`` with SDK-internal metrics off; any other tracer (a vendor's provider, the
API's no-op one) keeps the SDK's path (:func:`lean_tracer` returns ``None``).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Mapping
from time import time_ns
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_callbacks._sampling import sampled_children_follow_parent

_logger = logging.getLogger(__name__)
_PLAIN = frozenset((str, bool, int, float))
_UNSET = Status(StatusCode.UNSET)
_NO_ATTRIBUTES = BoundedAttributes(attributes=None, immutable=True)  # shared: immutable and empty
_END_LOCK = threading.Lock()  # end() must export once even if two threads end the same span
_RANDOM_FLAG: int = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)  # W3C trace context level 2; SDK >= 1.40


def _is_plain(value: Any) -> bool:
    if type(value) in _PLAIN:
        return True
    return type(value) is tuple and all(type(v) is str for v in value)


class _BareEvent(Event):
    """An SDK ``Event`` without attributes, made in one call instead of Event's two (one per streamed chunk)."""

    def __init__(self, name: str, timestamp: int) -> None:
        self._name = name
        self._timestamp = timestamp
        self._attributes = _NO_ATTRIBUTES


class LeanSpan(trace_api.Span, ReadableSpan):
    """A recording span: a plain dict of attributes and a list of events until it ends, then handed to the
    span processors as the ``ReadableSpan`` it already is (later changes are ignored, as on an SDK span)."""

    def __init__(
        self, tracer: LeanTracer, name: str, context: SpanContext, parent: SpanContext | None, kind: SpanKind,
        start_time: int,
    ) -> None:
        # The fields ReadableSpan's properties read; no super().__init__ (it would build a default Resource).
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._resource = tracer._tracer.resource
        self._instrumentation_scope = tracer.scope
        self._instrumentation_info = tracer.info
        self._attributes: Any = {}
        self._events: Any = []
        self._links: Any = ()
        self._status = _UNSET
        self._start_time: int | None = start_time
        self._end_time: int | None = None
        self._tracer = tracer
        self._plain = True  # every attribute value so far is plain: no cleaning needed at end

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end_time is not None:
            _logger.warning("Setting attribute on ended span.")
            return
        own = self._attributes
        for key, value in attributes.items():
            own[key] = value
            if self._plain and not _is_plain(value):
                self._plain = False

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is not None:
            _logger.warning("Setting attribute on ended span.")
            return
        self._attributes[key] = value
        if self._plain and not _is_plain(value):
            self._plain = False

    def add_chunk_event(self, name: str) -> None:
        """An event without attributes, stamped now: the handler's per-chunk event, at a fraction of add_event."""
        if self._end_time is None:
            self._events.append(_BareEvent(name, time_ns()))

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        if self._end_time is not None:
            _logger.warning("Tried calling add_event on an ended span.")
            return
        limits = self._tracer.limits
        bounded = BoundedAttributes(
            limits.max_event_attributes, attributes, immutable=True, max_value_len=limits.max_attribute_length
        )
        self._events.append(Event(name, bounded, timestamp))

    def add_link(self, context: SpanContext, attributes: Any = None) -> None:
        if not (context and (context.is_valid or attributes or context.trace_state)):
            return
        if self._end_time is not None:
            _logger.warning("Tried calling add_link on an ended span.")
            return
        limits = self._tracer.limits
        bounded = BoundedAttributes(
            limits.max_link_attributes, attributes, immutable=True, max_value_len=limits.max_attribute_length
        )
        self._links = [*self._links, Link(context, bounded)]

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # The SDK's rules: OK is final, UNSET is ignored.
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self, exception: BaseException, attributes: Any = None, timestamp: int | None = None, escaped: bool = False,
    ) -> None:
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        recorded: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            recorded.update(attributes)
        self.add_event("exception", recorded, timestamp)

    def __exit__(self, exc_type: Any, exc_val: BaseException | None, exc_tb: Any) -> None:
        if exc_val is not None and self.is_recording():
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        super().__exit__(exc_type, exc_val, exc_tb)

    def end(self, end_time: int | None = None) -> None:
        with _END_LOCK:
            if self._end_time is not None:
                ended = True
            else:
                ended = False
                self._end_time = end_time if end_time is not None else time_ns()
        if ended:
            _logger.warning("Calling end() on an ended span.")
            return
        limits = self._tracer.limits
        attrs = self._attributes
        if not self._plain or limits.max_span_attribute_length is not None or (
            limits.max_span_attributes is not None and len(attrs) > limits.max_span_attributes
        ):
            self._attributes = BoundedAttributes(
                limits.max_span_attributes, attrs, immutable=True, max_value_len=limits.max_span_attribute_length
            )
        if limits.max_events is not None and len(self._events) > limits.max_events:
            self._events = BoundedList.from_seq(limits.max_events, self._events)
        if limits.max_links is not None and len(self._links) > limits.max_links:
            self._links = BoundedList.from_seq(limits.max_links, self._links)
        self._tracer.finish(self)

    def __repr__(self) -> str:
        return f'LeanSpan(name="{self._name}", context={self._context})'


class LeanTracer:
    """Starts :class:`LeanSpan` s with an SDK ``Tracer``'s parts; see the module docstring."""

    def __init__(self, tracer: sdk_trace.Tracer) -> None:
        self._tracer = tracer
        self.sampler = tracer.sampler
        self.ids = tracer.id_generator
        self.processor = tracer.span_processor
        self.limits = tracer._span_limits
        self.scope = tracer._instrumentation_scope
        self.info = tracer.instrumentation_info
        self._on_ending = getattr(self.processor, "_on_ending", None)
        self._enabled = getattr(tracer, "_is_enabled", None)
        self.children_follow_parent = sampled_children_follow_parent(self.sampler)

    def start_span(
        self, name: str, context: Context | None, kind: SpanKind, attributes: dict[str, Any] | None,
    ) -> trace_api.Span:
        """``Tracer.start_span``, step for step, with a lean span for sampled runs."""
        if self._enabled is not None and not self._enabled():
            return self._tracer.start_span(name, context, kind, attributes)
        parent = trace_api.get_current_span(context).get_span_context()
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
        span_context = SpanContext(
            trace_id, self.ids.generate_span_id(), False, TraceFlags(flags), result.trace_state
        )
        if not result.decision.is_recording():
            return NonRecordingSpan(span_context)
        span = LeanSpan(self, name, span_context, parent, kind, time_ns())
        if result.attributes:
            span.set_attributes(result.attributes)
        self.processor.on_start(span, parent_context=context)
        return span

    def start_child(self, name: str, kind: SpanKind, parent: SpanContext, context: Context) -> LeanSpan:
        """A child of a sampled local span when the sampler keeps every such child (``children_follow_parent``):
        what ``start_span`` would decide, without asking the sampler."""
        span_context = SpanContext(
            parent.trace_id, self.ids.generate_span_id(), False, parent.trace_flags, parent.trace_state
        )
        span = LeanSpan(self, name, span_context, parent, kind, time_ns())
        self.processor.on_start(span, parent_context=context)
        return span

    def finish(self, span: LeanSpan) -> None:
        if self._on_ending is not None:
            self._on_ending(span)
        self.processor.on_end(span)


def lean_tracer(tracer: Any) -> LeanTracer | None:
    """A :class:`LeanTracer` for the SDK's own tracer as we know it; ``None`` keeps the SDK's path."""
    if type(tracer) is not sdk_trace.Tracer:
        return None
    metrics = getattr(tracer, "_tracer_metrics", None)
    if metrics is not None and type(metrics).__name__ != "NoOpTracerMetrics":
        return None  # the SDK's own span metrics are on: only its path records them
    try:
        return LeanTracer(tracer)
    except AttributeError:  # an SDK whose Tracer is laid out differently
        return None

