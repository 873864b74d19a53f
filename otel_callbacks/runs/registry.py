"""Run bookkeeping: run id -> open run, per handler, bounded; and which runs a tracer provider already traces.

No LangChain types, no attribute building and no context handling here (that is ``runs.context``).

Run maps are keyed by the run id's 128-bit integer (``run_id.int``): hashing a UUID is a Python-level call, six per
run and one per streamed chunk.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from contextvars import Token
from typing import Any
from uuid import UUID

from opentelemetry.context import Context
from opentelemetry.trace import Span, set_span_in_context

_logger = logging.getLogger(__name__)


class RunRecord:
    """One open run: its span, the context around it, and what its end needs (stream timing, token sums).

    Fields most runs never change are class-level defaults, replaced per instance on first write: a run costs five
    stores at start instead of twenty (no ``__slots__``, which cannot coexist with such defaults).
    """

    borrowed = False  # the span is the parent's (an unsampled child shares it): never ended by this run
    _child_ctx: Context | None = None
    ctx: Context | None = None  # the context made current for the run's code (runs.context.enter)
    prev: Context | None = None
    token: Token[Context] | None = None
    task: object = None  # the asyncio task the run was entered in
    # Retired contexts that mirror this run's; retired again when this run's own context is (runs.context).
    mirrors: list[weakref.ref[Context]] | None = None
    chunks = 0
    chunk_sink: Any = None  # append a chunk's timestamp, once a chunk needs nothing else (on_llm_new_token)
    first_chunk_ns = 0
    last_chunk_ns = 0
    input_tokens = 0
    output_tokens = 0
    model_runs = 0
    metric_attrs: dict[str, Any] | None = None  # set only when metrics are recorded for this run
    key = 0  # ``run_id.int`` in the registry
    # Open runs beneath this one (their records), so that they end with it if LangChain never ends them (a
    # cancelled or timed-out model call, an abandoned stream). Made on the first child.
    children: set[RunRecord] | None = None
    # LangGraph: a root's thread id, the interrupt that paused this run or one beneath it, a root that resumes.
    thread_id: str | None = None
    interrupt: dict[str, Any] | None = None
    resumed = False
    # Content events: the model run's GenAI start attributes and its input content, for the event at its end.
    event_attrs: dict[str, Any] | None = None
    content: dict[str, Any] | None = None

    def __init__(self, span: Span, parent: RunRecord | None, op: str, start_ns: int) -> None:
        self.span = span
        self.parent = parent
        self.op = op
        self.start_ns = start_ns
        self.recording = span.is_recording()

    def child_context(self) -> Context:
        """The context children are started under: only this run's span, made on first use."""
        ctx = self._child_ctx
        if ctx is None:
            ctx = self._child_ctx = set_span_in_context(self.span, Context())
        return ctx


# The open runs of every handler on one tracer provider: a run is traced once per provider even when the
# instrumented global handler and an explicitly passed one both see it, and a parent is found whichever of them
# traces it. Handlers on different providers each do their own job.
_OPEN_BY_PROVIDER: weakref.WeakKeyDictionary[Any, dict[int, RunRecord]] = weakref.WeakKeyDictionary()
_OPEN_BY_ID: dict[int, dict[int, RunRecord]] = {}  # providers that take no weak reference (kept for the process)
_OPEN_LOCK = threading.Lock()


def open_runs_of(provider: Any) -> dict[int, RunRecord]:
    """The shared map of open runs of every handler on ``provider``."""
    with _OPEN_LOCK:
        try:
            runs = _OPEN_BY_PROVIDER.get(provider)
            if runs is None:
                runs = _OPEN_BY_PROVIDER[provider] = {}
        except TypeError:
            runs = _OPEN_BY_ID.setdefault(id(provider), {})
        return runs


_NOT_STREAMING: tuple[Any, Any, Any] = (None, None, None)


class RunRegistry:
    """The open runs of one handler, bounded: past ``max_open`` the oldest is evicted (its span ended)."""

    # The run whose chunks are being counted, as (run_id, record, chunk sink): the next chunk of a stream is an
    # identity check away (on_llm_new_token, per chunk). Cleared when that run leaves.
    streaming: tuple[Any, Any, Any] = _NOT_STREAMING

    def __init__(self, max_open: int, provider: Any) -> None:
        self.max_open = max_open
        self.evicted = 0
        self._runs: dict[int, RunRecord] = {}
        # The open run with this ``run_id.int``, or None: the dict's own get (called per streamed chunk: no wrapper).
        self.get: Callable[[int], RunRecord | None] = self._runs.get
        self._lock = threading.Lock()
        self.bind(provider)
        _REGISTRIES.add(self)

    def bind(self, provider: Any) -> None:
        """Share run claims and parents with the other handlers on ``provider`` from now on; this handler's open
        runs move along (a handler made before the app's provider was installed rebinds on a later start)."""
        old: dict[int, RunRecord] | None = getattr(self, "_open", None)
        new = open_runs_of(provider)
        if old is not None and old is not new:
            for key, record in list(self._runs.items()):
                if old.get(key) is record:
                    del old[key]
                    new[key] = record
        self._open = new

    def _after_fork(self) -> None:
        # A fork while another thread held the lock would leave it held forever in the child.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._runs)

    def lookup(self, run_id: UUID | None) -> RunRecord | None:
        """The open run with this id on this handler's provider; ``None`` for no id or one that is not a UUID."""
        try:
            return self._open.get(run_id.int)  # type: ignore[union-attr]
        except AttributeError:
            return None

    def claimed(self, run_id: UUID) -> bool:
        """Whether a handler on this provider already traces this run."""
        return run_id.int in self._open

    def add(self, run_id: UUID, record: RunRecord) -> list[RunRecord]:
        """Register a started run; returns the runs evicted to stay within the bound (the caller ends them)."""
        # Single dict operations are atomic under the GIL; the lock only guards eviction's iteration.
        key = record.key = run_id.int
        self._runs[key] = record
        self._open[key] = record
        parent = record.parent
        if parent is not None and not record.borrowed:
            children = parent.children
            if children is None:
                parent.children = {record}
            else:
                children.add(record)
        if len(self._runs) <= self.max_open:
            return []
        evicted: list[RunRecord] = []
        with self._lock:
            while len(self._runs) > self.max_open:
                try:
                    old_id = next(iter(self._runs))
                except RuntimeError:  # another thread's lock-free add/pop changed the dict mid-iteration
                    continue
                old = self._pop(old_id)
                if old is not None:
                    old.children = None  # each of them is evicted in its turn, or ends
                    evicted.append(old)
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
        return self._pop(run_id.int)

    def _pop(self, key: int) -> RunRecord | None:
        record = self._runs.pop(key, None)
        if record is not None:
            self._open.pop(key, None)
            if self.streaming[1] is record:
                self.streaming = _NOT_STREAMING
            parent = record.parent
            if parent is not None and parent.children is not None:
                parent.children.discard(record)
        return record

    def pop_orphans(self, record: RunRecord) -> list[RunRecord]:
        """Remove and return the runs of this handler still open beneath ``record``, deepest first (they end
        before the runs above them)."""
        orphans: list[RunRecord] = []
        children, record.children = record.children, None
        for child in list(children or ()):
            if self._runs.get(child.key) is child:
                orphans.extend(self.pop_orphans(child))
                self._pop(child.key)
                orphans.append(child)
        return orphans

    def add_usage(self, record: RunRecord, input_tokens: int, output_tokens: int) -> None:
        """Add a model run's tokens to every run above it (the totals chain and agent spans carry)."""
        with self._lock:
            parent = record.parent
            while parent is not None:
                parent.input_tokens += input_tokens
                parent.output_tokens += output_tokens
                parent.model_runs += 1
                parent = parent.parent


_REGISTRIES: weakref.WeakSet[RunRegistry] = weakref.WeakSet()


def _reinit_locks_after_fork() -> None:
    for registry in list(_REGISTRIES):
        registry._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_locks_after_fork)
