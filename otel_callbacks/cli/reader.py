"""Read OTLP/JSON lines into span records for ``otel-callbacks view``, one line at a time.

A line is parsed with ``json.loads``, walked by :mod:`otel_callbacks.cli.otlp_records` and dropped; only the records
stay. Lines that walker is unsure about go through the protobuf decoder that ``otel-callbacks send`` uses, so both
commands report the same lines as malformed, with the same messages.

With a trace id prefix, a line whose spans all carry well-formed hex trace ids of other traces is only parsed as
JSON, not checked field by field: ``view --trace`` still reports lines that are not JSON or not an OTLP/JSON
object, but not a bad field in a line that holds none of the trace's spans.

Example:
    >>> records, errors = read_records(['{"resourceSpans": []}', "not json"])
    >>> len(records), errors[0][0]
    (0, 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from otel_callbacks.cli.lines import LineError, load_line, request_error
from otel_callbacks.cli.otlp_records import Unsure, records_from_data
from otel_callbacks.cli.tree import SHOWN_KEYS, SpanRecord

_HEX = "0123456789abcdefABCDEF"


def read_records(
    lines: Iterable[str], *, trace_prefix: str | None = None
) -> tuple[list[SpanRecord], list[tuple[int, str]]]:
    """Span records (only ``SHOWN_KEYS`` attributes) and ``(line_number, problem)`` per malformed line.

    ``trace_prefix`` (lowercase hex) keeps only the spans whose trace id starts with it.
    """
    records: list[SpanRecord] = []
    errors: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.extend(_line_records(line, trace_prefix))
        except LineError as exc:
            errors.append((number, str(exc)))
    return records, errors


def _line_records(line: str, trace_prefix: str | None) -> list[SpanRecord]:
    # A function of its own so each parsed line is freed before the next is parsed: while it lives, the next parse
    # cannot reuse its memory and pays for fresh pages (a third more time than json.loads alone).
    data = load_line(line)
    if trace_prefix is None:
        return _records(data)
    if not _may_hold(data, trace_prefix):
        return []
    return [rec for rec in _records(data) if rec.trace_id.startswith(trace_prefix)]


def _records(data: Any) -> list[SpanRecord]:
    try:
        return records_from_data(data)
    except Unsure:
        pass
    from otel_callbacks.setup.exporters.otlp_json import decode_request, records_from_request

    try:
        request = decode_request(data)
    except (ValueError, RecursionError) as exc:
        raise request_error(exc) from None
    return [_shown_only(rec) for rec in records_from_request(request)]


def _shown_only(rec: SpanRecord) -> SpanRecord:
    # Same record as the walker would give: the tree reads no other attribute, and big files are held whole.
    attributes = {key: value for key, value in rec.attributes.items() if key in SHOWN_KEYS}
    return SpanRecord(rec.trace_id, rec.span_id, rec.parent_span_id, rec.name, rec.start_ns, rec.end_ns,
                      rec.status_code, rec.status_message, attributes, rec.service_name)


def _may_hold(data: Any, prefix: str) -> bool:
    """False only when every span of the line has a hex trace id that does not start with ``prefix``."""
    try:
        for resource_spans in data["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    trace_id = span["traceId"]
                    if (type(trace_id) is not str or len(trace_id) != 32 or trace_id.strip(_HEX)
                            or trace_id.lower().startswith(prefix)):
                        return True
    except (KeyError, TypeError, IndexError):  # an odd shape: the full decode decides and reports
        return True
    return False
