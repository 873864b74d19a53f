"""The emission seam: how the callbacks start spans, give them attributes and turn chunks into events.

One :class:`Emitter` per tracer, chosen once by :func:`emitter_for`: :class:`SdkEmitter` talks to any tracer through
the OpenTelemetry API (``start_span`` with the run's attributes, ``set_attributes``, ``add_event``);
``emit.fast.FastEmitter`` makes lean spans for the SDK's own tracer, on the SDK versions CI proves it on. Both give
processors and exporters the same spans (``tests/test_lean_span.py`` exports the same workloads both ways and
compares every field); the callbacks never know which one they talk to.

"How does a chunk become an event?" — :meth:`Emitter.chunk_sink`: a function taking the chunk's timestamp.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from otel_callbacks.emit import compat

_logger = logging.getLogger(__name__)


class Emitter(Protocol):
    """How spans are made; see the module docstring."""

    name: str
    """``"sdk"`` or ``"fast"``: which path this tracer's spans take."""

    children_follow_unsampled: bool
    """Whether the sampler drops every child of an unsampled local parent (the SDK's built-ins do): then an
    unsampled run's children need no span of their own."""

    def start(self, name: str, kind: SpanKind, attributes: dict[str, Any], parent: Span | None,
              context: Context | None) -> Span:
        """Start a span with all its start ``attributes`` (samplers and ``on_start`` processors see them).

        ``parent`` is the parent run's span and ``context`` its child context; a root run passes ``None`` for both
        and the ambient context is the parent. ``attributes`` were built by ``mapping`` and become the span's.
        """
        ...

    def set_attributes(self, span: Span, attributes: dict[str, Any]) -> None:
        """Attributes built and checked by ``mapping``; the dict may become the span's own."""
        ...

    def chunk_sink(self, span: Span, name: str) -> Callable[[int], object] | None:
        """Where attribute-less ``name`` events of a recording span go: call it with each event's ``time_ns()``.

        ``None`` once the span has ended.
        """
        ...


class SdkEmitter:
    """The OpenTelemetry API's path: works with any TracerProvider."""

    name = "sdk"

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer
        self.children_follow_unsampled = _children_follow_unsampled(tracer)
        # A span's attributes are what its sampler returns; a sampler we do not know may return fewer than it was
        # given, so they are set again after start (a cost only such samplers pay).
        self._set_again = not _sampler_passes_attributes(tracer)

    def start(self, name: str, kind: SpanKind, attributes: dict[str, Any], parent: Span | None,
              context: Context | None) -> Span:
        span: Span = self._tracer.start_span(name, context, kind, attributes)
        if self._set_again and span.is_recording():
            span.set_attributes(attributes)
        return span

    def set_attributes(self, span: Span, attributes: dict[str, Any]) -> None:
        span.set_attributes(attributes)

    def chunk_sink(self, span: Span, name: str) -> Callable[[int], object] | None:
        if not span.is_recording():
            return None
        return partial(span.add_event, name, None)


def _children_follow_unsampled(tracer: Any) -> bool:
    sampler = getattr(tracer, "sampler", None)
    if sampler is None or compat.sdk_trace_module() is None:
        return False
    from otel_callbacks.emit.sampling import children_follow_parent

    return children_follow_parent(sampler)


def _sampler_passes_attributes(tracer: Any) -> bool:
    sampler = getattr(tracer, "sampler", None)
    if sampler is None or compat.tracer_parts(tracer) is None:
        return False
    from otel_callbacks.emit.sampling import passes_attributes

    return passes_attributes(sampler)


def emitter_for(tracer: Any, *, fast: bool) -> Emitter:
    """The emitter for ``tracer``: lean spans when ``fast`` is asked for, the tracer is the SDK's own and the SDK
    is a version the fast path is proven on; the SDK's path otherwise (one debug log says why)."""
    if fast:
        if compat.tracer_parts(tracer) is None:
            _logger.debug("otel-callbacks: %s is not the SDK's Tracer; spans take the API path", type(tracer))
        elif not compat.fast_path_proven():
            _logger.debug("otel-callbacks: opentelemetry-sdk %s is outside the range the fast path is proven on "
                          "(%s..%s); spans take the SDK's own path", compat.sdk_version(),
                          compat.FAST_PATH_SDK_MIN, compat.FAST_PATH_SDK_MAX)
        else:
            from otel_callbacks.emit.fast import FastEmitter

            try:
                return FastEmitter(tracer)
            except AttributeError as exc:  # an SDK whose Tracer is laid out differently
                _logger.debug("otel-callbacks: fast path unavailable (%r); spans take the SDK's own path", exc)
    return SdkEmitter(tracer)
