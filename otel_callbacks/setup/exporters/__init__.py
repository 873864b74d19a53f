"""Exporters: a console tree printer and an OTLP/JSON lines file writer for spans, a console summary for metrics.

Example:
    >>> from otel_callbacks.setup.exporters import ConsoleTreeSpanExporter, OtlpJsonFileSpanExporter
"""

from otel_callbacks.setup.exporters.console import ConsoleTreeSpanExporter
from otel_callbacks.setup.exporters.console_metrics import ConsoleMetricSummaryExporter, render_metrics
from otel_callbacks.setup.exporters.file import OtlpJsonFileSpanExporter
from otel_callbacks.setup.exporters.otlp_json import (
    decode_request,
    dumps_line,
    encode_otlp_json,
    parse_lines,
    records_from_request,
)

__all__ = [
    "ConsoleMetricSummaryExporter",
    "ConsoleTreeSpanExporter",
    "OtlpJsonFileSpanExporter",
    "decode_request",
    "dumps_line",
    "encode_otlp_json",
    "parse_lines",
    "records_from_request",
    "render_metrics",
]
