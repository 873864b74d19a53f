"""The OpenTelemetry context around each run: which context a run's span is started under, and making the span
current while the run's code executes. The only module that touches the current context.

Parenting is explicit: a run's span is started under its parent run's span (found by ``parent_run_id``), or under
the ambient context for a root run (:func:`parent_context`). Making the span current is the delicate part.
langchain-core calls ``on_*_start`` in the caller's context, then runs the run's code in a *copy* of it, so
attaching the span at start is what makes spans the user opens inside a tool or lambda nest under the run.

Contexts are never mutated (OpenTelemetry Contexts are immutable by contract), with one documented exception:
- Sync ends run in the context the run was attached in: resetting the token restores the caller's context exactly.
- Async ends run in a task of their own (langchain-core shields them, in a copy of the caller's context). A
  token cannot be reset there, and nothing of ours runs in the caller's context again. A run entered in a copy
  made for some run's code (a sequence step, a lambda's task) leaves that copy as it was: a Context captured
  inside the run keeps the run's span (a background task started there stays the run's child).
- The exception: a run entered in its root run's own task — the root of ``await chain.ainvoke()`` in a request
  handler or a worker loop, or a LangGraph node that ``astream`` runs inline in the caller's task. The caller goes
  on in the context we attached to; left alone, every span it opens afterwards would join the ended run's trace
  (unrelated traces merged, the peers' worst bug). So that attached context is *retired*: its contents become
  those of the context current before the run (and again, through ``mirrors``, when an enclosing run of that
  task is retired). A Context captured in such a run's own code reverts to the ambient context when the run
  ends; ``tests/test_contract.py`` proves the limit (an async end's context changes never reach the caller).
  Outside asyncio the same holds for ends that cannot reset their token (out of order, or in another thread).

Batch APIs (``RunnableSequence.batch``, ``BaseLLM.generate``) start several root runs one after the other in the same
context before any of their code runs. A root run must not become the child of the sibling attached just before it
(OpenLLMetry's batch bug), yet a root run started *inside* another run's code should nest under it. The two differ
only in which ``contextvars.Context`` is active: the sibling's attach happened in this very context, a run's code
executes in a copy. Resetting the sibling's token succeeds only in the former (:func:`parent_context`).

Across services (``runs.handoff``): a root run with no current span whose metadata carries a caller's trace hand-off
(a LangGraph server's run created by a traced client) is started under the caller's span; what else the
propagators extracted (baggage) is current with the run's span while its code executes, also where a current span
of the caller's trace (langgraph-api's worker span) stays the parent.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from asyncio.events import _get_running_loop  # public in asyncio.events.__all__; None instead of raising
from collections.abc import Mapping

from opentelemetry.context import Context, create_key
from opentelemetry.trace import INVALID_SPAN, set_span_in_context

from otel_callbacks.emit import compat
from otel_callbacks.runs.handoff import HANDOFF_KEY, handed_off
from otel_callbacks.runs.registry import RunRecord

_RUN_KEY = create_key("otel_callbacks.run")  # marks the contexts we attach, with the run they belong to
# The API's key for the current span, found through its public function: enter() builds the run's context in one
# step instead of set_span_in_context's two copies.
_SPAN_KEY = next(iter(set_span_in_context(INVALID_SPAN, Context())))
_get_current, _attach, _reset, _ = compat.runtime_context_ops()
_RUNNING_TASKS = compat.running_tasks_map()


class _Pending(threading.local):
    """What the hand-off parent_context chose for the root run being started in this thread carries besides the
    span (baggage), for enter(): the two run back to back in one start callback, the record made between them."""

    handoff: Context | None = None


_PENDING = _Pending()


def parent_context(parent: RunRecord | None, metadata: object = None) -> Context | None:
    """The context a run's span is started under: its parent run's, or ``None`` for the ambient one (a root).

    ``metadata`` is the run's metadata as LangChain passed it (a root run may carry a trace hand-off in it).

    For a root, first undo a sibling root's attach made in this same context (see the module docstring); then, if
    nothing is current, a trace hand-off in ``metadata`` (``runs.handoff``) is the parent.
    """
    if parent is not None:
        return parent.child_context()
    pending = _PENDING
    if pending.handoff is not None:
        pending.handoff = None  # left by a start that failed before enter()
    current = _get_current()
    sibling = current.get(_RUN_KEY)
    if isinstance(sibling, RunRecord) and sibling.token is not None:
        try:
            # Only succeeds where the sibling attached; inside a run's code (a copied context) it raises instead,
            # and the run's span rightly stays the parent. The public detach() would log that as an error.
            _reset(sibling.token)
            sibling.token = None
            current = _get_current()
        except (ValueError, RuntimeError):
            pass
    # LangChain passes a dict or None: one key lookup per root run when there is no hand-off (the common case).
    if type(metadata) is dict:
        found = HANDOFF_KEY in metadata
    else:
        found = metadata is not None and isinstance(metadata, Mapping)
    if found:
        handoff, carried = handed_off(metadata, current)
        if carried is not None:
            entries = {key: value for key, value in carried.items() if key != _SPAN_KEY}
            pending.handoff = Context(entries) if entries else None
        return handoff
    return None


def enter(record: RunRecord, extra: Mapping[str, object] | None = None) -> None:
    """Make the run's span current in the calling context (the one langchain-core copies for the run's code).

    ``extra`` adds entries seen only by the run's own code (a model run's suppression keys for provider
    instrumentations); the contexts of its child runs are built from the parent's span, not from this context.
    """
    prev = _get_current()
    if record.parent is None and _PENDING.handoff is not None:
        # The caller's baggage (whatever else its propagators carried) goes on with the root run's code.
        handoff, _PENDING.handoff = _PENDING.handoff, None
        extra = {**handoff, **extra} if extra else handoff
    if extra:
        ctx = Context(prev, **extra, **{_SPAN_KEY: record.span, _RUN_KEY: record})
    else:
        ctx = Context(prev, **{_SPAN_KEY: record.span, _RUN_KEY: record})
    record.prev = prev
    record.ctx = ctx
    record.token = _attach(ctx)
    record.task = _current_task()


def _current_task() -> object:
    """The running asyncio task, ``None`` outside one: async end callbacks run in another task (a copied context,
    where resetting the token would raise, and an exception is costly), so leave() does not try there.

    Only a hint, read where it is cheap: with one loop running in the process, that loop's current task from the C
    task module's own map (``asyncio.current_task()`` first asks the OS for the pid). If the one loop runs in
    another thread the hint can be wrong; leave() then skips a reset that would have worked (and retires a root, as
    for any async end) or tries one that fails, both safe.
    """
    tasks = _RUNNING_TASKS
    if tasks is not None and len(tasks) <= 1:
        for task in tasks.values():
            return task
        return None
    loop = _get_running_loop()
    return None if loop is None else asyncio.current_task(loop)


def leave(record: RunRecord) -> None:
    """Undo :func:`enter` wherever the end callback runs (see the module docstring)."""
    ctx, prev, token = record.ctx, record.prev, record.token
    if ctx is None or prev is None:
        return
    # An ended run keeps no context alive: the contexts of never-ended runs attached one upon another would
    # otherwise chain every earlier run's span through their ``prev``.
    record.ctx = record.token = record.prev = None
    current = _get_current() is ctx
    if current and token is not None and record.mirrors is None and _current_task() is record.task:
        try:
            # Succeeds only in the context the run was attached in, and restores prev there (ctx is current, so
            # no later attach is undone). The common sync case.
            _reset(token)
            return
        except (ValueError, RuntimeError):
            pass
    if current:
        _attach(prev)  # this callback's own context (a copy) goes on without the run
    if _in_callers_task(record):
        _retire(ctx, prev)
        mirrors, record.mirrors = record.mirrors, None
        for ref in mirrors or ():
            mirror = ref()
            if mirror is not None:
                _retire(mirror, prev)


def _in_callers_task(record: RunRecord) -> bool:
    """Whether the run was entered in the task its root run was entered in: the caller's own task (the root
    itself, or a LangGraph node run inline by an ``astream`` the caller iterates), whose context the caller goes
    on with. A run entered anywhere else was entered in a copy made for some run's code. Outside asyncio (no
    task) this is every run whose end could not reset its token: ends out of order, or in another thread."""
    task = record.task
    root = record
    while root.parent is not None:
        root = root.parent
    return root.task is task


def _retire(ctx: Context, prev: Context) -> None:
    # The one mutation of a Context, for caller-visible contexts only (module docstring). Context is an immutable
    # dict by convention; the dict methods bypass its guard on purpose. Update first, then drop extra keys, so a
    # concurrent reader sees the run's span or the ambient one, never an empty context.
    dict.update(ctx, prev)
    if len(ctx) != len(prev):
        for key in [k for k in ctx if k not in prev]:
            dict.pop(ctx, key, None)
    # If prev is the context of a run still open (a child ended before its parent), ctx is now a copy of that
    # context by value; the parent's own retirement must reach it too, or the caller would keep seeing the
    # parent's span after the parent ended.
    owner = prev.get(_RUN_KEY)
    if isinstance(owner, RunRecord) and owner.ctx is not None:
        mirrors = owner.mirrors
        if mirrors is None:
            mirrors = owner.mirrors = []
        elif len(mirrors) >= 32:
            mirrors[:] = [r for r in mirrors if r() is not None]
        mirrors.append(weakref.ref(ctx))
