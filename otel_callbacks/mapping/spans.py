"""Pure mapping from LangChain callback arguments to span names, kinds and attributes.

Type checks use ``dict``, not the ``Mapping`` ABC: LangChain passes plain dicts, and ABC instance checks are the
single largest cost of this module on the per-span hot path. Anything else is treated as absent.

"Where is the tool span named?" — here. Nothing in this module touches spans, context, the clock, the environment or
I/O, and nothing raises on odd shapes: LangChain passes ``None`` where dicts are expected, ``serialized=None`` for
LangGraph nodes, and providers differ in where they put model names and usage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.trace import SpanKind

from otel_callbacks import _semconv as sc
from otel_callbacks.mapping.content import ContentPolicy, json_attribute

Attributes = dict[str, Any]

# LangChain's ``ls_provider`` -> the semconv well-known ``gen_ai.provider.name``. Unknown providers keep their name.
_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "google_vertexai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "google_genai": "gcp.gen_ai",
    "google_gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "groq": "groq",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "x_ai": "x_ai",
    "ibm": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
}

# Request parameters as providers spell them in ``invocation_params`` -> semconv attribute.
_REQUEST_PARAMS: dict[str, str] = dict((
    ("temperature", sc.GEN_AI_REQUEST_TEMPERATURE),
    ("max_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_completion_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_output_tokens", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_tokens_to_sample", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("num_predict", sc.GEN_AI_REQUEST_MAX_TOKENS),
    ("top_p", sc.GEN_AI_REQUEST_TOP_P),
    ("top_k", sc.GEN_AI_REQUEST_TOP_K),
    ("frequency_penalty", sc.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", sc.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("seed", sc.GEN_AI_REQUEST_SEED),
    ("n", sc.GEN_AI_REQUEST_CHOICE_COUNT),
))
_LS_PARAMS = ("ls_temperature", "ls_max_tokens", "ls_top_p", "ls_top_k", "ls_seed")
_FLOAT_PARAMS = frozenset(
    {
        sc.GEN_AI_REQUEST_TEMPERATURE,
        sc.GEN_AI_REQUEST_TOP_P,
        sc.GEN_AI_REQUEST_TOP_K,
        sc.GEN_AI_REQUEST_FREQUENCY_PENALTY,
        sc.GEN_AI_REQUEST_PRESENCE_PENALTY,
    }
)
_MODEL_KEYS = ("model", "model_name", "model_id", "deployment_name", "azure_deployment", "repo_id")
_BASE_URL_KEYS = (
    "base_url",
    "openai_api_base",
    "api_base",
    "azure_endpoint",
    "anthropic_api_url",
    "endpoint_url",
    "endpoint",
)
_MODEL_KEY_SET = frozenset(_MODEL_KEYS)
_BASE_URL_KEY_SET = frozenset(_BASE_URL_KEYS)
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


def provider_name(ls_provider: Any) -> str | None:
    """Semconv ``gen_ai.provider.name`` for LangChain's ``ls_provider`` metadata value."""
    if not isinstance(ls_provider, str) or not ls_provider:
        return None
    return _PROVIDERS.get(ls_provider.lower(), ls_provider)


def serialized_name(serialized: Any, name: Any = None) -> str:
    """The run's name as LangChain's tracers compute it: ``name=``, then ``serialized['name']``, then the class."""
    if isinstance(name, str) and name:
        return name
    if isinstance(serialized, dict):
        s_name = serialized.get("name")
        if isinstance(s_name, str) and s_name:
            return s_name
        ids = serialized.get("id")
        if isinstance(ids, list | tuple) and ids and isinstance(ids[-1], str):
            return ids[-1]
    return "unknown"


def _serialized_kwargs(serialized: Any) -> Mapping[str, Any]:
    kwargs = serialized.get("kwargs") if isinstance(serialized, dict) else None
    return kwargs if isinstance(kwargs, dict) else {}


def _first_str(source: Any, keys: tuple[str, ...], present: frozenset[str]) -> str | None:
    """The first non-empty string among ``keys`` in dict ``source``; a set intersection skips absent keys fast."""
    if not isinstance(source, dict) or present.isdisjoint(source):
        return None
    for key in keys:
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def request_model(serialized: Any, invocation_params: Any, metadata: Any) -> str | None:
    """The requested model: invocation params, then ``ls_model_name`` metadata, then constructor kwargs."""
    model = _first_str(invocation_params, _MODEL_KEYS, _MODEL_KEY_SET)
    if model is None and isinstance(metadata, dict):
        model = _str(metadata.get("ls_model_name"))
    if model is None:
        model = _first_str(_serialized_kwargs(serialized), _MODEL_KEYS, _MODEL_KEY_SET)
    return model


def server_address(serialized: Any, invocation_params: Any) -> tuple[str, int] | None:
    """Host and port of the model endpoint when the client's base URL is known."""
    for source in (invocation_params, _serialized_kwargs(serialized)):
        url = _first_str(source, _BASE_URL_KEYS, _BASE_URL_KEY_SET)
        if url is None:
            continue
        try:
            parts = urlsplit(url if "//" in url else "//" + url)
            host, port = parts.hostname, parts.port
        except ValueError:
            continue
        if host:
            return host, port or (80 if parts.scheme == "http" else 443)
    return None


def llm_span(serialized: Any, invocation_params: Any, metadata: Any, *, chat: bool) -> tuple[str, Attributes]:
    """Name and sampling-relevant attributes of a model span (given at span start)."""
    op = sc.OP_CHAT if chat else sc.OP_TEXT_COMPLETION
    model = request_model(serialized, invocation_params, metadata)
    attrs: Attributes = {sc.GEN_AI_OPERATION_NAME: op}
    provider = provider_name(metadata.get("ls_provider")) if isinstance(metadata, dict) else None
    if provider:
        attrs[sc.GEN_AI_PROVIDER_NAME] = provider
    if model:
        attrs[sc.GEN_AI_REQUEST_MODEL] = model
    server = server_address(serialized, invocation_params)
    if server:
        attrs[sc.SERVER_ADDRESS], attrs[sc.SERVER_PORT] = server
    return (f"{op} {model}" if model else op), attrs


def llm_request_attributes(invocation_params: Any, metadata: Any) -> Attributes:
    """Request parameters (temperature, max tokens, stop sequences, ...) of a model run."""
    attrs: Attributes = {}
    params = invocation_params if isinstance(invocation_params, dict) else {}
    meta = metadata if isinstance(metadata, dict) else {}
    # Visit the keys present rather than probe all spellings; in the caller's order, so the first spelling wins.
    for key, value in params.items():
        if key in _REQUEST_PARAMS:
            _set_param(attrs, key, value)
    if meta:  # LangChain's ls_* copies, for what the params did not say
        for key in _LS_PARAMS:
            if key in meta:
                _set_param(attrs, key[3:], meta[key])
    if attrs.get(sc.GEN_AI_REQUEST_CHOICE_COUNT) == 1:
        del attrs[sc.GEN_AI_REQUEST_CHOICE_COUNT]  # the conventions record it only when != 1
    stop = params.get("stop") or params.get("stop_sequences") or meta.get("ls_stop")
    if isinstance(stop, str):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = (stop,)
    elif isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
        attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(stop)
    if params.get("stream") is True or params.get("streaming") is True:
        attrs[sc.GEN_AI_REQUEST_STREAM] = True
    return attrs


def _set_param(attrs: Attributes, key: str, value: Any) -> None:
    attr = _REQUEST_PARAMS[key]
    if attr in attrs:
        return
    converted = _float(value) if attr in _FLOAT_PARAMS else _int(value)
    if converted is not None:
        attrs[attr] = converted


def chain_span(name: str, metadata: Any, tags: Any, serialized: Any) -> tuple[str, SpanKind, Attributes]:
    """Name, kind and operation attributes of a chain run: an agent, a LangGraph workflow root, or a plain chain."""
    meta = metadata if isinstance(metadata, dict) else {}
    if _is_agent(name, meta, tags, serialized):
        return f"{sc.OP_INVOKE_AGENT} {name}", SpanKind.INTERNAL, {
            sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT,
            sc.GEN_AI_AGENT_NAME: name,
        }
    if meta.get("ls_integration") == "langgraph" and "langgraph_node" not in meta:
        return f"{sc.OP_INVOKE_WORKFLOW} {name}", SpanKind.INTERNAL, {
            sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_WORKFLOW,
            sc.GEN_AI_WORKFLOW_NAME: name,
        }
    return name, SpanKind.INTERNAL, {}


def _is_agent(name: str, meta: Mapping[str, Any], tags: Any, serialized: Any) -> bool:
    agent_name = meta.get("lc_agent_name")
    if agent_name is not None and agent_name == name and meta.get("ls_integration") == "langchain_create_agent":
        # Nodes of the agent graph inherit the metadata; only the graph's own run carries the agent's name.
        return not (isinstance(tags, list) and any(isinstance(t, str) and t.startswith("graph:step:") for t in tags))
    if isinstance(serialized, dict):
        ids = serialized.get("id")
        if isinstance(ids, list) and ids and ids[-1] == "AgentExecutor":
            return True
    return False


def tool_span(serialized: Any, name: Any, tool_call_id: Any) -> tuple[str, Attributes]:
    """Name and attributes of a tool run."""
    tool_name = serialized_name(serialized, name)
    attrs: Attributes = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
        sc.GEN_AI_TOOL_NAME: tool_name,
        sc.GEN_AI_TOOL_TYPE: "function",
    }
    description = _str(serialized.get("description")) if isinstance(serialized, dict) else None
    if description:
        attrs[sc.GEN_AI_TOOL_DESCRIPTION] = description
    call_id = _str(tool_call_id)
    if call_id:
        attrs[sc.GEN_AI_TOOL_CALL_ID] = call_id
    return f"{sc.OP_EXECUTE_TOOL} {tool_name}", attrs


def retriever_span(serialized: Any, name: Any, metadata: Any) -> tuple[str, Attributes]:
    """Name and attributes of a retriever run; the retriever's name is the data source."""
    source = serialized_name(serialized, name)
    attrs: Attributes = {sc.GEN_AI_OPERATION_NAME: sc.OP_RETRIEVAL, sc.GEN_AI_DATA_SOURCE_ID: source}
    provider = metadata.get("ls_vector_store_provider") if isinstance(metadata, dict) else None
    if isinstance(provider, str) and provider:
        attrs[sc.GEN_AI_PROVIDER_NAME] = provider
    return f"{sc.OP_RETRIEVAL} {source}", attrs


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


def error_type(error: BaseException) -> str:
    """``error.type``: the exception's class name, qualified when it is not a builtin."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def error_description(error: BaseException, limit: int = 256) -> str:
    """A short status description: ``Class: message`` on one line, never a traceback."""
    try:
        message = str(error)
    except Exception:
        message = ""
    message = " ".join(message.split())
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_control_flow(error: BaseException) -> bool:
    """LangGraph interrupts and handoffs (``GraphBubbleUp`` and subclasses) pause or redirect a graph; not errors."""
    return any(cls.__name__ == "GraphBubbleUp" for cls in type(error).__mro__)
