"""OTLP/JSON encoding for log export requests (``{"resourceLogs": [...]}``), the sibling of ``otlp_json`` for spans.

As for spans, the official protobuf encoder does the work (so attributes and bodies match what the OTLP log exporters
send) and only the id fields are rewritten: protobuf's canonical JSON writes bytes as base64, OTLP/JSON wants
lowercase hex. A line is what the Collector's ``file`` exporter writes for logs and its ``otlpjsonfile`` receiver
reads.

Example:
    >>> # line = dumps_line(encode_otlp_json_logs(records))
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format

from otel_callbacks.setup.exporters.otlp_json import dumps_line
from otel_callbacks.setup.logs import ReadableLogRecord, encode_logs

__all__ = ["dumps_line", "encode_otlp_json_logs"]

_ID_KEYS = ("traceId", "spanId")


def encode_otlp_json_logs(records: Sequence[ReadableLogRecord]) -> dict[str, Any]:
    """Encode SDK log records as one OTLP/JSON ``ExportLogsServiceRequest`` object (hex ids, integer enums).

    Example:
        >>> # data = encode_otlp_json_logs(exporter.get_finished_logs())
        >>> # data["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["eventName"]
    """
    data: dict[str, Any] = json_format.MessageToDict(encode_logs(records), use_integers_for_enums=True)
    for resource_logs in data.get("resourceLogs", ()):
        for scope_logs in resource_logs.get("scopeLogs", ()):
            for record in scope_logs.get("logRecords", ()):
                for key in _ID_KEYS:
                    if value := record.get(key):
                        record[key] = base64.b64decode(value).hex()
    return data
