"""Pure mapping from LangChain callback arguments to span names, kinds and attributes.

Type checks use ``dict``, not the ``Mapping`` ABC: LangChain passes plain dicts, and ABC instance checks are the
single largest cost of this module on the per-span hot path. Anything else is treated as absent.

"Where is the tool span named?" — here. Nothing in this module touches spans, context, the clock, the environment or
I/O, and nothing raises on odd shapes: LangChain passes ``None`` where dicts are expected, ``serialized=None`` for
LangGraph nodes, and providers differ in where they put model names and usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.trace import SpanKind

from otel_callbacks import _semconv as sc
from otel_callbacks.mapping.text import safe_text
from otel_callbacks.mapping.values import Attributes, _float, _int, _str

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


def provider_name(ls_provider: Any) -> str | None:
    """Semconv ``gen_ai.provider.name`` for LangChain's ``ls_provider`` metadata value."""
    if not isinstance(ls_provider, str) or not ls_provider:
        return None
    return _PROVIDERS.get(ls_provider.lower()) or safe_text(ls_provider)


def serialized_name(serialized: Any, name: Any = None) -> str:
    """The run's name as LangChain's tracers compute it: ``name=``, then ``serialized['name']``, then the class.

    Span names are built from it, and an unencodable span name made the OTLP encoder drop the whole batch: the
    result is always encodable (:func:`~otel_callbacks.mapping.text.safe_text`).
    """
    if isinstance(name, str) and name:
        return safe_text(name)
    if isinstance(serialized, dict):
        s_name = serialized.get("name")
        if isinstance(s_name, str) and s_name:
            return safe_text(s_name)
        ids = serialized.get("id")
        if isinstance(ids, list | tuple) and ids and isinstance(ids[-1], str):
            return safe_text(ids[-1])
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
    """The requested model: invocation params, then ``ls_model_name`` metadata, then constructor kwargs.

    Encodable: it names the span and labels the metrics."""
    model = _first_str(invocation_params, _MODEL_KEYS, _MODEL_KEY_SET)
    if model is None and isinstance(metadata, dict):
        model = _str(metadata.get("ls_model_name"))
    if model is None:
        model = _first_str(_serialized_kwargs(serialized), _MODEL_KEYS, _MODEL_KEY_SET)
    return model if model is None else safe_text(model)


def server_address(serialized: Any, invocation_params: Any) -> tuple[str, int] | None:
    """Host and port of the model endpoint when the client's base URL is known.

    Only the host is kept, never the userinfo (``https://user:key@host`` gives ``host``), nor path or query.
    """
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
            return safe_text(host), port or (80 if parts.scheme == "http" else 443)
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


_DEFAULT_GRAPH_NAME = "LangGraph"


def chain_span(name: str, metadata: Any, tags: Any, serialized: Any, *, root: bool = False,
               ) -> tuple[str, SpanKind, Attributes]:
    """Name, kind and operation attributes of a chain run: an agent, a LangGraph workflow root, or a plain chain.

    ``root``: the run has no parent run here; a graph served by a LangGraph server is a root although RemoteGraph
    forwards the calling node's ``langgraph_*`` metadata with it."""
    meta = metadata if isinstance(metadata, dict) else {}
    if _is_unnamed_agent(name, meta):
        # create_agent without name=: "LangGraph" is LangGraph's default graph name, not the agent's.
        return sc.OP_INVOKE_AGENT, SpanKind.INTERNAL, {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT}
    if _is_agent(name, meta, tags, serialized):
        return f"{sc.OP_INVOKE_AGENT} {name}", SpanKind.INTERNAL, {
            sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT,
            sc.GEN_AI_AGENT_NAME: name,
        }
    if meta.get("ls_integration") == "langgraph" and (root or "langgraph_node" not in meta):
        return f"{sc.OP_INVOKE_WORKFLOW} {name}", SpanKind.INTERNAL, {
            sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_WORKFLOW,
            sc.GEN_AI_WORKFLOW_NAME: name,
        }
    return name, SpanKind.INTERNAL, {}


def _is_unnamed_agent(name: str, meta: Mapping[str, Any]) -> bool:
    """The graph run of ``create_agent(model, tools)`` made without a name: marked as create_agent's, with no
    agent name, under LangGraph's default graph name (its nodes have names of their own)."""
    return (name == _DEFAULT_GRAPH_NAME and meta.get("ls_integration") == "langchain_create_agent"
            and "lc_agent_name" not in meta)


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
