"""Batch export that is bounded in time and counts what it loses (issue 13: "bounded and counted").

The SDK's ``BatchSpanProcessor`` drops spans when its queue is full (one uncounted log line, rate-limited or not
depending on the version), its ``force_flush(timeout_millis)`` exports everything queued and ignores the timeout in
the versions we support (upstream TODO #4568), and a failed export is logged by the exporter but counted nowhere. So:

* :class:`CountingExporter` wraps the exporter and counts, by batch size, what reached it, what it exported and what
  failed (``FAILURE`` or an exception);
* :class:`CountedBatchSpanProcessor` is a ``BatchSpanProcessor`` used only through its public methods. It counts what
  ``on_end`` is handed; a span that would find the queue full is refused *before* the SDK sees it (the SDK would
  silently drop the oldest instead), so every loss is counted: handed - refused - reached the exporter is exactly what
  is still queued. ``force_flush`` runs the SDK's flush on a helper thread and waits at most its timeout.
* Losses are logged at most once per :data:`WARN_INTERVAL_S`, with the count and the reason, and once more at shutdown;
  :meth:`DropCounter.totals` gives the running totals (``setup_tracing``'s provider sums them as ``dropped``).

Example:
    >>> # counter = DropCounter("OTLPSpanExporter")
    >>> # processor = CountedBatchSpanProcessor(CountingExporter(exporter, counter), counter, max_queue_size=2048)
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_callbacks.setup.forksafe import quiesce_at_fork, renew_after_fork

logger = logging.getLogger(__name__)

__all__ = ["EXPORT_FAILED", "QUEUE_FULL", "REASONS", "SHUTDOWN", "WARN_INTERVAL_S", "CountedBatchSpanProcessor",
           "CountingExporter", "DropCounter"]

QUEUE_FULL = "queue_full"
EXPORT_FAILED = "export_failed"
SHUTDOWN = "shutdown"  # still queued (or being exported) when shutdown gave up, or ended after shutdown
REASONS = (QUEUE_FULL, EXPORT_FAILED, SHUTDOWN)
WARN_INTERVAL_S = 60.0
FORK_WAIT_S = 1.0  # longest a fork waits for an export in flight (loopback and LAN exports take milliseconds)
_HINTS = {
    QUEUE_FULL: "the queue was full: the collector is slower than the application or unreachable (raise "
                "OTEL_BSP_MAX_QUEUE_SIZE for bursts)",
    EXPORT_FAILED: "the exporter failed (see its own log lines)",
    SHUTDOWN: "still pending when shutdown gave up (raise OTEL_CALLBACKS_EXIT_TIMEOUT to wait longer)",
}


class DropCounter:
    """Counts one processor's spans by fate, and logs losses at most once per interval.

    ``accepted`` spans went into the SDK's queue, ``entered`` reached the exporter, ``succeeded``/``failed`` came back
    from it. All counters are under one lock: they are touched once per span end and once per batch.
    """

    def __init__(self, what: str, *, interval_s: float = WARN_INTERVAL_S) -> None:
        self.what = what
        self.interval_s = interval_s
        self._reset()
        renew_after_fork(self)

    def _renew_after_fork(self) -> None:
        # The child's queue starts empty (the SDK clears it; the parent exports what was queued), and another thread
        # may have held the lock at the fork: the child starts counting afresh.
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self.accepted = self.entered = self.succeeded = self.failed = 0
        self._dropped = dict.fromkeys(REASONS, 0)
        self._unreported = dict.fromkeys(REASONS, 0)
        self._last_warning = -float("inf")
        self._abandoned = False  # after a shutdown that gave up, a late success means the span was not lost after all

    def in_flight(self) -> int:
        """Accepted but not yet handed to the exporter: the queue, plus a batch being taken off it."""
        with self._lock:
            return self.accepted - self.entered

    def try_accept(self, capacity: int) -> bool:
        """Take one span if the queue has room; else count it as dropped because the queue is full."""
        with self._lock:
            if self.accepted - self.entered < capacity:
                self.accepted += 1
                return True
            self._count(QUEUE_FULL, 1)
        self._maybe_warn()
        return False

    def entering(self, count: int) -> None:
        with self._lock:
            self.entered += count

    def exported(self, count: int, ok: bool) -> None:
        with self._lock:
            if self._abandoned:  # already counted as lost at shutdown
                if ok:
                    self._dropped[SHUTDOWN] -= count
                return
            if ok:
                self.succeeded += count
            else:
                self.failed += count
                self._count(EXPORT_FAILED, count)
        if not ok:
            self._maybe_warn()

    def drop(self, reason: str, count: int) -> None:
        if count <= 0:
            return
        with self._lock:
            self._count(reason, count)
        self._maybe_warn()

    def totals(self) -> dict[str, int]:
        """Spans lost so far, by reason (``queue_full``, ``export_failed``, ``shutdown``)."""
        with self._lock:
            return dict(self._dropped)

    def abandon_pending(self) -> None:
        """At the end of shutdown: what was accepted and never came back from the exporter is lost."""
        with self._lock:
            if not self._abandoned:
                self._count(SHUTDOWN, self.accepted - self.succeeded - self.failed)
                self._abandoned = True

    def report(self) -> None:
        """Log what was lost since the last warning, whatever the interval (used once, at shutdown)."""
        self._maybe_warn(force=True)

    def _count(self, reason: str, count: int) -> None:  # under self._lock
        self._dropped[reason] += count
        self._unreported[reason] += count

    def _maybe_warn(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not any(self._unreported.values()) or (not force and now - self._last_warning < self.interval_s):
                return
            self._last_warning = now
            unreported, self._unreported = self._unreported, dict.fromkeys(REASONS, 0)
            totals = dict(self._dropped)
        lost = sum(unreported.values())
        reasons = "; ".join(f"{count} because {_HINTS[reason]}" for reason, count in unreported.items() if count)
        logger.warning(
            "Dropped %d spans bound for %s%s: %s. Totals so far: %s (provider.dropped holds them).",
            lost, self.what, "" if force else f" (at most one such warning per {self.interval_s:g} s)", reasons,
            ", ".join(f"{reason} {count}" for reason, count in totals.items()),
        )


class CountingExporter(SpanExporter):
    """Pass batches to ``inner`` and count them into ``counter``: reached, exported, failed (raised counts as failed,
    and is re-raised so the processor logs it as it always has)."""

    def __init__(self, inner: SpanExporter, counter: DropCounter) -> None:
        self.inner = inner
        self._counter = counter
        self._shut_down = threading.Event()
        self._renew_after_fork()
        renew_after_fork(self)
        quiesce_at_fork(self)

    def _renew_after_fork(self) -> None:
        # Held around each export and across a fork (forksafe.quiesce_at_fork): a child forked while the worker was
        # inside the gRPC client could never export (gRPC skips its fork handlers then).
        self._exporting = threading.Lock()
        self._held_for_fork = False

    def _before_fork(self) -> None:
        # Bounded: a fork waits for an export in flight on a live collector, never for a dead one's timeout.
        self._held_for_fork = self._exporting.acquire(timeout=FORK_WAIT_S)

    def _after_fork_in_parent(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._exporting.release()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._counter.entering(len(spans))
        ok = False
        try:
            with self._exporting:
                result = self.inner.export(spans)
            ok = result is SpanExportResult.SUCCESS
            return result
        finally:
            self._counter.exported(len(spans), ok)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        # Once: the processor shuts its exporter down at the end of its own shutdown, and a shutdown that gave up
        # (CountedBatchSpanProcessor.gave_up) already did.
        if self._shut_down.is_set():
            return
        self._shut_down.set()
        self.inner.shutdown()


class CountedBatchSpanProcessor(BatchSpanProcessor):
    """A ``BatchSpanProcessor`` that refuses (and counts) spans when its queue is full and whose ``force_flush``
    returns within its timeout. Give it the :class:`CountingExporter` that shares its ``counter``."""

    def __init__(self, exporter: CountingExporter, counter: DropCounter, *, max_queue_size: int,
                 max_export_batch_size: int | None = None, schedule_delay_millis: float | None = None,
                 export_timeout_millis: float | None = None) -> None:
        super().__init__(exporter, max_queue_size=max_queue_size, max_export_batch_size=max_export_batch_size,
                         schedule_delay_millis=schedule_delay_millis, export_timeout_millis=export_timeout_millis)
        self.counter = counter
        self._counting = exporter
        self._capacity = max_queue_size
        self._flushing: threading.Thread | None = None
        self._flushed = threading.Event()
        self._renew_after_fork()
        renew_after_fork(self)
        self._closed = False

    def on_end(self, span: ReadableSpan) -> None:
        if not (span.context and span.context.trace_flags.sampled):
            return  # the SDK's processor skips these too
        if self._closed:
            self.counter.drop(SHUTDOWN, 1)
            return
        if self.counter.try_accept(self._capacity):
            super().on_end(span)

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export what is queued, waiting at most ``timeout_millis`` (default 30000); False if that was not enough.

        The export goes on in the background after a timeout; a later call waits for that same flush rather than
        queueing another one behind it (against a dead collector they would pile up)."""
        if self._closed:
            return False
        timeout_s = max(timeout_millis if timeout_millis is not None else 30000, 0) / 1000
        with self._flush_lock:
            if self._flushing is None or not self._flushing.is_alive():
                self._flushed = threading.Event()
                self._flushing = threading.Thread(target=self._flush, args=(self._flushed,),
                                                  name="otel-callbacks-flush", daemon=True)
                self._flushing.start()
            flushed = self._flushed
        return flushed.wait(timeout_s)

    def _flush(self, flushed: threading.Event) -> None:
        try:
            super().force_flush()
        except Exception:  # an exporter's error must not end the helper silently; the SDK logs export errors itself
            logger.exception("Error while flushing spans to %s", self.counter.what)
        finally:
            flushed.set()

    def shutdown(self) -> None:
        """The SDK's shutdown (which drains the queue, for up to 30 s against a dead collector). Callers bound it:
        ``setup_tracing``'s provider runs it on a helper thread and calls :meth:`gave_up` when its bound passes."""
        self._closed = True
        super().shutdown()

    def gave_up(self) -> None:
        """Shutdown ran out of time: count what never came back from the exporter as lost, and say so.

        The SDK's shutdown goes on in the background, exporting the rest with a retry budget per batch for up to
        30 s. Shutting the exporter down now (on its own thread: the gRPC exporter waits up to 30 s for an export in
        progress) interrupts its retries, so the remaining batches fail at once instead of lingering."""
        self._closed = True
        self.counter.abandon_pending()
        self.counter.report()
        with contextlib.suppress(RuntimeError):  # no thread at interpreter exit (3.12+): the process is ending anyway
            threading.Thread(target=_shut_quietly, args=(self._counting,), name="otel-callbacks-exporter-shutdown",
                             daemon=True).start()

    def finished(self) -> None:
        """Shutdown completed: report what was lost since the last warning, including what the SDK's own shutdown
        left in the queue when its 30 s ran out."""
        self.counter.abandon_pending()
        self.counter.report()

    def _renew_after_fork(self) -> None:
        self._flush_lock = threading.Lock()
        self._flushing = None  # the parent's flush thread does not exist here


def _shut_quietly(exporter: SpanExporter) -> None:
    try:
        exporter.shutdown()
    except Exception:  # telemetry failures are logged, never raised into the host
        logger.exception("Error while shutting down %s", type(exporter).__name__)

