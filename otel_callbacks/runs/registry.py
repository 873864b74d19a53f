"""Run bookkeeping: run id -> span, parent lookup, and making each run's span current while its code executes.

Parenting is explicit: a run's span is started under its parent run's span (found by ``parent_run_id``), or under
the ambient OpenTelemetry context for a root run. No LangChain types and no attribute building here.

Making the span current is the delicate part. langchain-core calls ``on_*_start`` in the caller's context, then
runs the run's code in a *copy* of that context, so attaching the span at start is what makes spans the user opens
inside a tool or lambda nest under the run. But async ``on_*_end`` callbacks run in a shielded task with yet another
copy, where a ``detach`` cannot reach the caller's context (that is the "Failed to detach context" peers log, and
how they leak an ended span into the next trace). At end, when the run's context is current and its token resets
(only possible in the very context we attached to, and only undoing our own attach), the caller's context is
restored exactly; that is the sync case. Otherwise we *retire* the context object we attached: its contents become
those of the context that was current before the run. Any context still pointing at it — the caller's, after an
``await chain.ainvoke()`` — then sees exactly the ambient span and baggage again.

Batch APIs (``RunnableSequence.batch``, ``BaseLLM.generate``) start several root runs one after the other in the same
context before any of their code runs. A root run must not become the child of the sibling attached just before it
(OpenLLMetry's batch bug), yet a root run started *inside* another run's code (a chain invoked from a tool with its
own callbacks) should nest under it. The two differ only in which ``contextvars.Context`` is active: the sibling's
attach happened in this very context, a run's code executes in a copy. Resetting the sibling's token succeeds only
in the former, which is exactly the test :func:`root_context` uses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from asyncio.events import _get_running_loop  # public in asyncio.events.__all__; None instead of raising
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any
from uuid import UUID

from opentelemetry import context as context_api
from opentelemetry.context import _RUNTIME_CONTEXT, Context, create_key
from opentelemetry.trace import INVALID_SPAN, Span, set_span_in_context

_logger = logging.getLogger(__name__)
_RUN_KEY = create_key("otel_callbacks.run")  # marks the contexts we attach, with the run they belong to
# The API's key for the current span, found through its public function: enter() builds the run's context with one
# copy instead of set_span_in_context's two.
_SPAN_KEY = next(iter(set_span_in_context(INVALID_SPAN, Context())))

# Each running loop's current task, kept by the C task module (private; without it _current_task asks asyncio).
_RUNNING_TASKS: dict[Any, Any] | None
try:
    from _asyncio import _current_tasks as _RUNNING_TASKS  # type: ignore[attr-defined,no-redef]
except ImportError:
    _RUNNING_TASKS = None
if not isinstance(_RUNNING_TASKS, dict):
    _RUNNING_TASKS = None

# The runtime context's own ContextVar when it is the default one: the same get/set/reset, two calls fewer per run.
_VAR = getattr(_RUNTIME_CONTEXT, "_current_context", None)
if type(_RUNTIME_CONTEXT).__name__ == "ContextVarsRuntimeContext" and isinstance(_VAR, ContextVar):
    _get_current = _VAR.get
    _attach = _VAR.set
    _detach = _VAR.reset
else:
    _get_current = context_api.get_current
    _attach = context_api.attach
    _detach = _RUNTIME_CONTEXT.detach


class RunRecord:
    """One open run: its span, the contexts around it, and what its end needs (stream timing, token sums).

    Fields most runs never change are class-level defaults, replaced per instance on first write: a run costs five
    stores at start instead of twenty (no ``__slots__``, which cannot coexist with such defaults).
    """

    borrowed = False  # the span is the parent's (an unsampled child shares it): never ended by this run
    _child_ctx: Context | None = None
    ctx: Context | None = None
    prev: Context | None = None
    token: Token[Context] | None = None
    task: object = None  # the asyncio task the run was entered in
    # Retired child contexts that now mirror ours; they are retired again when this run ends (see _retire).
    mirrors: list[weakref.ref[Context]] | None = None
    chunks = 0
    chunk_log: Any = None  # the span's chunk-event timestamps, once a chunk needs nothing else (on_llm_new_token)
    first_chunk_ns = 0
    last_chunk_ns = 0
    input_tokens = 0
    output_tokens = 0
    model_runs = 0
    metric_attrs: dict[str, Any] | None = None  # set only when metrics are recorded for this run

    def __init__(self, span: Span, parent: RunRecord | None, op: str, start_ns: int) -> None:
        self.span = span
        self.parent = parent
        self.op = op
        self.start_ns = start_ns
        self.recording = span.is_recording()

    def child_context(self) -> Context:
        """The context children are started under: only this run's span, never retired, made on first use."""
        ctx = self._child_ctx
        if ctx is None:
            ctx = self._child_ctx = set_span_in_context(self.span, Context())
        return ctx


# Every open run of every handler in the process, for parent lookup across handlers and so that a run is traced once
# even when the instrumented global handler and an explicitly passed one both see it. Run maps are keyed by the run
# id's 128-bit integer (``run_id.int``): hashing a UUID is a Python-level call, six per run and one per chunk.
_OPEN: dict[int, RunRecord] = {}


def lookup(run_id: UUID | None) -> RunRecord | None:
    """The open run with this id, whichever handler traces it; ``None`` for no id or one that is not a UUID."""
    try:
        return _OPEN.get(run_id.int)  # type: ignore[union-attr]
    except AttributeError:
        return None


def claimed(run_id: UUID) -> bool:
    return run_id.int in _OPEN


_NOT_STREAMING: tuple[Any, Any, Any] = (None, None, None)


class RunRegistry:
    """The open runs of one handler, bounded: past ``max_open`` the oldest is evicted (its span ended)."""

    # The run whose chunks are being counted, as (run_id, record, append to its span's chunk stamps): the next chunk
    # of a stream is an identity check away (on_llm_new_token, per chunk). Cleared when that run leaves.
    streaming: tuple[Any, Any, Any] = _NOT_STREAMING

    def __init__(self, max_open: int) -> None:
        self.max_open = max_open
        self.evicted = 0
        self._runs: dict[int, RunRecord] = {}
        # The open run with this ``run_id.int``, or None: the dict's own get (called per streamed chunk: no wrapper).
        self.get: Callable[[int], RunRecord | None] = self._runs.get
        self._lock = threading.Lock()
        _REGISTRIES.add(self)

    def _after_fork(self) -> None:
        # A fork while another thread held the lock would leave it held forever in the child.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._runs)

    def add(self, run_id: UUID, record: RunRecord) -> list[RunRecord]:
        """Register a started run; returns the runs evicted to stay within the bound (the caller ends them)."""
        # Single dict operations are atomic under the GIL; the lock only guards eviction's iteration.
        key = run_id.int
        self._runs[key] = record
        _OPEN[key] = record
        if len(self._runs) <= self.max_open:
            return []
        evicted: list[RunRecord] = []
        with self._lock:
            while len(self._runs) > self.max_open:
                try:
                    old_id = next(iter(self._runs))
                except RuntimeError:  # another thread's lock-free add/pop changed the dict mid-iteration
                    continue
                old = self._runs.pop(old_id, None)
                if old is not None:
                    evicted.append(old)
                    _OPEN.pop(old_id, None)
                    if self.streaming[1] is old:
                        self.streaming = _NOT_STREAMING
        if evicted:
            if self.evicted == 0:
                _logger.warning(
                    "otel-callbacks: more than %d runs open at once; ending the oldest unfinished runs' spans "
                    "(status ERROR, langchain.run.evicted=true). Runs that never end (abandoned generators, lost "
                    "callbacks) cause this; raise max_open_runs if you really run that many at once.",
                    self.max_open,
                )
            self.evicted += len(evicted)
        return evicted

    def pop(self, run_id: UUID) -> RunRecord | None:
        """Remove and return a run of this handler; ``None`` if unknown (never started, ended, or another's)."""
        key = run_id.int
        record = self._runs.pop(key, None)
        if record is not None:
            _OPEN.pop(key, None)
            if self.streaming[1] is record:
                self.streaming = _NOT_STREAMING
        return record

    def add_usage(self, record: RunRecord, input_tokens: int, output_tokens: int) -> None:
        """Add a model run's tokens to every run above it (the totals chain and agent spans carry)."""
        with self._lock:
            parent = record.parent
            while parent is not None:
                parent.input_tokens += input_tokens
                parent.output_tokens += output_tokens
                parent.model_runs += 1
                parent = parent.parent


def root_context() -> None:
    """Prepare the current context to parent a root run: undo a sibling root's attach made in this same context.

    Returns nothing: afterwards the current context is the root's parent (``start_span(context=None)`` reads it).
    """
    sibling = _get_current().get(_RUN_KEY)
    if not isinstance(sibling, RunRecord) or sibling.token is None:
        return
    try:
        # Only succeeds where the sibling attached; inside a run's code (a copied context) it raises instead,
        # and the run's span rightly stays the parent. The public detach() would log that as an error.
        _detach(sibling.token)
    except (ValueError, RuntimeError):
        return
    sibling.token = None


_REGISTRIES: weakref.WeakSet[RunRegistry] = weakref.WeakSet()


def _reinit_locks_after_fork() -> None:
    for registry in list(_REGISTRIES):
        registry._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_locks_after_fork)


def enter(record: RunRecord) -> None:
    """Make the run's span current in the calling context (the one langchain-core copies for the run's code)."""
    prev = _get_current()
    ctx = Context(prev)
    # A fresh object nobody else holds yet: filled in place (Context forbids item assignment by convention only).
    dict.__setitem__(ctx, _SPAN_KEY, record.span)
    dict.__setitem__(ctx, _RUN_KEY, record)
    record.prev = prev
    record.ctx = ctx
    record.token = _attach(ctx)
    record.task = _current_task()


def _current_task() -> object:
    """The running asyncio task, ``None`` outside one: async end callbacks run in another task (a copied context,
    where resetting the token would raise, ~1 µs an exception), so leave() does not try there.

    Only a hint, read where it is cheap: with one loop running in the process, that loop's current task from the C
    task module's own map (~0.1 µs; ``asyncio.current_task()`` first asks the OS for the pid, ~0.6 µs). If the one
    loop runs in another thread the hint can be wrong; leave() then merely retires instead of resetting, or tries a
    reset that fails, both correct.
    """
    tasks = _RUNNING_TASKS
    if tasks is not None and len(tasks) <= 1:
        for task in tasks.values():
            return task
        return None
    loop = _get_running_loop()
    return None if loop is None else asyncio.current_task(loop)


def leave(record: RunRecord) -> None:
    """Undo :func:`enter` wherever the end callback runs, without tokens (see the module docstring)."""
    ctx, prev, token = record.ctx, record.prev, record.token
    if ctx is None or prev is None:
        return
    record.ctx = record.token = None
    current = _get_current() is ctx
    if current and token is not None and record.mirrors is None and _current_task() is record.task:
        try:
            # Succeeds only in the context the run was attached in, and restores prev there (ctx is current, so
            # no later attach is undone). Every other holder of ctx is then a copy made for the run's own code,
            # which rightly keeps its span: no retiring needed, the common sync case.
            _detach(token)
            return
        except (ValueError, RuntimeError):
            pass
    if current:
        _attach(prev)
    _retire(ctx, prev)
    mirrors, record.mirrors = record.mirrors, None
    for ref in mirrors or ():
        mirror = ref()
        if mirror is not None:
            _retire(mirror, prev)


def _retire(ctx: Context, prev: Context) -> None:
    # Context is an immutable dict by convention only; the dict methods below bypass its __setitem__ guard on
    # purpose. Update first, then drop extra keys, so a concurrent reader sees the run's span or the ambient one,
    # never an empty context.
    dict.update(ctx, prev)
    if len(ctx) != len(prev):
        for key in [k for k in ctx if k not in prev]:
            dict.pop(ctx, key, None)
    # If prev is the context of a run still open (a child ended before its parent), ctx is now a copy of that
    # context by value; the parent's own retirement must reach it too, or a caller left holding ctx would keep
    # seeing the parent's span after the parent ended.
    owner = prev.get(_RUN_KEY)
    if isinstance(owner, RunRecord) and owner.ctx is not None:
        mirrors = owner.mirrors
        if mirrors is None:
            mirrors = owner.mirrors = []
        elif len(mirrors) >= 32:
            mirrors[:] = [r for r in mirrors if r() is not None]
        mirrors.append(weakref.ref(ctx))
