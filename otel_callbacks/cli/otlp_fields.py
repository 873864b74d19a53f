"""The OTLP trace message fields ``cli.otlp_records`` checks, and every field name protobuf's JSON parser knows.

Kept apart from the walker so a new opentelemetry-proto version is one list to update; tests/test_cli.py checks both
against the installed descriptors.
"""

from __future__ import annotations

# Keys handled per message (OTLP/JSON names). Every other field name of any OTLP trace message, in either spelling
# and in any opentelemetry-proto version we support, makes the walker unsure; keys that name no field at all are
# ignored, as the parser (with ignore_unknown_fields) ignores them.
REQUEST = frozenset({"resourceSpans"})
RESOURCE_SPANS = frozenset({"resource", "scopeSpans", "schemaUrl"})
RESOURCE = frozenset({"attributes", "droppedAttributesCount"})
SCOPE_SPANS = frozenset({"scope", "spans", "schemaUrl"})
SCOPE = frozenset({"name", "version", "attributes", "droppedAttributesCount"})
SPAN = frozenset({"traceId", "spanId", "traceState", "parentSpanId", "flags", "name", "kind", "startTimeUnixNano",
                   "endTimeUnixNano", "attributes", "droppedAttributesCount", "events", "droppedEventsCount",
                   "links", "droppedLinksCount", "status"})
# The span fields every span of ours has (or may have, like the parent id); others are checked by _span_rest.
SPAN_COMMON = frozenset({"traceId", "spanId", "parentSpanId", "flags", "name", "kind", "startTimeUnixNano",
                          "endTimeUnixNano", "attributes", "status"})
EVENT = frozenset({"timeUnixNano", "name", "attributes", "droppedAttributesCount"})
LINK = frozenset({"traceId", "spanId", "traceState", "attributes", "droppedAttributesCount", "flags"})
STATUS = frozenset({"message", "code"})
KEY_VALUE = frozenset({"key", "value"})
VALUES = frozenset({"values"})
ANY_VALUE = frozenset({"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue"})
HANDLED_FIELDS = {
    "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest": REQUEST,
    "opentelemetry.proto.trace.v1.ResourceSpans": RESOURCE_SPANS,
    "opentelemetry.proto.resource.v1.Resource": RESOURCE,
    "opentelemetry.proto.trace.v1.ScopeSpans": SCOPE_SPANS,
    "opentelemetry.proto.common.v1.InstrumentationScope": SCOPE,
    "opentelemetry.proto.trace.v1.Span": SPAN,
    "opentelemetry.proto.trace.v1.Span.Event": EVENT,
    "opentelemetry.proto.trace.v1.Span.Link": LINK,
    "opentelemetry.proto.trace.v1.Status": STATUS,
    "opentelemetry.proto.common.v1.KeyValue": KEY_VALUE,
    "opentelemetry.proto.common.v1.ArrayValue": VALUES,
    "opentelemetry.proto.common.v1.KeyValueList": VALUES,
    "opentelemetry.proto.common.v1.AnyValue": ANY_VALUE,
}
FIELD_NAMES = frozenset({
    "resourceSpans", "resource_spans", "resource", "scopeSpans", "scope_spans", "schemaUrl", "schema_url",
    "attributes", "droppedAttributesCount", "dropped_attributes_count", "entityRefs", "entity_refs",
    "scope", "spans", "name", "version", "traceId", "trace_id", "spanId", "span_id", "traceState", "trace_state",
    "parentSpanId", "parent_span_id", "flags", "kind", "startTimeUnixNano", "start_time_unix_nano",
    "endTimeUnixNano", "end_time_unix_nano", "events", "droppedEventsCount", "dropped_events_count", "links",
    "droppedLinksCount", "dropped_links_count", "status", "timeUnixNano", "time_unix_nano", "message", "code",
    "key", "value", "keyStrindex", "key_strindex", "values", "stringValue", "string_value", "boolValue",
    "bool_value", "intValue", "int_value", "doubleValue", "double_value", "arrayValue", "array_value",
    "kvlistValue", "kvlist_value", "bytesValue", "bytes_value", "stringValueStrindex", "string_value_strindex",
    "type", "idKeys", "id_keys", "descriptionKeys", "description_keys",
})
