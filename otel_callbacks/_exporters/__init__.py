"""Span exporters: a console tree printer and an OTLP/JSON lines file writer.

Example:
    >>> from otel_callbacks._exporters import ConsoleTreeSpanExporter, OtlpJsonFileSpanExporter
"""

from otel_callbacks._exporters._console import ConsoleTreeSpanExporter
from otel_callbacks._exporters._file import OtlpJsonFileSpanExporter
from otel_callbacks._exporters._otlp_json import (
    decode_request,
    dumps_line,
    encode_otlp_json,
    parse_lines,
    records_from_request,
)

__all__ = [
    "ConsoleTreeSpanExporter",
    "OtlpJsonFileSpanExporter",
    "decode_request",
    "dumps_line",
    "encode_otlp_json",
    "parse_lines",
    "records_from_request",
]
