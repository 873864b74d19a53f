"""The pure mapping from callback arguments to names and attributes, table by table."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from otel_callbacks.mapping import errors, values
from otel_callbacks.mapping import response as _response
from otel_callbacks.mapping import spans as m
from otel_callbacks.mapping.secrets import MetadataPolicy


@pytest.mark.parametrize(("ls_provider", "expected"), [
    ("openai", "openai"), ("anthropic", "anthropic"), ("azure", "azure.ai.openai"), ("bedrock", "aws.bedrock"),
    ("amazon_bedrock", "aws.bedrock"), ("google_vertexai", "gcp.vertex_ai"), ("google_genai", "gcp.gen_ai"),
    ("mistralai", "mistral_ai"), ("groq", "groq"), ("cohere", "cohere"), ("deepseek", "deepseek"),
    ("perplexity", "perplexity"), ("xai", "x_ai"), ("ibm", "ibm.watsonx.ai"), ("ollama", "ollama"),
    ("OpenAI", "openai"), (None, None), ("", None), (42, None),
])
def test_provider_name(ls_provider: Any, expected: str | None) -> None:
    assert m.provider_name(ls_provider) == expected


@pytest.mark.parametrize(("serialized", "params", "metadata", "expected"), [
    (None, {"model": "gpt-4o"}, None, "gpt-4o"),
    (None, {"model_name": "claude"}, {"ls_model_name": "other"}, "claude"),
    (None, {"_type": "fake"}, {"ls_model_name": "from-meta"}, "from-meta"),
    ({"kwargs": {"model_id": "anthropic.claude-v2"}}, None, None, "anthropic.claude-v2"),
    ({"kwargs": {"deployment_name": "my-deploy"}}, {}, {}, "my-deploy"),
    (None, {"model": ""}, None, None),
    ("not a dict", ["nor", "this"], 5, None),
])
def test_request_model(serialized: Any, params: Any, metadata: Any, expected: str | None) -> None:
    assert m.request_model(serialized, params, metadata) == expected


@pytest.mark.parametrize(("serialized", "params", "expected"), [
    ({"kwargs": {"openai_api_base": "http://127.0.0.1:8080/v1"}}, None, ("127.0.0.1", 8080)),
    ({"kwargs": {"base_url": "https://api.example.com/v1"}}, None, ("api.example.com", 443)),
    ({"kwargs": {"azure_endpoint": "https://x.openai.azure.com"}}, None, ("x.openai.azure.com", 443)),
    (None, {"base_url": "http://localhost/v1"}, ("localhost", 80)),
    ({"kwargs": {"base_url": "http://[::1]:99999/"}}, None, None),
    ({"kwargs": {}}, {}, None),
    (None, None, None),
])
def test_server_address(serialized: Any, params: Any, expected: Any) -> None:
    assert m.server_address(serialized, params) == expected


def test_llm_span_name_and_sampling_attributes() -> None:
    name, attrs = m.llm_span({"kwargs": {"base_url": "http://h:1"}}, {"model": "gpt-4o"}, {"ls_provider": "openai"},
                             chat=True)
    assert name == "chat gpt-4o"
    assert attrs == {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                     "gen_ai.request.model": "gpt-4o", "server.address": "h", "server.port": 1}
    assert m.llm_span(None, None, None, chat=False) == ("text_completion", {"gen_ai.operation.name": "text_completion"})


@pytest.mark.parametrize(("params", "metadata", "expected"), [
    ({"temperature": 0, "max_tokens": 10, "top_p": 1, "seed": 3, "frequency_penalty": 0.5, "presence_penalty": -1,
      "stop": ["a", "b"], "stream": True, "n": 2, "top_k": 5},
     None,
     {"gen_ai.request.temperature": 0.0, "gen_ai.request.max_tokens": 10, "gen_ai.request.top_p": 1.0,
      "gen_ai.request.seed": 3, "gen_ai.request.frequency_penalty": 0.5, "gen_ai.request.presence_penalty": -1.0,
      "gen_ai.request.stop_sequences": ("a", "b"), "gen_ai.request.stream": True, "gen_ai.request.choice.count": 2,
      "gen_ai.request.top_k": 5.0}),
    ({"max_completion_tokens": 7, "n": 1}, None, {"gen_ai.request.max_tokens": 7}),
    ({}, {"ls_temperature": 0.3, "ls_max_tokens": 9, "ls_stop": "END"},
     {"gen_ai.request.temperature": 0.3, "gen_ai.request.max_tokens": 9, "gen_ai.request.stop_sequences": ("END",)}),
    ({"temperature": "hot", "max_tokens": True, "stop": [1, 2]}, None, {}),
    (None, None, {}),
])
def test_llm_request_attributes(params: Any, metadata: Any, expected: dict[str, Any]) -> None:
    assert m.llm_request_attributes(params, metadata) == expected


@pytest.mark.parametrize(("name", "metadata", "tags", "serialized", "span_name", "op"), [
    ("calc", {"ls_integration": "langchain_create_agent", "lc_agent_name": "calc"}, [], None, "invoke_agent calc",
     "invoke_agent"),
    ("model", {"ls_integration": "langchain_create_agent", "lc_agent_name": "calc", "langgraph_node": "model"},
     ["graph:step:1"], None, "model", None),
    ("calc", {"ls_integration": "langchain_create_agent", "lc_agent_name": "calc"}, ["graph:step:3"], None, "calc",
     None),
    ("LangGraph", {"ls_integration": "langchain_create_agent"}, [], None, "invoke_agent", "invoke_agent"),
    ("model", {"ls_integration": "langchain_create_agent", "langgraph_node": "model"}, ["graph:step:1"], None,
     "model", None),
    ("AgentExecutor", {}, [], {"id": ["langchain", "agents", "AgentExecutor"]}, "invoke_agent AgentExecutor",
     "invoke_agent"),
    ("LangGraph", {"ls_integration": "langgraph"}, [], None, "invoke_workflow LangGraph", "invoke_workflow"),
    ("inc", {"ls_integration": "langgraph", "langgraph_node": "inc"}, ["graph:step:1"], None, "inc", None),
    ("RunnableSequence", None, None, None, "RunnableSequence", None),
])
def test_chain_span(name: str, metadata: Any, tags: Any, serialized: Any, span_name: str, op: str | None) -> None:
    got_name, kind, attrs = m.chain_span(name, metadata, tags, serialized)
    assert got_name == span_name
    assert kind == SpanKind.INTERNAL
    assert attrs.get("gen_ai.operation.name") == op


@pytest.mark.parametrize(("serialized", "name", "expected"), [
    ({"name": "search"}, None, "search"),
    (None, "node", "node"),
    ({"id": ["a", "b", "MyChain"]}, None, "MyChain"),
    ({"name": ""}, "", "unknown"),
    (None, None, "unknown"),
    ({"id": "oops"}, 3, "unknown"),
])
def test_serialized_name(serialized: Any, name: Any, expected: str) -> None:
    assert m.serialized_name(serialized, name) == expected


def test_tool_span() -> None:
    assert m.tool_span({"name": "add", "description": "Adds."}, None, "call_1") == ("execute_tool add", {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "add", "gen_ai.tool.type": "function",
        "gen_ai.tool.description": "Adds.", "gen_ai.tool.call.id": "call_1"})
    assert m.tool_span(None, None, None)[0] == "execute_tool unknown"


def test_retriever_span() -> None:
    name, attrs = m.retriever_span({"name": "docs"}, None, {"ls_vector_store_provider": "Chroma"})
    assert name == "retrieval docs"
    assert attrs == {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "docs",
                     "gen_ai.provider.name": "Chroma"}


class Point:
    def __str__(self) -> str:
        return "P(1, 2)"


def test_run_attributes_metadata_rules() -> None:
    attrs = values.run_attributes("rid", "chain", ["a", 3, "b"], {
        "thread_id": "t1", "n": 1, "f": 1.5, "b": False, "nested": {"x": [1, 2]}, "tup": ("a",), "none": None,
        "huge": 2**70, "obj": Point(),
    }, max_length=100, max_metadata=32)
    assert attrs["langchain.run.id"] == "rid" and attrs["langchain.run.type"] == "chain"
    assert attrs["langchain.tags"] == ("a", "b")
    assert attrs["gen_ai.conversation.id"] == "t1"
    assert attrs["langchain.metadata.n"] == 1 and attrs["langchain.metadata.f"] == 1.5
    assert attrs["langchain.metadata.b"] is False
    assert attrs["langchain.metadata.nested"] == '{"x":[1,2]}'
    assert attrs["langchain.metadata.tup"] == '["a"]'
    assert attrs["langchain.metadata.huge"] == str(2**70)
    assert attrs["langchain.metadata.obj"] == '"P(1, 2)"'
    assert "langchain.metadata.none" not in attrs


def test_plain_tuples_from_the_cache_encode_as_fresh_ones() -> None:
    # Equal tuples with items of other types encode differently; the cache must never hand one the other's text.
    pairs = [((1, 0), '[1,0]'), ((True, False), '[true,false]'), ((0.0,), '[0.0]'), ((-0.0,), '[-0.0]'),
             (("a", None), '["a",null]'), (("a\ud800",), '["a\ufffd"]'), (("https://u:p@h/x",), '["https://h/x"]')]
    for _ in range(2):  # the second round reads what the first one cached
        for value, text in pairs:
            assert values.metadata_value(value, 100) == text, value
    long = ("x" * 60,)
    assert values.metadata_value(long, 100) == f'["{"x" * 60}"]'
    # Cached at the longer limit, still cut inside the string at a shorter one (as a list, never cached, is).
    assert values.metadata_value(long, 20) == values.metadata_value(list(long), 20) == '["xxxx…[truncated]"]'


def test_metadata_keys_are_planned_per_policy() -> None:
    metadata = {"run_token": "s3cr3t", "langgraph_node": "model", "ls_provider": "x", "drop_me": "y"}
    first = values.run_attributes("r", "chain", None, metadata, 100, 32)
    again = values.run_attributes("r", "chain", None, metadata, 100, 32)
    assert first == again == {
        "langchain.run.id": "r", "langchain.run.type": "chain", "langchain.metadata.run_token": "[REDACTED]",
        "langchain.metadata.langgraph_node": "model", "langchain.metadata.drop_me": "y",
    }
    denied = values.run_attributes("r", "chain", None, metadata, 100, 32,
                                   metadata_policy=MetadataPolicy(deny=frozenset({"drop_me"})))
    assert "langchain.metadata.drop_me" not in denied and "langchain.metadata.drop_me" in values.run_attributes(
        "r", "chain", None, metadata, 100, 32)


def test_metadata_value_never_raises_and_is_cut() -> None:
    class Evil:
        def __str__(self) -> str:
            raise RuntimeError

        __repr__ = __str__

    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert values.metadata_value(Evil(), 50) == '"<Evil>"'
    assert isinstance(values.metadata_value(cyclic, 50), str)
    assert len(values.metadata_value("x" * 500, 50)) == 50


def _result(*gens: Any, llm_output: Any = None) -> SimpleNamespace:
    return SimpleNamespace(generations=[list(gens)], llm_output=llm_output)


def _gen(meta: Any = None, usage: Any = None, msg_id: Any = None, info: Any = None) -> SimpleNamespace:
    message = SimpleNamespace(response_metadata=meta or {}, usage_metadata=usage, id=msg_id)
    return SimpleNamespace(message=message, generation_info=info)


@pytest.mark.parametrize(("response", "expected"), [
    (_result(_gen({"model_name": "gpt-4o-2024", "finish_reason": "stop", "id": "chatcmpl-1"},
                  {"input_tokens": 10, "output_tokens": 4,
                   "input_token_details": {"cache_read": 3, "cache_creation": 2},
                   "output_token_details": {"reasoning": 1}})),
     {"gen_ai.response.model": "gpt-4o-2024", "gen_ai.response.id": "chatcmpl-1",
      "gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 4,
      "gen_ai.usage.cache_read.input_tokens": 3, "gen_ai.usage.cache_creation.input_tokens": 2,
      "gen_ai.usage.reasoning.output_tokens": 1}),
    (_result(_gen({"stop_reason": "end_turn", "model": "claude"}, msg_id="msg_01")),
     {"gen_ai.response.model": "claude", "gen_ai.response.id": "msg_01",
      "gen_ai.response.finish_reasons": ("end_turn",)}),
    (_result(_gen(msg_id="run-123"), _gen(msg_id="lc_run--456")), {}),
    (_result(_gen({"finish_reason": "stop"}), _gen({"finish_reason": "length"})),
     {"gen_ai.response.finish_reasons": ("stop", "length")}),
    (_result(SimpleNamespace(text="x", generation_info={"finish_reason": "stop"})),
     {"gen_ai.response.finish_reasons": ("stop",)}),
    (_result(llm_output={"model_name": "davinci", "token_usage": {"prompt_tokens": 5, "completion_tokens": 6}}),
     {"gen_ai.response.model": "davinci", "gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 6}),
    (SimpleNamespace(generations=None, llm_output=None), {}),
    (None, {}),
])
def test_llm_response_attributes(response: Any, expected: dict[str, Any]) -> None:
    assert _response.llm_response_attributes(response) == expected


def test_error_type_and_description() -> None:
    class Custom(Exception):
        pass

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError

    assert errors.error_type(ValueError("x")) == "ValueError"
    assert errors.error_type(Custom()).endswith("test_error_type_and_description.<locals>.Custom")
    assert errors.error_description(ValueError("a\n  b")) == "ValueError: a b"
    assert errors.error_description(Unprintable()) == "Unprintable"
    assert len(errors.error_description(ValueError("x" * 1000))) == 256


def test_is_control_flow() -> None:
    from langgraph.errors import GraphInterrupt, ParentCommand

    assert errors.is_control_flow(GraphInterrupt())
    assert errors.is_control_flow(ParentCommand(None))  # type: ignore[arg-type]
    assert not errors.is_control_flow(ValueError())
