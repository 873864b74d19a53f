"""Console exporter that prints each finished trace as an indented tree."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from typing import IO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_callbacks.cli.tree import SpanRecord, build_traces, record_from_span, render_traces
from otel_callbacks.setup.forksafe import renew_after_fork

logger = logging.getLogger(__name__)

_BOX_CHARS = "├└│─"


class ConsoleTreeSpanExporter(SpanExporter):
    """Print traces as trees (name, duration, model, tokens, errors) instead of one JSON dump per span.

    Children end before their parents, so spans are buffered per trace and a tree is printed when its *local root*
    ends (a span with no parent, or a remote parent). Spans of one trace may arrive over several batches; that is
    fine. The buffer is bounded by ``max_buffered_spans``: when full, the oldest pending trace is printed as
    incomplete rather than dropped silently, and ``shutdown`` prints whatever is still pending the same way.

    ``out`` defaults to the *current* ``sys.stdout`` at print time (so redirection and pytest capture work).
    ``ascii_only`` defaults to whether ``out`` can encode box-drawing characters.

    Example:
        >>> # provider.add_span_processor(SimpleSpanProcessor(ConsoleTreeSpanExporter()))
        >>> # trace 4bf9...  3 spans  12.0 ms  tokens in=12 out=5
        >>> # └─ invoke_agent weather_agent  12.0 ms  tokens(sum) in=12 out=5
        >>> #    └─ chat demo-model  1.2 ms  model=demo-model  tokens in=12 out=5
    """

    def __init__(
        self, out: IO[str] | None = None, *, max_buffered_spans: int = 10_000, ascii_only: bool | None = None
    ) -> None:
        if max_buffered_spans < 1:
            raise ValueError(f"max_buffered_spans must be positive, got {max_buffered_spans}")
        self._out = out
        self._max_buffered = max_buffered_spans
        self._ascii_only = ascii_only
        self._pending: dict[str, list[SpanRecord]] = {}  # insertion order = age, for eviction
        self._pending_count = 0
        self._renew_after_fork()
        renew_after_fork(self)  # a child forked while a tree was being printed would otherwise never print
        self._shutdown = False

    def _renew_after_fork(self) -> None:
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            with self._lock:
                ready: list[SpanRecord] = []
                for span in spans:
                    record = record_from_span(span)
                    self._pending.setdefault(record.trace_id, []).append(record)
                    self._pending_count += 1
                    if span.parent is None or span.parent.is_remote:
                        ready.extend(self._take_subtree(record))
                while self._pending_count > self._max_buffered:
                    ready.extend(self._take_trace(next(iter(self._pending))))
                if ready:
                    self._print(ready)
        except Exception as exc:  # a closed or broken stream must not break the traced app
            logger.warning("Could not print %d spans to the console: %s", len(spans), exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _take_subtree(self, root: SpanRecord) -> list[SpanRecord]:
        """Remove and return ``root`` and its buffered descendants; other spans of the trace stay pending."""
        pending = self._pending[root.trace_id]
        children: dict[str, list[SpanRecord]] = {}
        for rec in pending:
            if rec.parent_span_id:
                children.setdefault(rec.parent_span_id, []).append(rec)
        taken: dict[str, SpanRecord] = {}
        stack = [root]
        while stack:
            rec = stack.pop()
            if rec.span_id in taken:
                continue
            taken[rec.span_id] = rec
            stack.extend(children.get(rec.span_id, ()))
        rest = [rec for rec in pending if rec.span_id not in taken]
        if rest:
            self._pending[root.trace_id] = rest
        else:
            del self._pending[root.trace_id]
        self._pending_count -= len(pending) - len(rest)
        return list(taken.values())

    def _take_trace(self, trace_id: str) -> list[SpanRecord]:
        records = self._pending.pop(trace_id)
        self._pending_count -= len(records)
        return records

    def _print(self, records: list[SpanRecord]) -> None:
        out = self._out if self._out is not None else sys.stdout
        ascii_only = self._ascii_only if self._ascii_only is not None else not _can_encode(out, _BOX_CHARS)
        text = "\n".join(render_traces(build_traces(records), ascii_only=ascii_only))
        out.write(text + "\n\n")
        out.flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # Pending spans belong to traces whose root has not ended; printing them now would show half trees.
        return True

    def shutdown(self) -> None:
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            leftovers = [rec for trace_id in list(self._pending) for rec in self._take_trace(trace_id)]
            if leftovers:
                try:
                    self._print(leftovers)
                except Exception as exc:  # stdout may already be closed at interpreter exit
                    logger.warning("Could not print %d pending spans at shutdown: %s", len(leftovers), exc)


def _can_encode(out: IO[str], text: str) -> bool:
    encoding = getattr(out, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True
