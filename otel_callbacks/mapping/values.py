"""Value cleaning shared by the mapping modules: defensive accessors, OTel-safe numbers, strings cut to length, and
the attributes every run carries (id, type, tags, metadata, conversation id). Pure: no spans, no environment."""

from __future__ import annotations

import json
import math
from typing import Any

from otel_callbacks import _semconv as sc
from otel_callbacks.mapping.content import ContentPolicy, json_attribute

Attributes = dict[str, Any]

_CONVERSATION_KEYS = ("thread_id", "session_id", "conversation_id")
# LangChain's own bookkeeping in run metadata: ``ls_*`` (provider, model, temperature, ... — mapped to gen_ai.*
# attributes above) and ``lc_versions``. Recording them again per span costs attributes and adds nothing.
_SKIPPED_METADATA_PREFIXES = ("ls_", "lc_versions")


def _get(obj: Any, key: str) -> Any:
    """``obj[key]`` for mappings, ``obj.key`` otherwise, ``None`` when absent or failing."""
    if isinstance(obj, dict):
        return obj.get(key)
    try:
        return getattr(obj, key, None)
    except Exception:
        return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _int(value: Any) -> int | None:
    """An int an OTLP attribute can carry (int64); ``None`` otherwise, so exporters never drop it."""
    if isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= INT64_MAX:
        return value
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


def run_attributes(
    run_id: Any, run_type: str, tags: Any, metadata: Any, max_length: int, max_metadata: int
) -> Attributes:
    """Attributes every run carries: id, type, tags, metadata and the conversation id (values already cut)."""
    attrs: Attributes = {sc.LC_RUN_ID: str(run_id),
                         sc.LC_RUN_TYPE: run_type if len(run_type) <= max_length else run_type[:max_length]}
    if tags and isinstance(tags, list):
        clean = tuple([t if len(t) <= max_length else t[:max_length] for t in tags if isinstance(t, str)])
        if clean:
            attrs[sc.LC_TAGS] = clean
    if metadata and isinstance(metadata, dict):
        for key in _CONVERSATION_KEYS:
            value = metadata.get(key)
            if value is None:
                continue
            if isinstance(value, str) and value:
                attrs[sc.GEN_AI_CONVERSATION_ID] = value[:max_length]
                break
            if _int(value) is not None:
                attrs[sc.GEN_AI_CONVERSATION_ID] = str(value)
                break
        kept = 0
        for key, value in metadata.items():
            if not isinstance(key, str) or key.startswith(_SKIPPED_METADATA_PREFIXES):
                continue
            if kept >= max_metadata:
                attrs[sc.LC_METADATA_PREFIX + "dropped_count"] = len(metadata) - max_metadata
                break
            converted = metadata_value(value, max_length)
            if converted is not None:
                attrs[sc.LC_METADATA_PREFIX + key] = converted
                kept += 1
    return attrs


def clip_attributes(attrs: Attributes, max_length: int) -> Attributes:
    """Cut every string (and string in a sequence) to ``max_length``: names and ids come from user code too."""
    for key, value in attrs.items():
        if isinstance(value, str):
            if len(value) > max_length:
                attrs[key] = value[:max_length]
        elif isinstance(value, (list, tuple)) and any(isinstance(v, str) and len(v) > max_length for v in value):
            attrs[key] = tuple(v[:max_length] if isinstance(v, str) else v for v in value)
    return attrs


def metadata_value(value: Any, max_length: int) -> Any:
    """Primitives as they are, anything else as compact JSON; strings cut to ``max_length``."""
    kind = type(value)
    if kind is str:
        return value if len(value) <= max_length else value[:max_length]
    if kind is bool or kind is float or (kind is int and _INT64_MIN <= value <= INT64_MAX):
        return value
    if isinstance(value, str):
        return value if len(value) <= max_length else value[:max_length]
    if isinstance(value, bool | float) or _int(value) is not None:
        return value
    if value is None:
        return None
    if isinstance(value, int):  # beyond int64: as text, which str() refuses past 4300 digits
        return _describe(value)[:max_length]
    try:
        text = _METADATA_JSON.encode(value)
    except (TypeError, ValueError, RecursionError):
        text = json.dumps(_describe(value))
    if len(text) <= max_length:
        return text
    # Too long: cut inside the strings so the value stays valid JSON (rare, off the common path).
    return json_attribute(value, ContentPolicy(capture=True, max_length=max_length)) or ""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, set | frozenset):
        return list(obj)
    return _describe(obj)


# Built once: json.dumps with any non-default option makes a new JSONEncoder per call (LangGraph's tuple metadata
# is encoded on every node's span).
_METADATA_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _describe(obj: Any) -> str:
    if isinstance(obj, int) and not isinstance(obj, bool) and not _INT64_MIN <= obj <= INT64_MAX:
        return f"<int of {obj.bit_length()} bits>" if obj.bit_length() > 14000 else str(obj)
    try:
        return str(obj)
    except Exception:
        return f"<{type(obj).__name__}>"
