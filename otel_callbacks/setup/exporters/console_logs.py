"""Console exporter for log records: one line per record, for reading beside the span trees.

The SDK's ``ConsoleLogRecordExporter`` prints about twenty lines of JSON per record (``console_format="json"`` keeps
it); an event whose body holds a conversation reads better as one line: its name, the span it belongs to, its
attributes and its body as compact JSON.

Example:
    >>> # logger_provider.add_log_record_processor(SimpleLogRecordProcessor(ConsoleLogLineExporter()))
    >>> # event gen_ai.client.inference.operation.details  trace 59f1…fb23 span 8c3c46d06b6e068d  gen_ai.system=x
    >>> #   {"gen_ai.input.messages":[{"role":"user","parts":[{"type":"text","content":"hi"}]}]}
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import IO, Any

from otel_callbacks.setup.logs import LogRecordExporter, LogRecordExportResult, ReadableLogRecord

logger = logging.getLogger(__name__)

__all__ = ["ConsoleLogLineExporter", "render_log_record"]


class ConsoleLogLineExporter(LogRecordExporter):
    """Print each log record as a header line and, when it has one, an indented body line.

    ``out`` defaults to the *current* ``sys.stdout`` at print time (so redirection and pytest capture work). Each
    record is one ``write`` call, so records printed from several threads do not mix.
    """

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out
        self._shutdown = False

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if self._shutdown:
            return LogRecordExportResult.FAILURE
        out = self._out if self._out is not None else sys.stdout
        try:
            for record in batch:
                text = render_log_record(record)
                try:
                    out.write(text)
                except UnicodeEncodeError:  # an ASCII terminal: escape what it cannot show rather than lose it
                    out.write(text.encode("ascii", "backslashreplace").decode("ascii"))
            out.flush()
        except Exception as exc:  # a closed or broken stream must not break the traced app
            logger.warning("Could not print %d log records to the console: %s", len(batch), exc)
            return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        self._shutdown = True


def render_log_record(readable: ReadableLogRecord) -> str:
    """The lines printed for one record (ending in a newline)."""
    record = readable.log_record
    kind = f"event {record.event_name}" if record.event_name else f"log {record.severity_text or ''}".rstrip()
    where = f"  trace {record.trace_id:032x} span {record.span_id:016x}" if record.span_id else ""
    attributes = "".join(f"  {key}={_compact(value)}" for key, value in (record.attributes or {}).items())
    head = f"{kind}{where}{attributes}\n"
    if record.body is None:
        return head
    return f"{head}  {_compact(record.body)}\n"


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_fallback)


def _fallback(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return list(value)
    return repr(value)
