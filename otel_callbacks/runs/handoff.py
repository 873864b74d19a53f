"""The trace hand-off a run's metadata carries across services: a LangGraph server's run joins its caller's trace.

A traced client (``handler.propagate``) adds the W3C trace context of the run that calls a LangGraph server to the
metadata of the run it creates there, under :data:`HANDOFF_KEY`: ``{"traceparent": ..., "tracestate": ...,
"baggage": ...}`` (the fields of the propagators the client configured). The server hands run metadata to every
run's ``on_chain_start``, so the graph's root run there finds it without any web-server middleware, and is started
under the caller's span when nothing else is current: with langgraph-api's own hand-off (``OTEL_ENABLED`` and an
HTTP server span) its ``worker.stream_run`` span is current there and stays the parent. Either way the caller's
baggage is current in the run's code (langgraph-api's own hand-off carries ``traceparent`` and ``tracestate`` only).

The carrier is read with the propagators the server configured (``OTEL_PROPAGATORS``), as an incoming request's
headers would be. Child runs inherit the metadata, but only a root run reads it (``runs.context.parent_context``).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.trace import get_current_span

HANDOFF_KEY = "otel_trace_context"
"""The run metadata key of the hand-off (left out of ``langchain.metadata.*`` attributes: it is not the run's)."""

_MAX_VALUE = 8192  # W3C caps a header line far below this; a larger value is not a trace context


def carrier_of(metadata: object) -> dict[str, str] | None:
    """The hand-off carrier in a run's metadata, if it holds a well-formed one (string keys and values only)."""
    if not isinstance(metadata, Mapping):
        return None
    value = metadata.get(HANDOFF_KEY)
    if not isinstance(value, Mapping) or not value:
        return None
    carrier: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(key, str) and isinstance(item, str) and len(item) <= _MAX_VALUE:
            carrier[key] = item
    return carrier or None


def handed_off(metadata: object, ambient: Context) -> tuple[Context | None, Context | None]:
    """For a root run: the caller's context to start its span under (``None``: stay under the ambient context),
    and the caller's context whose other entries (baggage) the run's code should see (``None``: nothing).

    The ambient context wins whenever it has a valid span (the server's own instrumentation already joined the
    trace, or chose another parent on purpose); the caller's baggage then applies only if that span is in the
    caller's trace. A hand-off without a valid trace context still hands over its baggage where nothing is current.
    """
    carrier = carrier_of(metadata)
    if carrier is None:
        return None, None
    # Imported here: loading the propagators (entry points) is left to the first hand-off.
    from opentelemetry.propagate import extract

    context = extract(carrier, context=Context())
    caller = get_current_span(context).get_span_context()
    current = get_current_span(ambient).get_span_context()
    if current.is_valid:
        return None, context if caller.is_valid and caller.trace_id == current.trace_id else None
    return (context if caller.is_valid else None), context
