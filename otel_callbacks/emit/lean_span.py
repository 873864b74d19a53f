"""A lean span for the OpenTelemetry SDK pipeline: the handler's spans without the SDK ``Span``'s fixed costs.

The handler's spans have a known shape: a handful of plain attributes it built and clipped itself, attribute-less
chunk events, one status. :class:`LeanSpan` is an ``opentelemetry.trace.Span`` and a ``ReadableSpan``, so
processors, exporters and user code (``trace.get_current_span().set_attribute(...)`` inside a tool) see what the
SDK would give them. Keys and values set through the Span API that are not plain (``str`` keys; ``str``, ``bool``,
``int``, ``float`` or a tuple of ``str`` values), and any configured span limit, go through the SDK's own
``BoundedAttributes`` at end, so cleaning, truncation and dropping are the SDK's; the handler's own attributes,
already checked by ``mapping``, are taken as they are. Streamed chunk events are kept as timestamps until an
exporter reads them.

Started only by ``emit.fast.LeanTracer`` (see there for when the fast path is taken).
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import threading
import traceback
from array import array
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

from otel_callbacks.emit.lean_events import NO_ATTRIBUTES, ChunkEvents, bare_events
from otel_callbacks.emit.status import OK

if TYPE_CHECKING:
    from otel_callbacks.emit.fast import LeanTracer

_logger = logging.getLogger(__name__)
_PLAIN = frozenset((str, bool, int, float))
_UNSET = Status(StatusCode.UNSET)
_END_LOCK = threading.Lock()  # end() must export once even if two threads end the same span


def _new_end_lock_after_fork() -> None:
    # A fork while another thread held the lock would leave it held forever in the child: no span would end.
    global _END_LOCK
    _END_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_end_lock_after_fork)


def limit(value: int | None) -> int:
    """A span limit as a number: ``None`` (unlimited) is ``sys.maxsize``."""
    return sys.maxsize if value is None else value


def _is_plain(value: Any) -> bool:
    if type(value) in _PLAIN:
        return True
    return type(value) is tuple and all(type(v) is str for v in value)


class LeanSpan(trace_api.Span, ReadableSpan):
    """A recording span: a plain dict of attributes and a list of events until it ends, then handed to the
    span processors as the ``ReadableSpan`` it already is (later changes are ignored, as on an SDK span)."""

    def __init__(
        self, tracer: LeanTracer, name: str, context: SpanContext, parent: SpanContext | None, kind: SpanKind,
        start_time: int,
    ) -> None:
        # The fields ReadableSpan's properties read; no super().__init__ (it would build a default Resource). The
        # others start as the class-level defaults below, replaced (never mutated) on first change.
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._resource = tracer.resource
        self._instrumentation_scope = tracer.scope
        self._instrumentation_info = tracer.info
        self._start_time: int | None = start_time
        self._tracer = tracer

    _attributes: Any = NO_ATTRIBUTES
    _events: Any = ()
    _chunk_times: array[int] | None = None  # chunk events not yet made into Event objects
    _chunk_name = ""
    _links: Any = ()
    _status = _UNSET
    _end_time: int | None = None
    _plain = True  # every attribute key and value so far is plain: no cleaning needed at end
    end_metrics: Any = None  # the SDK's span metrics' end call, when they are on (LeanTracer)

    def _own_events(self) -> list[Event]:
        events = self._events
        if type(events) is not list:
            self._events = events = list(events)
        return events

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]  # ReadableSpan types it optional; ours always has one

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end_time is not None:
            _logger.warning("Setting attribute on ended span.")
            return
        own = self._attributes
        if own is NO_ATTRIBUTES:
            self._attributes = own = {}
        plain = self._plain
        for key, value in attributes.items():
            own[key] = value
            # Anything not plain, keys included, goes through the SDK's BoundedAttributes at end, which drops
            # empty and non-str keys as an SDK span does (exporters would choke on them).
            if plain and ((type(value) not in _PLAIN and not _is_plain(value)) or type(key) is not str or not key):
                plain = self._plain = False

    def own_attributes(self, attributes: dict[str, Any]) -> None:
        """Attributes the handler built and checked itself (``_mapping``): taken without a second check, and the
        dict itself becomes the span's when it has none yet. Not for values from elsewhere: use set_attributes."""
        if self._end_time is not None:
            return
        if self._attributes:
            self._attributes.update(attributes)
        else:
            self._attributes = attributes

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is not None:
            _logger.warning("Setting attribute on ended span.")
            return
        if self._attributes is NO_ATTRIBUTES:
            self._attributes = {}
        self._attributes[key] = value
        if self._plain and (not _is_plain(value) or type(key) is not str or not key):
            self._plain = False

    def chunk_log(self, name: str) -> array[int] | None:
        """Where attribute-less ``name`` events go while the span is open: append ``time_ns()`` stamps to it.

        Only the timestamps are kept (ints in an array: no object per chunk for the garbage collector to track
        while the span waits in the export queue); the Event objects are made when an exporter reads them
        (:class:`~otel_callbacks.emit.lean_events.ChunkEvents`). The array stays the span's until it ends (``None``
        once ended).
        """
        if self._end_time is not None:
            return None
        times = self._chunk_times
        if times is None or name != self._chunk_name:
            self._flush_chunks()
            self._chunk_name = name
            self._chunk_times = times = array("q")
        return times

    def _flush_chunks(self) -> None:
        # Before any other event is added or read, so that events stay in the order they were added. The array is
        # emptied, not replaced: a caller may hold it (chunk_log).
        times = self._chunk_times
        if times:
            name = self._chunk_name
            self._own_events().extend(bare_events(name, times))
            del times[:]

    @property
    def events(self) -> Sequence[Event]:
        if self._end_time is not None:
            return tuple(self._events)
        self._flush_chunks()  # a processor or user code reading a live span: what an SDK span would show
        events, kept = self._events, self._tracer.max_events
        return tuple(events[len(events) - kept:]) if kept < len(events) else tuple(events)

    @property
    def dropped_events(self) -> int:
        events = self._events
        return events.dropped if isinstance(events, BoundedList | ChunkEvents) else 0

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        if self._end_time is not None:
            _logger.warning("Tried calling add_event on an ended span.")
            return
        self._flush_chunks()
        self._own_events().append(Event(name, self._bounded(self._tracer.limits.max_event_attributes, attributes),
                                        timestamp))

    def add_link(self, context: SpanContext, attributes: Any = None) -> None:
        if not (context and (context.is_valid or attributes or context.trace_state)):
            return
        if self._end_time is not None:
            _logger.warning("Tried calling add_link on an ended span.")
            return
        self._links = [*self._links, Link(context, self._bounded(self._tracer.limits.max_link_attributes, attributes))]

    def _bounded(self, max_count: int | None, attributes: Any) -> BoundedAttributes:
        """An event's or link's attributes, cleaned and limited as the SDK does them."""
        return BoundedAttributes(max_count, attributes, immutable=True,
                                 max_value_len=self._tracer.limits.max_attribute_length)

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if status is OK and self._status is _UNSET and self._end_time is None:  # every run that ends well
            self._status = status
            return
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
        tracer = self._tracer
        if not self._plain or tracer.lengths_bounded or len(self._attributes) > tracer.max_attributes:
            limits = tracer.limits
            self._attributes = BoundedAttributes(limits.max_span_attributes, self._attributes, immutable=True,
                                                 max_value_len=limits.max_span_attribute_length)
        if self._chunk_times:  # a copy: appends after the end must not reach the exported span
            self._events = ChunkEvents(self._events, self._chunk_name, array("q", self._chunk_times), tracer.max_events)
        elif len(self._events) > tracer.max_events:
            self._events = BoundedList.from_seq(tracer.limits.max_events, self._events)
        self._chunk_times = None
        if len(self._links) > tracer.max_links:
            self._links = BoundedList.from_seq(tracer.limits.max_links, self._links)
        tracer.finish(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> ReadableSpan:
        # A snapshot as the SDK hands processors: a lean span holds its tracer, whose processors hold locks.
        return ReadableSpan(
            name=self._name, context=self._context, parent=self._parent, resource=self._resource,
            attributes=copy.deepcopy(dict(self.attributes or {}), memo), events=copy.deepcopy(tuple(self.events), memo),
            links=copy.deepcopy(tuple(self.links), memo), kind=self._kind, status=self._status,
            start_time=self._start_time, end_time=self._end_time, instrumentation_scope=self._instrumentation_scope,
        )

    def __repr__(self) -> str:
        return f'LeanSpan(name="{self._name}", context={self._context})'
