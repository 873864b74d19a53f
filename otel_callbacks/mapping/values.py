"""Value cleaning shared by the mapping modules: defensive accessors, OTel-safe numbers, strings cut to length and
made encodable, and the attributes every run carries (id, type, tags, metadata with its secrets taken out,
conversation id). Pure: no spans, no environment."""

from __future__ import annotations

import json
import math
from typing import Any
from uuid import UUID

from otel_callbacks import _semconv as sc
from otel_callbacks.mapping.content import ContentPolicy, RedactionError, Redactor, apply_redact, json_attribute
from otel_callbacks.mapping.secrets import DEFAULT_METADATA_POLICY, DROP, REDACT, REDACTED, MetadataPolicy, scrub
from otel_callbacks.mapping.text import safe_text, strip_url_credentials

Attributes = dict[str, Any]

_CONVERSATION_KEYS = ("thread_id", "session_id", "conversation_id")
_CONVERSATION_KEY_SET = frozenset(_CONVERSATION_KEYS)
# LangChain's own bookkeeping in run metadata: ``ls_*`` (provider, model, temperature, ... — mapped to gen_ai.*
# attributes above) and ``lc_versions``; and our trace hand-off to a LangGraph server (runs.handoff: it carries
# baggage, and is the span's own parent already). Recording them again per span costs attributes and adds nothing.
_SKIPPED_METADATA_PREFIXES = ("ls_", "lc_versions", "otel_trace_context")


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
    run_id: Any, run_type: str, tags: Any, metadata: Any, max_length: int, max_metadata: int, *,
    redact: Redactor | None = None, metadata_policy: MetadataPolicy | None = None,
) -> Attributes:
    """Attributes every run carries: id, type, tags, metadata and the conversation id (values already cut).

    Metadata goes through ``metadata_policy`` (default :data:`~otel_callbacks.mapping.secrets.DEFAULT_METADATA_POLICY`:
    values of keys that name secrets become ``[REDACTED]``), loses URL credentials, and each string in it passes
    through ``redact`` once; a value the hook fails on is left out. Every string is encodable (:func:`safe_text`).
    """
    policy = DEFAULT_METADATA_POLICY if metadata_policy is None else metadata_policy
    attrs: Attributes = {sc.LC_RUN_ID: _run_id_text(run_id),
                         sc.LC_RUN_TYPE: safe_text(run_type if len(run_type) <= max_length else run_type[:max_length])}
    if tags and isinstance(tags, list):
        clean = tuple([safe_text(t if len(t) <= max_length else t[:max_length]) for t in tags if isinstance(t, str)])
        if clean:
            attrs[sc.LC_TAGS] = clean
    if metadata and isinstance(metadata, dict):
        for key in () if _CONVERSATION_KEY_SET.isdisjoint(metadata) else _CONVERSATION_KEYS:
            value = metadata.get(key)
            if value is None or key in policy.deny:
                continue
            if isinstance(value, str) and value:
                conversation = _metadata_text(value, max_length, redact)
                if conversation:
                    attrs[sc.GEN_AI_CONVERSATION_ID] = conversation
                    break
            elif _int(value) is not None:
                attrs[sc.GEN_AI_CONVERSATION_ID] = str(value)
                break
        kept = 0
        plans = policy.plans
        for key, value in metadata.items():
            if type(key) is not str and not isinstance(key, str):
                continue
            plan = plans.get(key, _UNPLANNED)
            if plan is _UNPLANNED:
                plan = _plan(policy, key)
            if plan is None:
                continue
            if key == "checkpoint_ns" and metadata.get("langgraph_checkpoint_ns") == value:
                continue  # langchain-core's copy of what LangGraph records as langgraph_checkpoint_ns
            if kept >= max_metadata:
                attrs[sc.LC_METADATA_PREFIX + "dropped_count"] = len(metadata) - max_metadata
                break
            name, secret = plan
            if secret:
                converted: Any = None if value is None else REDACTED
            elif (type(value) is str and redact is None and len(value) <= max_length and value.isascii()
                  and "://" not in value):
                converted = value  # LangGraph's node names and checkpoint namespaces, inline
            elif type(value) is int and _INT64_MIN <= value <= INT64_MAX:
                converted = value  # LangGraph's step numbers, inline too
            else:
                converted = metadata_value(value, max_length, redact, policy)
            if converted is not None:
                attrs[name] = converted
                kept += 1
    return attrs


def _run_id_text(run_id: Any) -> str:
    """``str(run_id)``, spelled out for UUIDs: ``UUID.__str__`` is Python code and one of the larger costs of a span."""
    if type(run_id) is UUID:
        h = run_id.int.to_bytes(16, "big").hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return str(run_id)


_UNPLANNED = object()


def _plan(policy: MetadataPolicy, key: str) -> tuple[str, bool] | None:
    """What ``key`` becomes on a span: ``None`` (not recorded) or its attribute name and whether its value is
    redacted; kept in the policy (the same keys come back on every span; bounded: keys can come from user input)."""
    plan: tuple[str, bool] | None = None
    if not key.startswith(_SKIPPED_METADATA_PREFIXES):
        decided = policy.verdict(key)
        if decided != DROP:
            plan = (sc.LC_METADATA_PREFIX + safe_text(key), decided == REDACT)
    if len(policy.plans) < 4096:
        policy.plans[key] = plan
    return plan


def clip_attributes(attrs: Attributes, max_length: int) -> Attributes:
    """Cut every string (and string in a sequence) to ``max_length`` and make it encodable: names and ids come from
    user code too."""
    for key, value in attrs.items():
        kind = type(value)
        if kind is int or kind is float or kind is bool:
            continue
        if kind is str and len(value) <= max_length and value.isascii():
            continue  # the common case: nothing to cut, nothing to replace
        if isinstance(value, str):
            if len(value) > max_length:
                value = value[:max_length]
            attrs[key] = safe_text(value)
        elif isinstance(value, (list, tuple)) and any(isinstance(v, str) for v in value):
            attrs[key] = tuple(safe_text(v[:max_length]) if isinstance(v, str) else v for v in value)
    return attrs


def metadata_value(
    value: Any, max_length: int, redact: Redactor | None = None, policy: MetadataPolicy | None = None
) -> Any:
    """Primitives as they are, anything else as compact JSON; strings cut to ``max_length``.

    URL credentials are stripped, values under secret keys inside dicts (and models, dataclasses) are redacted, and
    every string passes through ``redact`` once; ``None`` when the hook fails (the value is left out).
    """
    kind = type(value)
    if kind is str:
        if redact is None and len(value) <= max_length and value.isascii() and "://" not in value:
            return value  # the common case, scanned twice and returned as it is
        return _metadata_text(value, max_length, redact)
    if kind is bool or kind is float or (kind is int and _INT64_MIN <= value <= INT64_MAX):
        return value
    if redact is None and (kind is tuple or kind is list):
        # LangGraph's tuples of node names, on every node's span and its model's: plain items hold no keys, so none
        # can hide a secret's name; one encode, no walk, and the same tuple again (by value and item types) cached.
        types = tuple(map(type, value))
        if _PLAIN.issuperset(types):
            key = (value, types) if kind is tuple and _HASHABLE_EXACT.issuperset(types) else None
            text = _PLAIN_JSON.get(key) if key is not None else None
            if text is None:
                try:
                    text = safe_text(strip_url_credentials(_METADATA_JSON.encode(value)))
                except (TypeError, ValueError, RecursionError):
                    text = ""
                if key is not None and text and len(text) <= 1024 and len(_PLAIN_JSON) < 1024:
                    _PLAIN_JSON[key] = text
            if text and len(text) <= max_length:
                return text
    if isinstance(value, str):
        return _metadata_text(value, max_length, redact)
    if isinstance(value, bool | float) or _int(value) is not None:
        return value
    if value is None:
        return None
    if isinstance(value, int):  # beyond int64: as text, which str() refuses past 4300 digits
        return _describe(value)[:max_length]
    # Dicts, models and objects may hold secrets under their keys; the rest is cut inside the strings so the value
    # stays valid JSON.
    content = ContentPolicy(capture=True, max_length=max_length, redact=redact)
    return json_attribute(scrub(value, DEFAULT_METADATA_POLICY if policy is None else policy), content)


_PLAIN = frozenset({str, int, float, bool, type(None)})
# Item types whose equal values encode alike (0.0 == -0.0, and NaN is never equal to itself): float is left out.
_HASHABLE_EXACT = frozenset({str, int, bool, type(None)})
# Plain tuples by (value, item types) -> their JSON text; bounded, entries kept small.
_PLAIN_JSON: dict[tuple[tuple[Any, ...], tuple[type, ...]], str] = {}


def _metadata_text(value: str, max_length: int, redact: Redactor | None) -> str | None:
    """A metadata string: credentials out of its URLs (before the cut, which could part a password from its "@"),
    cut, redacted once, cut again if the hook lengthened it, encodable. ``None`` when the hook fails."""
    value = strip_url_credentials(value)
    if len(value) > max_length:
        value = value[:max_length]
    if redact is not None:
        try:
            value = apply_redact(redact, value)
        except RedactionError:
            return None
        if len(value) > max_length:
            value = value[:max_length]
    return safe_text(value)


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
