"""Exporters that append OTLP/JSON lines to a file or a text stream: the line writer they share, and the span one.

The log-record exporter (``file_logs``) builds on :class:`JsonLinesFile` too; it lives apart so that writing spans
never loads the logs SDK.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from typing import IO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_callbacks.setup.exporters.otlp_json import dumps_line, encode_otlp_json
from otel_callbacks.setup.forksafe import renew_after_fork

logger = logging.getLogger(__name__)


class JsonLinesFile:
    """One line per batch, appended to a ``path`` (opened in append mode, closed on shutdown) or a ``stream`` (never
    closed by us), not both. Each line is written with one ``write`` call under a lock and flushed, so concurrent
    processes appending to the same file do not interleave lines. With ``max_bytes`` the file is rotated to
    ``path.1`` … ``path.N`` (``backup_count``) before a write would exceed the limit.

    :meth:`write_batch` never raises: a write error is logged as a warning that says how many ``what`` were lost.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        stream: IO[str] | None = None,
        max_bytes: int | None = None,
        backup_count: int = 1,
    ) -> None:
        if (path is None) == (stream is None):
            raise ValueError("give exactly one of path or stream")
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if backup_count < 1:
            raise ValueError(f"backup_count must be at least 1, got {backup_count}")
        self._path = os.fspath(path) if path is not None else None
        self._stream = stream
        self._file: IO[bytes] | None = None
        self._max_bytes = max_bytes
        self._backup_count = backup_count
        self._renew_after_fork()
        renew_after_fork(self)  # a child forked while a batch was being written would otherwise never write
        self._shutdown = False

    def _renew_after_fork(self) -> None:
        self._lock = threading.Lock()

    @property
    def path(self) -> str | None:
        """The file written to, or None when writing to a stream."""
        return self._path

    def write_batch(self, line: str, count: int, what: str) -> bool:
        """Append ``line`` (``count`` ``what``); False, with a warning, when it could not be written."""
        with self._lock:
            try:
                self._write(line)
            except Exception as exc:  # disk full, permission, closed stream: report the loss, keep the app alive
                logger.warning("Could not write %d %s to %s, dropping them: %s", count, what, self._target(), exc)
                self._close_file()  # reopen on the next batch, e.g. after the directory is recreated
                return False
        return True

    def _target(self) -> str:
        return self._path if self._path is not None else repr(self._stream)

    def _write(self, line: str) -> None:
        if self._stream is not None:
            self._stream.write(line)
            self._stream.flush()
            return
        data = line.encode("utf-8")
        if self._max_bytes is not None:
            self._rotate_if_needed(len(data))
        if self._file is None:
            assert self._path is not None
            self._file = open(self._path, "ab", buffering=0)  # noqa: SIM115 - kept open across batches
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0 :]

    def _rotate_if_needed(self, incoming: int) -> None:
        assert self._path is not None and self._max_bytes is not None
        try:
            size = os.path.getsize(self._path)
        except FileNotFoundError:
            return
        if size == 0 or size + incoming <= self._max_bytes:
            return
        self._close_file()
        for index in range(self._backup_count - 1, 0, -1):
            older = f"{self._path}.{index}"
            if os.path.exists(older):
                os.replace(older, f"{self._path}.{index + 1}")
        os.replace(self._path, f"{self._path}.1")

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # closing a broken file must not hide the original error
                self._file.close()
            self._file = None

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            self._close_file()


class OtlpJsonFileSpanExporter(JsonLinesFile, SpanExporter):
    """Write each exported batch as one ``{"resourceSpans": [...]}`` line (OTLP/JSON, hex ids, integer enums).

    The output is what the Collector's ``file`` exporter writes and its ``otlpjsonfile`` receiver reads; view it with
    ``otel-callbacks view FILE``. Give a ``path`` (opened in append mode, closed on shutdown) or a ``stream``
    (never closed by us), not both. Each line is written with one ``write`` call under a lock and flushed, so
    concurrent processes appending to the same file do not interleave lines. With ``max_bytes`` the file is rotated
    to ``path.1`` … ``path.N`` (``backup_count``) before a write would exceed the limit.

    Export never raises: an encoding or write error is logged as a warning that says how many spans were lost, and
    the batch returns ``FAILURE``.

    Example:
        >>> # provider.add_span_processor(BatchSpanProcessor(OtlpJsonFileSpanExporter("traces.jsonl")))
    """

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            logger.warning("OtlpJsonFileSpanExporter is shut down; dropping %d spans", len(spans))
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            line = dumps_line(encode_otlp_json(spans))
        except Exception as exc:  # the encoder is third-party code fed user attributes; never raise into the app
            logger.warning("Could not encode %d spans as OTLP/JSON, dropping them: %s", len(spans), exc)
            return SpanExportResult.FAILURE
        ok = self.write_batch(line, len(spans), "spans")
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # Every batch is flushed as it is written; nothing is buffered here.
        return True

    def shutdown(self) -> None:
        JsonLinesFile.shutdown(self)
