"""End-to-end: spans exported over OTLP gRPC and OTLP HTTP/protobuf reach a real Phoenix intact.

Each test gives its spans a project of its own (resource attribute ``openinference.project.name``), exports them
through the official exporters behind a ``BatchSpanProcessor``, calls ``force_flush`` and then polls Phoenix's REST
API (``GET /v1/projects/{name}/spans``) until they are all there. Every span kept locally by an in-memory exporter
is compared with the one Phoenix returns: name, trace id, parent id and every attribute.

The LangChain tests run a real ``langchain-core`` chain (``RunnableLambda`` steps, ``GenericFakeChatModel``, a
``@tool``) traced by ``OpenTelemetryCallbackHandler``: the tree Phoenix stores must be the run tree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import tool
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_callbacks import OpenTelemetryCallbackHandler, setup_tracing

if TYPE_CHECKING:
    from .conftest import PhoenixServer

# The first test also installs Phoenix's venv (~1 min) and starts the server: well over the default per-test timeout.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

Protocol = Literal["grpc", "http/protobuf"]
PROTOCOLS: tuple[Protocol, ...] = ("grpc", "http/protobuf")
PROJECT_ATTR = "openinference.project.name"


def _exporter(protocol: Protocol, phoenix: PhoenixServer) -> SpanExporter:
    if protocol == "grpc":
        return GrpcSpanExporter(endpoint=phoenix.grpc_endpoint, insecure=True, timeout=10)
    return HttpSpanExporter(endpoint=phoenix.http_traces_endpoint, timeout=10)


class Pipeline:
    """A TracerProvider that batches to Phoenix over one protocol and keeps a local copy of every span."""

    def __init__(self, protocol: Protocol, phoenix: PhoenixServer, label: str) -> None:
        self.project = f"otel-callbacks-{label}-{protocol.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "otel-callbacks-integration", PROJECT_ATTR: self.project})
        )
        self.local = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.local))
        self.provider.add_span_processor(BatchSpanProcessor(_exporter(protocol, phoenix)))

    def flush(self) -> list[ReadableSpan]:
        assert self.provider.force_flush(timeout_millis=15_000), "force_flush timed out"
        return list(self.local.get_finished_spans())

    def close(self) -> None:
        self.provider.shutdown()


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> Protocol:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def pipeline(protocol: Protocol, phoenix: PhoenixServer, request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    label = request.node.originalname.removeprefix("test_").replace("_", "-")[:48]
    pipe = Pipeline(protocol, phoenix, label)
    yield pipe
    pipe.close()


def _hex_span_id(span_id: int) -> str:
    return format(span_id, "016x")


def _normalise(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def assert_delivered(local: Sequence[ReadableSpan], remote: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Assert every local span arrived once with the same name, trace, parent and attributes; return remote by id.

    Phoenix may add derived attributes of its own (``llm.model_name`` from ``gen_ai.request.model``...), so ours
    must be a subset of what it returns, value for value.
    """
    by_id = {s["context"]["span_id"]: s for s in remote}
    assert len(by_id) == len(remote), "Phoenix returned a span id twice"
    assert len(remote) == len(local), (
        f"sent {len(local)} spans, Phoenix has {len(remote)}: "
        f"sent {sorted(s.name for s in local)}, got {sorted(s['name'] for s in remote)}"
    )
    for span in local:
        ctx = span.get_span_context()
        assert ctx is not None
        got = by_id.get(_hex_span_id(ctx.span_id))
        assert got is not None, f"span {span.name!r} missing in Phoenix"
        assert got["name"] == span.name
        assert got["context"]["trace_id"] == format(ctx.trace_id, "032x")
        expected_parent = _hex_span_id(span.parent.span_id) if span.parent is not None else None
        assert got["parent_id"] == expected_parent, f"parent of {span.name!r}"
        for key, value in (span.attributes or {}).items():
            assert key in got["attributes"], f"attribute {key!r} of {span.name!r} lost"
            assert got["attributes"][key] == _normalise(value), f"attribute {key!r} of {span.name!r} changed"
    return by_id


def test_sdk_span_tree_arrives_intact(pipeline: Pipeline, phoenix: PhoenixServer) -> None:
    """A hand-made three-level span tree with every attribute type reaches Phoenix unchanged over each protocol."""
    tracer = pipeline.provider.get_tracer("otel-callbacks.integration")
    with tracer.start_as_current_span("invoke_agent demo", attributes={"gen_ai.operation.name": "invoke_agent"}):
        with tracer.start_as_current_span(
            "chat fake-model",
            attributes={
                "gen_ai.request.model": "fake-model",
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.request.temperature": 0.25,
                "gen_ai.response.finish_reasons": ("stop",),
                "otel_callbacks.streamed": False,
            },
        ):
            pass
        with (
            tracer.start_as_current_span("execute_tool lookup", attributes={"gen_ai.tool.name": "lookup"}),
            tracer.start_as_current_span("inner", attributes={"sizes": (1, 2, 3)}),
        ):
            pass
    local = pipeline.flush()
    remote = phoenix.wait_for_spans(pipeline.project, len(local))
    assert_delivered(local, remote)
    assert len(local) == 4


def test_phoenix_listens_on_loopback_only(phoenix: PhoenixServer) -> None:
    """Both of Phoenix's ports are bound to 127.0.0.1 (IPv4 or IPv4-mapped IPv6), never to a wildcard address."""
    listening: dict[int, list[str]] = {phoenix.http_port: [], phoenix.grpc_port: []}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_addr, state = fields[1], fields[3]
            address, port_hex = local_addr.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) in listening:  # 0A = LISTEN
                listening[int(port_hex, 16)].append(address)
    loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, ::ffff:127.0.0.1 (little-endian words)
    for port, addresses in listening.items():
        assert addresses, f"nothing listens on port {port}"
        assert set(addresses) <= loopback, f"port {port} bound to {addresses}"


class FakeChat(GenericFakeChatModel):
    """``GenericFakeChatModel`` with a model name, so that LangChain reports ``ls_model_name`` as a real model does."""

    model_name: str = "fake-chat-1"


@tool
def get_weather(city: str) -> str:
    """Return the weather of a city."""
    return f"sunny in {city}"


@tool
def get_forecast(city: str) -> str:
    """Return tomorrow's forecast for a city."""
    raise RuntimeError(f"forecast service down for {city}")


def _agent_chain(model: FakeChat) -> Runnable[str, str]:
    """prepare → plan (chat, asks for a tool) → act (runs the tool calls) → answer (chat) → final, as one root run."""

    def to_messages(question: str) -> list[BaseMessage]:
        return [HumanMessage(content=question)]

    def ask(messages: list[BaseMessage]) -> list[BaseMessage]:
        return [*messages, model.invoke(messages)]

    def act(messages: list[BaseMessage]) -> list[BaseMessage]:
        last = messages[-1]
        assert isinstance(last, AIMessage)
        tools = {"get_weather": get_weather, "get_forecast": get_forecast}
        return [*messages, *(tools[call["name"]].invoke(call) for call in last.tool_calls)]

    def final(messages: list[BaseMessage]) -> str:
        return str(messages[-1].content)

    chain = (
        RunnableLambda(to_messages, name="prepare")
        | RunnableLambda(ask, name="plan")
        | RunnableLambda(act, name="act")
        | RunnableLambda(ask, name="answer")
        | RunnableLambda(final, name="final")
    )
    return chain.with_config(run_name="weather_chain")


def _scripted_model(tool_name: str) -> FakeChat:
    return FakeChat(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[{"name": tool_name, "args": {"city": "Paris"}, "id": "call_1"}],
                    usage_metadata={"input_tokens": 11, "output_tokens": 5, "total_tokens": 16},
                ),
                AIMessage(
                    content="It is sunny in Paris.",
                    usage_metadata={"input_tokens": 20, "output_tokens": 7, "total_tokens": 27},
                ),
            ]
        )
    )


def _handler(provider: TracerProvider) -> OpenTelemetryCallbackHandler:
    # capture_content=True: the message and tool JSON attributes are the largest values, and must survive too.
    handler = OpenTelemetryCallbackHandler(tracer_provider=provider, capture_content=True)
    handler.raise_error = True
    return handler


def _tree(remote: dict[str, dict[str, Any]]) -> set[tuple[str, str | None]]:
    """(span name, parent span name) for every span Phoenix returned."""
    return {
        (s["name"], remote[s["parent_id"]]["name"] if s["parent_id"] is not None else None) for s in remote.values()
    }


CHAIN_TREE = {
    ("weather_chain", None),
    ("prepare", "weather_chain"),
    ("plan", "weather_chain"),
    ("chat fake-chat-1", "plan"),
    ("act", "weather_chain"),
    ("execute_tool get_weather", "act"),
    ("answer", "weather_chain"),
    ("chat fake-chat-1", "answer"),
    ("final", "weather_chain"),
}


def test_langchain_run_tree_arrives_intact(pipeline: Pipeline, phoenix: PhoenixServer) -> None:
    """A chain with two chat-model calls and a tool call reaches Phoenix as the run tree, attributes unchanged."""
    result = _agent_chain(_scripted_model("get_weather")).invoke(
        "Weather in Paris?", config={"callbacks": [_handler(pipeline.provider)]}
    )
    assert result == "It is sunny in Paris."
    local = pipeline.flush()
    remote = assert_delivered(local, phoenix.wait_for_spans(pipeline.project, len(local)))

    assert len(local) == len(CHAIN_TREE)
    assert _tree(remote) == CHAIN_TREE
    assert len({s["context"]["trace_id"] for s in remote.values()}) == 1
    chats = sorted((s for s in remote.values() if s["name"] == "chat fake-chat-1"), key=lambda s: str(s["start_time"]))
    assert [
        (c["attributes"]["gen_ai.usage.input_tokens"], c["attributes"]["gen_ai.usage.output_tokens"]) for c in chats
    ] == [
        (11, 5),
        (20, 7),
    ]
    assert all(c["attributes"]["gen_ai.request.model"] == "fake-chat-1" for c in chats)
    assert all(c["attributes"]["gen_ai.operation.name"] == "chat" for c in chats)
    (tool_span,) = (s for s in remote.values() if s["name"] == "execute_tool get_weather")
    assert tool_span["attributes"]["gen_ai.tool.name"] == "get_weather"
    assert tool_span["attributes"]["gen_ai.tool.call.id"] == "call_1"


def test_failed_tool_status_and_exception_event_arrive(pipeline: Pipeline, phoenix: PhoenixServer) -> None:
    """A tool that raises gives ERROR spans up to the root, and the exception event reaches Phoenix with them."""
    with pytest.raises(RuntimeError, match="forecast service down"):
        _agent_chain(_scripted_model("get_forecast")).invoke(
            "Forecast for Paris?", config={"callbacks": [_handler(pipeline.provider)]}
        )
    local = pipeline.flush()
    remote = assert_delivered(local, phoenix.wait_for_spans(pipeline.project, len(local)))

    assert _tree(remote) == {
        ("weather_chain", None),
        ("prepare", "weather_chain"),
        ("plan", "weather_chain"),
        ("chat fake-chat-1", "plan"),
        ("act", "weather_chain"),
        ("execute_tool get_forecast", "act"),
    }
    by_name = {s["name"]: s for s in remote.values()}
    for name in ("execute_tool get_forecast", "act", "weather_chain"):
        assert by_name[name]["status_code"] == "ERROR", name
    tool_span = by_name["execute_tool get_forecast"]
    assert "forecast service down" in tool_span["status_message"]
    local_tool = next(s for s in local if s.name == "execute_tool get_forecast")
    assert [e["name"] for e in tool_span["events"]] == [e.name for e in local_tool.events]
    exception = next(e for e in tool_span["events"] if e["name"] == "exception")
    assert exception["attributes"]["exception.type"] == "RuntimeError"
    assert by_name["chat fake-chat-1"]["status_code"] != "ERROR"


def test_setup_tracing_otlp_delivers_the_run_tree(protocol: Protocol, phoenix: PhoenixServer) -> None:
    """``setup_tracing(exporters=["otlp"], endpoint=..., protocol=...)`` alone gets the run tree into Phoenix."""
    project = f"otel-callbacks-setup-tracing-{protocol.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
    # For HTTP the base URL is given, as users give OTEL_EXPORTER_OTLP_ENDPOINT: setup_tracing appends /v1/traces.
    endpoint = phoenix.grpc_endpoint if protocol == "grpc" else phoenix.base_url
    local = InMemorySpanExporter()
    provider = setup_tracing(
        exporters=["otlp", local],
        endpoint=endpoint,
        protocol=protocol,
        service_name="otel-callbacks-integration",
        resource_attributes={PROJECT_ATTR: project},
        set_global=False,
    )
    try:
        _agent_chain(_scripted_model("get_weather")).invoke(
            "Weather in Paris?", config={"callbacks": [_handler(provider)]}
        )
        assert provider.force_flush(timeout_millis=15_000), "force_flush timed out"
        sent = list(local.get_finished_spans())
        remote = assert_delivered(sent, phoenix.wait_for_spans(project, len(sent)))
    finally:
        provider.shutdown()
    assert _tree(remote) == CHAIN_TREE
