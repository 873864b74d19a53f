"""What changes on spans and events with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``.

The default stays the GenAI conventions v1.41.0. The opt-in follows open-telemetry/semantic-conventions-genai as its
migration guide from v1.41.0 lists the changes (``docs/gen-ai/non-normative/migration.md``, read at commit
32c328e; the repository had no release when read): the renamed attributes and types below, applied to what the
mapping built for v1.41. Metric names are in ``emit.metrics``; the proposed agent lifecycle events in
``handler.graph``. Both sets of names live in ``_semconv``.
"""

from __future__ import annotations

from typing import Any

from otel_callbacks import _semconv as sc

# v1.41 name -> latest name (migration guide: "Inference span and event attributes").
_RENAMED = ((sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),)


def model_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    """A model span's attributes, renamed and retyped in place: ``cache_write`` for ``cache_creation``, an int
    ``gen_ai.request.top_k`` (a double in v1.41)."""
    for old, new in _RENAMED:
        if old in attrs:
            attrs[new] = attrs.pop(old)
    top_k = attrs.get(sc.GEN_AI_REQUEST_TOP_K)
    if isinstance(top_k, float):
        if top_k.is_integer():
            attrs[sc.GEN_AI_REQUEST_TOP_K] = int(top_k)
        else:
            del attrs[sc.GEN_AI_REQUEST_TOP_K]
    return attrs


def output_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Output messages without ``finish_reason`` (deprecated there for ``gen_ai.response.finish_reasons``)."""
    return [{k: v for k, v in message.items() if k != "finish_reason"} for message in messages]
