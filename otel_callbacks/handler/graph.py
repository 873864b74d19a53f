"""LangGraph interrupts and resumes: a paused run reads as paused, and the run that resumes it links back to it.

A mixin of :class:`~otel_callbacks.OpenTelemetryCallbackHandler`. An ``interrupt()`` raises ``GraphInterrupt`` out of
the node (or ToolNode tool, or subgraph) that called it: control flow, never an error. That run, and every run above
it up to the graph's root, is marked when it ends: ``langchain.graph.interrupted`` and a ``langchain.graph.interrupt``
event with the interrupt ids (and the checkpoint id where LangGraph says it). The root is remembered by thread, so a
``Command(resume=...)`` on that thread starts a root span linked to the interrupted one (in-process: see README).

LangGraph (>= 1.1.8) also calls ``on_interrupt`` / ``on_resume`` on handlers that are ``GraphCallbackHandler``
instances, with the checkpoint id. Importing ``langgraph.callbacks`` costs more than the rest of the handler, so the
class is not a subclass of it: a handler becomes one (:func:`adopt`) the first time it sees a chain start with
LangGraph loaded, before the graph collects its lifecycle handlers. Without them (a handler given only through
``instrument()`` is not in the graph's own callbacks), interrupts are still marked from the ``GraphInterrupt`` itself.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from otel_callbacks import _semconv as sc
from otel_callbacks.handler.guard import guarded
from otel_callbacks.mapping.text import safe_text

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

    from otel_callbacks.runs.registry import RunRecord, RunRegistry

_MAX_IDS = 64  # interrupt ids recorded per run
_MAX_PAUSED = 1024  # interrupted roots remembered for a resume, oldest forgotten first
_GRAPH_CLASSES: dict[type, type] = {}


class _Paused:
    __slots__ = ("checkpoint_id", "context", "ids")

    def __init__(self, context: SpanContext, checkpoint_id: str | None, ids: tuple[str, ...]) -> None:
        self.context = context
        self.checkpoint_id = checkpoint_id
        self.ids = ids


# Process-wide, not per handler: apps often make a handler per request, and the resume comes in another request.
_PAUSED: OrderedDict[str, _Paused] = OrderedDict()  # thread id -> its interrupted root
_PAUSED_LOCK = threading.Lock()


def adopt(handler: Any) -> bool:
    """Make ``handler`` a LangGraph ``GraphCallbackHandler`` once LangGraph is loaded; whether it now is one."""
    module = sys.modules.get("langgraph.callbacks")
    base = getattr(module, "GraphCallbackHandler", None)
    if base is None:
        return False
    cls = type(handler)
    if not issubclass(cls, base):
        graph_cls = _GRAPH_CLASSES.get(cls)
        if graph_cls is None:
            # Same attributes and methods: only isinstance() changes. Made once per handler class.
            graph_cls = _GRAPH_CLASSES[cls] = type(cls.__name__, (cls, base), {"__module__": cls.__module__})
        handler.__class__ = graph_cls
    return True


def interrupt_ids(error: BaseException) -> tuple[str, ...] | None:
    """The ids of a ``GraphInterrupt``'s interrupts (``()`` if it names none), ``None`` for any other exception."""
    if not any(cls.__name__ == "GraphInterrupt" for cls in type(error).__mro__):
        return None
    found = error.args[0] if error.args else ()
    return _ids(found if isinstance(found, (list, tuple)) else ())


def _ids(interrupts: Any) -> tuple[str, ...]:
    ids = []
    for item in interrupts[:_MAX_IDS]:
        value = getattr(item, "id", None)
        if isinstance(value, str) and value:
            ids.append(safe_text(value[:128]))
    return tuple(ids)


def is_resume(inputs: Any) -> bool:
    """A graph's input is ``Command(resume=...)``: it continues an interrupted run."""
    return type(inputs).__name__ == "Command" and getattr(inputs, "resume", None) is not None


def mark_interrupted(record: RunRecord, ids: tuple[str, ...], checkpoint_id: str | None = None) -> None:
    """Note the interrupt on the run and every run above it (each says so when it ends)."""
    run: RunRecord | None = record
    while run is not None:
        info = run.interrupt
        if info is None:
            info = run.interrupt = {"ids": [], "checkpoint_id": None}
        for i in ids:
            if i not in info["ids"] and len(info["ids"]) < _MAX_IDS:
                info["ids"].append(i)
        if checkpoint_id is not None and run.parent is None:
            info["checkpoint_id"] = checkpoint_id
        run = run.parent


def end_interrupted(record: RunRecord, latest: bool) -> None:
    """The marks of an interrupted run, at its end; for a root, remembered for the resume."""
    info = record.interrupt
    if info is None:
        return
    ids = tuple(info["ids"])
    checkpoint_id = info["checkpoint_id"]
    if record.recording:
        span = record.span
        attrs: dict[str, Any] = {sc.LC_GRAPH_INTERRUPT_IDS: ids}
        if checkpoint_id:
            attrs[sc.LC_GRAPH_CHECKPOINT_ID] = checkpoint_id
        span.set_attribute(sc.LC_GRAPH_INTERRUPTED, True)
        span.add_event(sc.EVENT_INTERRUPT, attrs)
        if latest and record.parent is None:
            for pause_id in ids or ("",):
                event: dict[str, Any] = {sc.GEN_AI_AGENT_PAUSE_REASON: sc.PAUSE_REASON_INTERRUPT}
                if pause_id:
                    event[sc.GEN_AI_AGENT_PAUSE_ID] = pause_id
                if checkpoint_id:
                    event[sc.GEN_AI_AGENT_CHECKPOINT_ID] = checkpoint_id
                span.add_event(sc.EVENT_AGENT_PAUSED, event)
    thread = record.thread_id
    if record.parent is None and thread is not None:
        with _PAUSED_LOCK:
            _PAUSED[thread] = _Paused(record.span.get_span_context(), checkpoint_id, ids)
            _PAUSED.move_to_end(thread)
            while len(_PAUSED) > _MAX_PAUSED:
                _PAUSED.popitem(last=False)


def link_resumed(record: RunRecord, checkpoint_id: str | None, latest: bool) -> None:
    """A root that resumes its thread: a span link to the interrupted root (once), and the resumed marks."""
    thread = record.thread_id
    if thread is None or record.resumed:
        return
    with _PAUSED_LOCK:
        paused = _PAUSED.pop(thread, None)
    record.resumed = True
    if not record.recording:
        return
    span = record.span
    span.set_attribute(sc.LC_GRAPH_RESUMED, True)
    if paused is not None:
        link: dict[str, Any] = {sc.LC_LINK_TYPE: "resumed_from"}
        if paused.ids:
            link[sc.LC_GRAPH_INTERRUPT_IDS] = paused.ids
        span.add_link(paused.context, link)
    if latest:
        event: dict[str, Any] = {sc.GEN_AI_AGENT_RESUMED_FROM_TYPE: "checkpoint"}
        origin = checkpoint_id or (paused.checkpoint_id if paused is not None else None)
        if origin:
            event[sc.GEN_AI_AGENT_RESUMED_FROM_ID] = origin
        span.add_event(sc.EVENT_AGENT_RESUMED, event)


class GraphCallbacks:
    """``on_interrupt`` and ``on_resume``, LangGraph's graph lifecycle callbacks."""

    _runs: RunRegistry
    _latest: bool
    raise_error: bool

    def _graph_run(self, event: Any) -> RunRecord | None:
        run_id = getattr(event, "run_id", None)
        return self._runs.get(run_id.int) if run_id is not None else None

    @guarded
    def on_interrupt(self, event: Any, **kwargs: Any) -> None:
        record = self._graph_run(event)
        if record is None:
            return
        checkpoint_id = getattr(event, "checkpoint_id", None)
        checkpoint_id = safe_text(checkpoint_id[:128]) if isinstance(checkpoint_id, str) and checkpoint_id else None
        mark_interrupted(record, _ids(tuple(getattr(event, "interrupts", ()) or ())), checkpoint_id)
        if checkpoint_id and record.parent is not None and record.interrupt is not None:
            record.interrupt["checkpoint_id"] = checkpoint_id  # a subgraph's own checkpoint

    @guarded
    def on_resume(self, event: Any, **kwargs: Any) -> None:
        record = self._graph_run(event)
        if record is None or record.parent is not None:
            return
        checkpoint_id = getattr(event, "checkpoint_id", None)
        checkpoint_id = safe_text(checkpoint_id[:128]) if isinstance(checkpoint_id, str) and checkpoint_id else None
        if checkpoint_id and record.recording:
            record.span.set_attribute(sc.LC_GRAPH_RESUMED_FROM_CHECKPOINT_ID, checkpoint_id)
        link_resumed(record, checkpoint_id, self._latest)
