"""Span records straight from one parsed OTLP/JSON line, for ``otel-callbacks view``.

Why not ``records_from_request(decode_request(data))``: that copies the whole line, hands it to protobuf's pure-Python
JSON parser and then reads every field back out of the message, which is most of what ``view`` cost on a big file.
This walks the parsed dicts once and keeps only what the tree shows (ids, name, times, status, the attributes in
``SHOWN_KEYS``, service name).

It must accept and reject exactly the lines protobuf's parser does, or ``view`` and ``send`` would disagree about
which lines are malformed. So every field the parser would read is checked here the way it checks it, for the shapes
writers actually produce (hex ids, integer enums, int64 as decimal strings, ...); at anything else (base64 ids, enum
names, a field under its proto name, bytes values, surrogates, a non-finite double, a value of a type we
do not check) :class:`Unsure` is raised and the caller decodes that line with the protobuf decoder, which then
decides, with its own error message.
"""

from __future__ import annotations

import re
from collections.abc import Container
from types import MappingProxyType
from typing import Any

from otel_callbacks.cli.otlp_fields import (
    ANY_VALUE,
    EVENT,
    FIELD_NAMES,
    KEY_VALUE,
    LINK,
    REQUEST,
    RESOURCE,
    RESOURCE_SPANS,
    SCOPE,
    SCOPE_SPANS,
    SPAN,
    SPAN_COMMON,
    STATUS,
    VALUES,
)
from otel_callbacks.cli.tree import SERVICE_NAME, SHOWN_KEYS, SpanRecord

_HEX = "0123456789abcdefABCDEF"
_NO_ATTRIBUTES: Any = MappingProxyType({})
# The parser rejects strings with surrogates (unpaired ones itself, paired ones when encoding them as UTF-8); the
# walker leaves any string holding one to it. A surrogate is not ASCII, and str.isascii() reads a flag, so only
# non-ASCII strings pay for the search.
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_DEPTH = 16  # nesting of array/kvlist values handled here; deeper ones go to the parser and its depth limit

_U32, _U64, _I64 = 1 << 32, 1 << 64, 1 << 63

# SpanRecord is frozen, so its generated __init__ sets each field through object.__setattr__, which costs more than
# the rest of building a record; its slot descriptors set the same fields directly. (A field added to SpanRecord and
# not set here fails the tests comparing these records with the protobuf decoder's.)
_new = object.__new__
_set_trace_id, _set_span_id, _set_parent_span_id, _set_name, _set_start_ns, _set_end_ns = (
    getattr(SpanRecord, name).__set__
    for name in ("trace_id", "span_id", "parent_span_id", "name", "start_ns", "end_ns"))
_set_status_code, _set_status_message, _set_attributes, _set_service_name = (
    getattr(SpanRecord, name).__set__ for name in ("status_code", "status_message", "attributes", "service_name"))


class Unsure(Exception):
    """The line holds something this walker does not check exactly; the protobuf decoder must decide."""


def records_from_data(data: Any) -> list[SpanRecord]:
    """The records of one parsed line, each with only its ``SHOWN_KEYS`` attributes.

    Raises:
        Unsure: decode this line with the protobuf decoder instead (it may be valid or not).
    """
    if type(data) is not dict or "resourceSpans" not in data:
        raise Unsure
    _fields(data, REQUEST)
    records: list[SpanRecord] = []
    # The spans of a line share a few trace ids and names; one string each keeps a big file's records smaller.
    same: dict[str, str] = {}
    for resource_spans in _list(data["resourceSpans"]):
        _fields(_dict(resource_spans), RESOURCE_SPANS)
        _string(resource_spans.get("schemaUrl"))
        service = None
        resource = resource_spans.get("resource")
        if resource is not None:
            _fields(_dict(resource), RESOURCE)
            _uint(resource.get("droppedAttributesCount"), _U32)
            value = _attributes(resource.get("attributes"), (SERVICE_NAME,)).get(SERVICE_NAME)
            service = str(value) if value is not None else None
        for scope_spans in _list(resource_spans.get("scopeSpans")):
            _fields(_dict(scope_spans), SCOPE_SPANS)
            _string(scope_spans.get("schemaUrl"))
            scope = scope_spans.get("scope")
            if scope is not None:
                _fields(_dict(scope), SCOPE)
                _string(scope.get("name"))
                _string(scope.get("version"))
                _uint(scope.get("droppedAttributesCount"), _U32)
                _attributes(scope.get("attributes"), ())
            records.extend(_span(span, service, same) for span in _list(scope_spans.get("spans")))
    return records


def _span(span: Any, service: str | None, same: dict[str, str]) -> SpanRecord:
    if type(span) is not dict:
        raise Unsure
    if not SPAN_COMMON.issuperset(span):
        _fields(span, SPAN)
        _span_rest(span)
    get = span.get
    trace_id = _id(get("traceId"), 32)
    trace_id = same.setdefault(trace_id, trace_id)
    span_id = _id(get("spanId"), 16)
    parent = get("parentSpanId")
    if parent is not None and parent != "":
        parent = _id(parent, 16)
        if not parent.strip("0"):  # an all-zero parent id means "root", as in records_from_request
            parent = None
    else:
        parent = None
    flags = get("flags")
    if flags is not None and not (type(flags) is int and 0 <= flags < _U32):
        _uint(flags, _U32)
    name = _string(get("name"))
    name = same.setdefault(name, name)
    kind = get("kind")
    if kind is not None and (type(kind) is not int or not 0 <= kind <= 5):
        raise Unsure
    start = _uint(get("startTimeUnixNano"), _U64)
    end = _uint(get("endTimeUnixNano"), _U64)
    code, message = 0, ""
    status = get("status")
    if status:
        _fields(_dict(status), STATUS)
        message = _string(status.get("message"))
        code = status.get("code")
        if code is None:
            code = 0
        elif type(code) is not int or not 0 <= code <= 2:
            raise Unsure
    elif status is not None:
        _dict(status)
    attributes = _attributes(get("attributes"), SHOWN_KEYS)
    record = _new(SpanRecord)
    _set_trace_id(record, trace_id)
    _set_span_id(record, span_id)
    _set_parent_span_id(record, parent)
    _set_name(record, name)
    _set_start_ns(record, start)
    _set_end_ns(record, end)
    _set_status_code(record, code)
    _set_status_message(record, message)
    _set_attributes(record, attributes or _NO_ATTRIBUTES)
    _set_service_name(record, service)
    return record


def _span_rest(span: dict[str, Any]) -> None:
    """The span fields the tree does not show, checked only when present (most spans have none of them)."""
    get = span.get
    _string(get("traceState"))
    for key in ("droppedAttributesCount", "droppedEventsCount", "droppedLinksCount"):
        _uint(get(key), _U32)
    for event in _list(get("events")):
        _fields(_dict(event), EVENT)
        _uint(event.get("timeUnixNano"), _U64)
        _string(event.get("name"))
        _uint(event.get("droppedAttributesCount"), _U32)
        _attributes(event.get("attributes"), ())
    for link in _list(get("links")):
        _fields(_dict(link), LINK)
        for key, length in (("traceId", 32), ("spanId", 16)):
            value = link.get(key)
            if value is not None and value != "":
                _id(value, length)
        _string(link.get("traceState"))
        _uint(link.get("flags"), _U32)
        _uint(link.get("droppedAttributesCount"), _U32)
        _attributes(link.get("attributes"), ())


def _attributes(value: Any, keep: Container[str], depth: int = 0) -> dict[str, Any]:
    """Check a list of KeyValue and return the converted values of the keys in ``keep`` (the last one wins)."""
    kept: dict[str, Any] = {}
    for kv in _list(value):
        # Inline for the shapes nearly every attribute has; anything else takes the general path below.
        if type(kv) is dict and len(kv) == 2:
            key, item = kv.get("key"), kv.get("value")
            if type(key) is str and key.isascii() and type(item) is dict and len(item) == 1:
                text = item.get("stringValue")
                if type(text) is str and text.isascii():
                    if key in keep:
                        kept[key] = text
                    continue
                number = item.get("intValue")
                if type(number) is str and number.isdigit() and number.isascii() and len(number) < 19:
                    if key in keep:
                        kept[key] = int(number)
                    continue
        if type(kv) is not dict:
            raise Unsure
        if len(kv) != 2 or "key" not in kv or "value" not in kv:
            _fields(kv, KEY_VALUE)
        key = kv.get("key")
        key = "" if key is None else _string(key)
        converted = _any(kv.get("value"), depth)
        if key in keep:
            kept[key] = converted
    return kept


def _any(value: Any, depth: int) -> Any:
    """Check one AnyValue and convert it as ``otlp_json.any_value`` does (arrays to tuples, kvlists to dicts)."""
    if value is None:
        return None
    if type(value) is not dict:
        raise Unsure
    if len(value) == 1:
        for kind in value:
            item = value[kind]
        if kind not in ANY_VALUE:  # bytes, string-table indexes, a proto name, an extension, or no field at all
            if kind in FIELD_NAMES or kind[:1] == "[" or _odd_key(kind):
                raise Unsure
            return None  # a key naming no field: the parser ignores it and the value stays unset
    else:
        _fields(value, ANY_VALUE)
        present = [kind for kind in ANY_VALUE if value.get(kind) is not None]
        if not present:
            return None
        if len(present) > 1:
            raise Unsure
        kind = present[0]
        item = value[kind]
    if item is None:
        return None
    kind_type = type(item)
    if kind == "stringValue" and kind_type is str:
        return _string(item)
    if kind == "intValue":
        if kind_type is str:
            digits = item[1:] if item[:1] == "-" else item
            if not (digits.isdigit() and digits.isascii() and len(digits) <= 20):
                raise Unsure
            item = int(item)
        elif kind_type is not int:
            raise Unsure
        if not -_I64 <= item < _I64:
            raise Unsure
        return item
    if kind == "boolValue" and kind_type is bool:
        return item
    if kind == "doubleValue" and kind_type is float:
        if item != item or item in (float("inf"), float("-inf")):
            raise Unsure
        return item
    if depth < _MAX_DEPTH and kind_type is dict:
        if kind == "arrayValue":
            _fields(item, VALUES)
            values = []
            for element in _list(item.get("values")):
                if element is None:  # a null element of a repeated field is a parse error
                    raise Unsure
                if type(element) is dict and len(element) == 1:
                    text = element.get("stringValue")
                    if type(text) is str and text.isascii():
                        values.append(text)
                        continue
                values.append(_any(element, depth + 1))
            return tuple(values)
        if kind == "kvlistValue":
            _fields(item, VALUES)
            return _attributes(item.get("values"), _EVERY_KEY, depth + 1)
    raise Unsure


class _EveryKey:
    """``keep`` for a kvlist, whose keys are all kept."""

    def __contains__(self, key: object) -> bool:
        return True


_EVERY_KEY = _EveryKey()


def _fields(obj: dict[str, Any], handled: frozenset[str]) -> None:
    if handled.issuperset(obj):
        return
    for key in obj:
        if key not in handled and (key in FIELD_NAMES or key[:1] == "[" or _odd_key(key)):
            raise Unsure  # even for null: it clears a field


def _odd_key(key: str) -> bool:
    # protobuf looks every key up by name, and a key with a surrogate fails in that lookup rather than being ignored
    return not key.isascii() and _SURROGATE.search(key) is not None


def _dict(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise Unsure
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if type(value) is not list:
        raise Unsure
    return value


def _id(value: Any, length: int) -> str:
    if type(value) is not str or len(value) != length or value.strip(_HEX):
        raise Unsure
    return value.lower()


def _string(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is not str or (not value.isascii() and _SURROGATE.search(value)):
        raise Unsure
    return value


def _uint(value: Any, bound: int) -> int:
    if value is None:
        return 0
    if type(value) is str:
        if not (value.isdigit() and value.isascii() and len(value) <= 20):
            raise Unsure
        value = int(value)
    elif type(value) is not int:
        raise Unsure
    if not 0 <= value < bound:
        raise Unsure
    return value
