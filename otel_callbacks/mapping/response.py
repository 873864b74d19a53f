"""Pure extraction of a model run's outcome from its ``LLMResult``: response model and id, finish reasons, usage.

Streaming results carry no ``llm_output``; the merged message's ``response_metadata`` and ``usage_metadata`` do,
which is where this looks first (reading only ``llm_output`` loses the model and usage of streamed calls).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_callbacks import _semconv as sc
from otel_callbacks.mapping.text import safe_text
from otel_callbacks.mapping.values import Attributes, _get, _int, _str

# LangChain marks its own ids this way when the provider sent none; they are not the provider's response id.
_GENERATED_ID_PREFIXES = ("run-", "lc_run-", "lc_")
_TEXT_KEYS = (sc.GEN_AI_RESPONSE_MODEL, sc.GEN_AI_RESPONSE_ID)


def _usage_dict(message: Any) -> Mapping[str, Any] | None:
    usage = _get(message, "usage_metadata")
    return usage if isinstance(usage, dict) else None


def _count(source: Mapping[str, Any], *spellings: str) -> int | None:
    """The first token count present under any of the providers' spellings."""
    for key in spellings:
        value = _int(source.get(key))
        if value is not None:
            return value
    return None


def usage_attributes(usage: Mapping[str, Any]) -> Attributes:
    """Token counts of LangChain's ``UsageMetadata`` (or an OpenAI-style ``token_usage`` dict) as semconv attributes."""
    attrs: Attributes = {}
    inp = _count(usage, "input_tokens", "prompt_tokens")
    if inp is not None:
        attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = inp
    out = _count(usage, "output_tokens", "completion_tokens")
    if out is not None:
        attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = out
    in_details = usage.get("input_token_details") or usage.get("prompt_tokens_details")
    if isinstance(in_details, dict):
        # Zero cache and reasoning counts are the usual case and say nothing; they are left out.
        if cache_read := _count(in_details, "cache_read", "cached_tokens"):
            attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read
        if cache_creation := _count(in_details, "cache_creation"):
            attrs[sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_creation
    out_details = usage.get("output_token_details") or usage.get("completion_tokens_details")
    if isinstance(out_details, dict) and (reasoning := _count(out_details, "reasoning", "reasoning_tokens")):
        attrs[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning
    return attrs


def llm_response_attributes(response: Any) -> Attributes:
    """Response model, id, finish reasons and usage from an ``LLMResult``, streamed or not.

    Streaming results carry no ``llm_output``; the merged message's ``response_metadata`` and ``usage_metadata``
    do, which is where this looks first.
    """
    attrs: Attributes = {}
    finish_reasons: list[str] = []
    usage_total: dict[str, int] = {}
    generations = _get(response, "generations")
    for gen_list in generations if isinstance(generations, list) else ():
        for gen in gen_list if isinstance(gen_list, list) else ():
            message = _get(gen, "message")
            meta = _get(message, "response_metadata") if message is not None else None
            info = _get(gen, "generation_info")
            for source in (meta, info):
                if not isinstance(source, dict):
                    continue
                reason = _str(source.get("finish_reason")) or _str(source.get("stop_reason"))
                if reason:
                    finish_reasons.append(reason)
                    break
            if isinstance(meta, dict):
                model = _str(meta.get("model_name")) or _str(meta.get("model"))
                if model and sc.GEN_AI_RESPONSE_MODEL not in attrs:
                    attrs[sc.GEN_AI_RESPONSE_MODEL] = model
                resp_id = _str(meta.get("id"))
                if resp_id and sc.GEN_AI_RESPONSE_ID not in attrs:
                    attrs[sc.GEN_AI_RESPONSE_ID] = resp_id
            msg_id = _str(_get(message, "id")) if message is not None else None
            if msg_id and sc.GEN_AI_RESPONSE_ID not in attrs and not msg_id.startswith(_GENERATED_ID_PREFIXES):
                attrs[sc.GEN_AI_RESPONSE_ID] = msg_id
            usage = _usage_dict(message) if message is not None else None
            if usage:
                for key, value in usage_attributes(usage).items():
                    usage_total[key] = usage_total.get(key, 0) + value
    if finish_reasons:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(finish_reasons)
    llm_output = _get(response, "llm_output")
    if isinstance(llm_output, dict):
        model = _str(llm_output.get("model_name")) or _str(llm_output.get("model"))
        if model and sc.GEN_AI_RESPONSE_MODEL not in attrs:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = model
        if not usage_total:
            token_usage = llm_output.get("token_usage") or llm_output.get("usage")
            if isinstance(token_usage, dict):
                usage_total = usage_attributes(token_usage)
    attrs.update((k, v) for k, v in usage_total.items() if _int(v) is not None)
    # Provider strings label the metrics too, which are recorded before the span's attributes are cleaned.
    for key in _TEXT_KEYS:
        if key in attrs:
            attrs[key] = safe_text(attrs[key])
    if sc.GEN_AI_RESPONSE_FINISH_REASONS in attrs:
        attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(map(safe_text, attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS]))
    return attrs
