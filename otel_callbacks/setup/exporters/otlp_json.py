"""OTLP/JSON encoding and decoding for trace export requests.

Why not ``MessageToJson(encode_spans(...))`` as is: protobuf's canonical JSON writes bytes ids as base64 and may write
enum names, while OTLP/JSON (the Collector's ``file`` exporter / ``otlpjsonfile`` receiver, Jaeger's upload) wants
lowercase hex ids and integer enums. We reuse the official protobuf encoder, so attribute and event encoding matches
the OTLP exporters exactly, and only rewrite the id fields. Int64 values (``intValue``, ``*UnixNano``) stay strings,
which OTLP/JSON allows and protobuf's parser reads back.

Example:
    >>> # line = dumps_line(encode_otlp_json(spans)); request = decode_request(json.loads(line))
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace import ReadableSpan

from otel_callbacks.cli.lines import LineError, load_line, request_error
from otel_callbacks.cli.tree import SpanRecord

_ID_KEYS = ("traceId", "spanId", "parentSpanId")
_ID_LENGTHS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}


def encode_otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """Encode SDK spans as one OTLP/JSON ``ExportTraceServiceRequest`` object (``{"resourceSpans": [...]}``).

    Example:
        >>> # data = encode_otlp_json(exporter.get_finished_spans())
        >>> # data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]  -> '4bf92f3577b34da6a3ce929d0e0e4736'
    """
    data: dict[str, Any] = json_format.MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    _rewrite_ids(data, _b64_to_hex)
    return data


def dumps_line(data: dict[str, Any]) -> str:
    """Serialise one request as a single compact JSON line (with the trailing newline)."""
    return json.dumps(data, separators=(",", ":")) + "\n"


def decode_request(data: Any) -> ExportTraceServiceRequest:
    """Parse one OTLP/JSON object (hex or base64 ids, integer or named enums) into the protobuf request.

    Raises:
        ValueError: the object is not a valid OTLP/JSON trace request; the message says what is wrong.
    """
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object with 'resourceSpans', got {type(data).__name__}")
    if "resourceSpans" not in data:
        raise ValueError("no 'resourceSpans' key (is this an OTLP/JSON traces file?)")
    data = copy.deepcopy(data)
    _rewrite_ids(data, _hex_to_b64)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ValueError(str(exc)) from None
    return request


def records_from_request(request: ExportTraceServiceRequest) -> list[SpanRecord]:
    """Flatten a request into :class:`SpanRecord` objects for the tree renderer."""
    records: list[SpanRecord] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: any_value(kv.value) for kv in resource_spans.resource.attributes}
        service = resource.get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                records.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=_parent_hex(span.parent_span_id),
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=int(span.status.code),
                        status_message=span.status.message,
                        attributes={kv.key: any_value(kv.value) for kv in span.attributes},
                        service_name=str(service) if service is not None else None,
                    )
                )
    return records


def _parent_hex(raw: bytes) -> str | None:
    # Some producers write an all-zero parent id instead of omitting it; both mean "root".
    return raw.hex() if raw.strip(b"\0") else None


def any_value(value: AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` to the matching Python value (arrays become tuples, kvlists dicts)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _rewrite_ids(data: dict[str, Any], convert: Callable[[str, str], str]) -> None:
    # Ids live on spans and on their links; walk only those paths rather than every string in the document.
    for resource_spans in _list(data.get("resourceSpans")):
        scopes = _list(resource_spans.get("scopeSpans")) if isinstance(resource_spans, dict) else []
        for scope_spans in scopes:
            spans = _list(scope_spans.get("spans")) if isinstance(scope_spans, dict) else []
            for span in spans:
                if not isinstance(span, dict):
                    continue
                _convert_keys(span, convert)
                for link in _list(span.get("links")):
                    if isinstance(link, dict):
                        _convert_keys(link, convert)


def _convert_keys(obj: dict[str, Any], convert: Callable[[str, str], str]) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            obj[key] = convert(key, value)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _b64_to_hex(_key: str, value: str) -> str:
    return base64.b64decode(value).hex()


def _hex_to_b64(key: str, value: str) -> str:
    # OTLP/JSON ids are hex; protobuf's JSON parser wants base64. Accept base64 input too (protobuf-canonical files).
    if len(value) == 2 * _ID_LENGTHS[key]:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode("ascii")
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{key} {value!r} is neither {2 * _ID_LENGTHS[key]} hex digits nor base64") from None
    if len(raw) != _ID_LENGTHS[key]:
        raise ValueError(f"{key} {value!r} must be {_ID_LENGTHS[key]} bytes, got {len(raw)}")
    return value


def parse_lines(lines: Iterable[str]) -> tuple[list[ExportTraceServiceRequest], list[tuple[int, str]]]:
    """Parse OTLP/JSON lines (ours or the Collector ``file`` exporter's); blank lines are skipped.

    Returns the parsed requests and ``(line_number, problem)`` for each malformed line, so callers can show the good
    lines and still report the bad ones.

    Example:
        >>> requests, errors = parse_lines(['{"resourceSpans": []}', "not json"])
        >>> len(requests), errors[0][0]
        (1, 2)
    """
    requests: list[ExportTraceServiceRequest] = []
    errors: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = load_line(line)
        except LineError as exc:
            errors.append((number, str(exc)))
            continue
        try:
            requests.append(decode_request(data))
        except (ValueError, RecursionError) as exc:
            errors.append((number, str(request_error(exc))))
    return requests, errors
