"""Log-record exporter that appends OTLP/JSON lines (``{"resourceLogs": [...]}``) to a file or a text stream.

Apart from the span file exporter (``file``) because it loads the logs SDK, which tracing alone never needs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from otel_callbacks.setup.exporters.file import JsonLinesFile
from otel_callbacks.setup.exporters.otlp_json_logs import dumps_line, encode_otlp_json_logs
from otel_callbacks.setup.logs import LogRecordExporter, LogRecordExportResult, ReadableLogRecord

logger = logging.getLogger(__name__)

__all__ = ["OtlpJsonFileLogExporter"]


class OtlpJsonFileLogExporter(JsonLinesFile, LogRecordExporter):
    """Write each exported batch of log records as one OTLP/JSON line, as the span file exporter does for spans
    (same ``path`` / ``stream``, rotation, one locked write per line, fork safety).

    Export never raises: an encoding or write error is logged as a warning that says how many log records were lost,
    and the batch returns ``FAILURE``.

    Example:
        >>> # logger_provider.add_log_record_processor(BatchLogRecordProcessor(OtlpJsonFileLogExporter("t.logs.jsonl")))
    """

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if self._shutdown:
            logger.warning("OtlpJsonFileLogExporter is shut down; dropping %d log records", len(batch))
            return LogRecordExportResult.FAILURE
        if not batch:
            return LogRecordExportResult.SUCCESS
        try:
            line = dumps_line(encode_otlp_json_logs(batch))
        except Exception as exc:  # the encoder is third-party code fed user bodies; never raise into the app
            logger.warning("Could not encode %d log records as OTLP/JSON, dropping them: %s", len(batch), exc)
            return LogRecordExportResult.FAILURE
        ok = self.write_batch(line, len(batch), "log records")
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # Every batch is flushed as it is written; nothing is buffered here.
        return True

    def shutdown(self) -> None:
        JsonLinesFile.shutdown(self)
