"""Trace context on the LangGraph SDK's requests, and the server-side hand-off, without a LangGraph server.

The requests go to a loopback HTTP server that records each one and answers as langgraph-api would, just enough
for ``RemoteGraph`` and the SDK clients to finish their calls; the real SDK and RemoteGraph send them. The hand-off
is read back by a real handler, as the server's handler would read it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_client, get_sync_client
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.handler import propagate as otel_propagate
from otel_callbacks.runs.handoff import HANDOFF_KEY
from tests.support import SpanTree

ROOT = Path(__file__).resolve().parents[1]
USER_TRACEPARENT = "00-11111111111111111111111111111111-2222222222222222-01"
QUESTION = {"messages": [{"role": "human", "content": "hi"}]}


class _Recorder(BaseHTTPRequestHandler):
    """Records (method, path, headers, JSON body); answers run streams with one ``values`` event."""

    requests: list[dict[str, Any]]

    def _record(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        entry = {"method": self.command, "path": self.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()},
                 "json": json.loads(raw) if raw else None}
        self.server.requests.append(entry)  # type: ignore[attr-defined]
        return entry

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        entry = self._record()
        path = entry["path"].partition("?")[0]
        if path.endswith("/runs/stream"):
            events = (b'event: metadata\ndata: {"run_id": "r1"}\n\n'
                      b'event: values\ndata: {"messages": []}\n\n')
            self._reply(200, events, "text/event-stream")
        elif path.endswith("/runs/batch"):
            self._reply(200, json.dumps([{"run_id": "r1"}, {"run_id": "r2"}]).encode(), "application/json")
        elif path == "/threads":
            self._reply(200, b'{"thread_id": "t1"}', "application/json")
        else:
            self._reply(200, b'{"run_id": "r1", "thread_id": "t1", "messages": []}', "application/json")

    def do_GET(self) -> None:
        self._record()
        self._reply(200, b'{"messages": []}', "application/json")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(name="server")
def _server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def url_of(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def recorded(server: ThreadingHTTPServer) -> list[dict[str, Any]]:
    return list(server.requests)  # type: ignore[attr-defined]


def traceparent_of(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def client_graph(url: str) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("remote", RemoteGraph("fx", url=url))
    builder.add_edge(START, "remote")
    return builder.compile(name="client")


class TestOutgoing:
    def test_remote_graph_invoke_carries_the_node_span(self, server: ThreadingHTTPServer,
                                                       handler: OpenTelemetryCallbackHandler, spans: Any) -> None:
        """RemoteGraph as a node: its request's traceparent and run-metadata hand-off are the node run's span."""
        client_graph(url_of(server)).invoke(QUESTION, config={"callbacks": [handler]})
        (request,) = recorded(server)
        assert request["path"] == "/runs/stream"
        expected = traceparent_of(spans().one("remote"))
        assert request["headers"]["traceparent"] == expected
        assert request["json"]["metadata"][HANDOFF_KEY] == {"traceparent": expected}

    async def test_remote_graph_ainvoke_and_astream(self, server: ThreadingHTTPServer,
                                                    handler: OpenTelemetryCallbackHandler, spans: Any) -> None:
        """The async client carries the span of the run that awaits it, for ainvoke and astream alike."""
        graph = client_graph(url_of(server))
        await graph.ainvoke(QUESTION, config={"callbacks": [handler]})
        async for _ in graph.astream(QUESTION, config={"callbacks": [handler]}):
            pass
        first, second = recorded(server)
        nodes = spans().all("remote")
        assert {first["headers"]["traceparent"], second["headers"]["traceparent"]} == {
            traceparent_of(span) for span in nodes}
        assert first["headers"]["traceparent"] != second["headers"]["traceparent"]

    def test_batch_in_threads(self, server: ThreadingHTTPServer, handler: OpenTelemetryCallbackHandler,
                              spans: Any) -> None:
        """RemoteGraph.batch inside a traced lambda: each threaded request carries the lambda's span."""
        remote = RemoteGraph("fx", url=url_of(server))
        RunnableLambda(lambda qs: remote.batch(qs), name="fan_out").invoke([QUESTION, QUESTION],
                                                                            config={"callbacks": [handler]})
        expected = traceparent_of(spans().one("fan_out"))
        assert [r["headers"]["traceparent"] for r in recorded(server)] == [expected, expected]

    def test_sdk_create_join_and_batch(self, server: ThreadingHTTPServer, handler: OpenTelemetryCallbackHandler,
                                       spans: Any) -> None:
        """runs.create and runs.create_batch get the hand-off in every run's metadata; join and GETs the header."""
        sdk = get_sync_client(url=url_of(server))

        def work(_: object) -> None:
            sdk.runs.create("t1", "fx", input=QUESTION, metadata={"mine": 1})
            sdk.runs.join("t1", "r1")
            sdk.runs.create_batch([{"assistant_id": "fx", "input": QUESTION}] * 2)

        RunnableLambda(work, name="work").invoke(None, config={"callbacks": [handler]})
        expected = traceparent_of(spans().one("work"))
        create, join, batch = recorded(server)
        assert all(r["headers"]["traceparent"] == expected for r in (create, join, batch))
        assert create["json"]["metadata"] == {"mine": 1, HANDOFF_KEY: {"traceparent": expected}}
        assert join["method"] == "GET" and join["json"] is None
        assert [p["metadata"][HANDOFF_KEY] for p in batch["json"]] == [{"traceparent": expected}] * 2

    async def test_async_sdk_wait(self, server: ThreadingHTTPServer, handler: OpenTelemetryCallbackHandler,
                                  spans: Any) -> None:
        """The async SDK's runs.wait carries the current run's context."""
        sdk = get_client(url=url_of(server))

        async def work(_: object) -> None:
            await sdk.runs.wait(None, "fx", input=QUESTION)

        await RunnableLambda(lambda _: None, afunc=work, name="work").ainvoke(None, config={"callbacks": [handler]})
        (request,) = recorded(server)
        assert request["path"] == "/runs/wait"
        assert request["headers"]["traceparent"] == traceparent_of(spans().one("work"))

    def test_nothing_outside_a_trace(self, server: ThreadingHTTPServer, handler: OpenTelemetryCallbackHandler) -> None:
        """With no span and no baggage current the request is sent as the caller made it."""
        get_sync_client(url=url_of(server)).runs.create("t1", "fx", input=QUESTION)
        (request,) = recorded(server)
        assert "traceparent" not in request["headers"] and "baggage" not in request["headers"]
        assert request["json"].get("metadata") is None

    def test_explicit_traceparent_wins(self, server: ThreadingHTTPServer,
                                       handler: OpenTelemetryCallbackHandler) -> None:
        """A traceparent passed per call or as the client's default is sent unchanged, and is the hand-off too."""
        per_call = get_sync_client(url=url_of(server))
        default = get_sync_client(url=url_of(server), headers={"TraceParent": USER_TRACEPARENT})

        def work(_: object) -> None:
            per_call.runs.create("t1", "fx", input=QUESTION, headers={"traceparent": USER_TRACEPARENT})
            default.runs.create("t1", "fx", input=QUESTION)

        RunnableLambda(work, name="work").invoke(None, config={"callbacks": [handler]})
        for request in recorded(server):
            assert request["headers"]["traceparent"] == USER_TRACEPARENT
            assert request["json"]["metadata"][HANDOFF_KEY] == {"traceparent": USER_TRACEPARENT}

    def test_explicit_traceparent_outside_a_trace(self, server: ThreadingHTTPServer,
                                                  handler: OpenTelemetryCallbackHandler) -> None:
        """Outside any trace, a traceparent the caller passes is sent as is and handed over in the run metadata."""
        get_sync_client(url=url_of(server)).runs.create("t1", "fx", input=QUESTION,
                                                        headers={"traceparent": USER_TRACEPARENT})
        (request,) = recorded(server)
        assert request["headers"]["traceparent"] == USER_TRACEPARENT
        assert request["json"]["metadata"] == {HANDOFF_KEY: {"traceparent": USER_TRACEPARENT}}

    def test_baggage_merged_callers_first(self, server: ThreadingHTTPServer,
                                          handler: OpenTelemetryCallbackHandler) -> None:
        """Current baggage is sent; members the caller set themselves keep the caller's values."""
        sdk = get_sync_client(url=url_of(server), headers={"baggage": "tenant=from-client"})
        token = context.attach(baggage.set_baggage("user", "u1", baggage.set_baggage("tenant", "from-context")))
        try:
            RunnableLambda(lambda _: sdk.runs.create("t1", "fx", input=QUESTION), name="work").invoke(
                None, config={"callbacks": [handler]})
        finally:
            context.detach(token)
        (request,) = recorded(server)
        assert request["headers"]["baggage"] == "tenant=from-client,user=u1"
        assert request["json"]["metadata"][HANDOFF_KEY]["baggage"] == "tenant=from-client,user=u1"

    def test_configured_propagators(self, server: ThreadingHTTPServer, handler: OpenTelemetryCallbackHandler) -> None:
        """The application's propagators decide what is sent: trace context alone, no baggage."""
        previous = propagate.get_global_textmap()
        propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
        token = context.attach(baggage.set_baggage("user", "u1"))
        try:
            RunnableLambda(lambda _: get_sync_client(url=url_of(server)).runs.create("t1", "fx", input=QUESTION),
                           name="work").invoke(None, config={"callbacks": [handler]})
        finally:
            context.detach(token)
            propagate.set_global_textmap(previous)
        (request,) = recorded(server)
        assert "traceparent" in request["headers"] and "baggage" not in request["headers"]
        assert set(request["json"]["metadata"][HANDOFF_KEY]) == {"traceparent"}

    def test_install_is_idempotent(self) -> None:
        """Installing again (every handler does) wraps each SDK method once."""
        from langgraph_sdk._sync.http import SyncHttpClient

        OpenTelemetryCallbackHandler()
        OpenTelemetryCallbackHandler()
        wrapped = SyncHttpClient.__dict__["post"]
        original = wrapped.__otel_callbacks_wrapped__
        assert not hasattr(original, "__otel_callbacks_wrapped__")
        assert original.__module__ == "langgraph_sdk._sync.http"


class TestImportHook:
    def test_sdk_wrapped_only_when_imported(self) -> None:
        """A handler does not import the SDK; importing it later gets it wrapped, and the hook removes itself."""
        code = (
            "import sys\n"
            "import otel_callbacks\n"
            "otel_callbacks.OpenTelemetryCallbackHandler()\n"
            "assert not any(m.startswith('langgraph_sdk') for m in sys.modules), 'imported the SDK'\n"
            "from otel_callbacks.handler import propagate\n"
            "assert propagate._hook in sys.meta_path\n"
            "from langgraph.pregel.remote import RemoteGraph\n"
            "from langgraph_sdk._async.http import HttpClient\n"
            "from langgraph_sdk._sync.http import SyncHttpClient\n"
            "for cls in (HttpClient, SyncHttpClient):\n"
            "    for name in propagate._METHODS:\n"
            "        assert hasattr(cls.__dict__[name], '__otel_callbacks_wrapped__'), (cls, name)\n"
            "assert propagate._hook is None and not any(isinstance(f, propagate._PatchOnImport) "
            "for f in sys.meta_path)\n"
            "import langgraph_sdk._sync.http as m\n"
            "assert m.__loader__.__class__.__name__ != '_WrappingLoader'\n"
            "print('ok')\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                                timeout=120)
        assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr

    def test_uninstall_restores_the_sdk(self) -> None:
        """uninstall() puts the SDK's own methods back; install() wraps them again."""
        from langgraph_sdk._sync.http import SyncHttpClient

        otel_propagate.install()
        original = SyncHttpClient.__dict__["stream"].__otel_callbacks_wrapped__
        otel_propagate.uninstall()
        try:
            assert SyncHttpClient.__dict__["stream"] is original
        finally:
            otel_propagate.install()
        assert SyncHttpClient.__dict__["stream"].__otel_callbacks_wrapped__ is original


class TestHandoff:
    """The server side: a root run whose metadata carries the hand-off joins the caller's trace."""

    CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    def test_root_run_joins_the_caller(self, handler: OpenTelemetryCallbackHandler, spans: Any) -> None:
        """The root's parent is the caller's span (remote); its children follow it."""
        chain = RunnableLambda(lambda x: x, name="inner")
        RunnableLambda(lambda x: chain.invoke(x), name="root").invoke(
            1, config={"callbacks": [handler], "metadata": {HANDOFF_KEY: {"traceparent": self.CALLER}}})
        tree = SpanTree(spans().spans)
        root, inner = tree.one("root"), tree.one("inner")
        assert root.parent is not None and root.parent.is_remote
        assert (root.context.trace_id, root.parent.span_id) == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)
        assert inner.parent is not None and inner.parent.span_id == root.context.span_id
        assert inner.context.trace_id == root.context.trace_id

    def test_baggage_current_in_the_runs_code_only(self, handler: OpenTelemetryCallbackHandler) -> None:
        """The caller's baggage is current while the root run's code executes, and not after."""
        seen: list[object] = []
        RunnableLambda(lambda _: seen.append(baggage.get_baggage("user")), name="root").invoke(
            None, config={"callbacks": [handler],
                          "metadata": {HANDOFF_KEY: {"traceparent": self.CALLER, "baggage": "user=u1"}}})
        assert seen == ["u1"]
        assert baggage.get_baggage("user") is None

    def test_current_span_wins(self, handler: OpenTelemetryCallbackHandler, spans: Any,
                               tracer_provider: Any) -> None:
        """Where a span is current (langgraph-api's worker span, a web request's), the hand-off is not used."""
        with tracer_provider.get_tracer("test").start_as_current_span("worker.stream_run") as worker:
            RunnableLambda(lambda x: x, name="root").invoke(
                1, config={"callbacks": [handler], "metadata": {HANDOFF_KEY: {"traceparent": self.CALLER}}})
        root = SpanTree(spans().spans).one("root")
        assert root.parent is not None and root.parent.span_id == worker.get_span_context().span_id

    def test_baggage_with_a_current_span_of_the_callers_trace(self, handler: OpenTelemetryCallbackHandler,
                                                             tracer_provider: Any) -> None:
        """langgraph-api's worker span (the caller's trace) stays the parent, and the caller's baggage applies."""
        seen: list[object] = []
        caller = trace.NonRecordingSpan(trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331,
                                                          True, trace.TraceFlags(1)))
        worker_parent = trace.set_span_in_context(caller)
        with tracer_provider.get_tracer("test").start_as_current_span("worker.stream_run", context=worker_parent):
            RunnableLambda(lambda _: seen.append(baggage.get_baggage("user")), name="root").invoke(
                None, config={"callbacks": [handler],
                              "metadata": {HANDOFF_KEY: {"traceparent": self.CALLER, "baggage": "user=u1"}}})
        assert seen == ["u1"]

    def test_no_baggage_under_a_current_span_of_another_trace(self, handler: OpenTelemetryCallbackHandler,
                                                              tracer_provider: Any) -> None:
        """Under a current span of another trace, the caller's baggage is not the run's: it is left out."""
        seen: list[object] = []
        with tracer_provider.get_tracer("test").start_as_current_span("unrelated"):
            RunnableLambda(lambda _: seen.append(baggage.get_baggage("user")), name="root").invoke(
                None, config={"callbacks": [handler],
                              "metadata": {HANDOFF_KEY: {"traceparent": self.CALLER, "baggage": "user=u1"}}})
        assert seen == [None]

    def test_baggage_without_trace_context(self, handler: OpenTelemetryCallbackHandler, spans: Any) -> None:
        """A caller outside any trace still hands over its baggage; the run starts a trace of its own."""
        seen: list[object] = []
        RunnableLambda(lambda _: seen.append(baggage.get_baggage("user")), name="root").invoke(
            None, config={"callbacks": [handler], "metadata": {HANDOFF_KEY: {"baggage": "user=u1"}}})
        assert seen == ["u1"] and SpanTree(spans().spans).one("root").parent is None

    @pytest.mark.parametrize("value", ["00-zz-yy-01", {"traceparent": "not a traceparent"}, {"traceparent": 7}, [],
                                       {"traceparent": "00-" + "0" * 32 + "-" + "1" * 16 + "-01"}])
    def test_malformed_handoff_starts_a_trace(self, value: object, handler: OpenTelemetryCallbackHandler,
                                              spans: Any) -> None:
        """A hand-off that is not a valid trace context is ignored: the run starts a trace of its own."""
        RunnableLambda(lambda x: x, name="root").invoke(
            1, config={"callbacks": [handler], "metadata": {HANDOFF_KEY: value}})
        assert SpanTree(spans().spans).one("root").parent is None

    def test_round_trip(self, server: ThreadingHTTPServer, handler: OpenTelemetryCallbackHandler, spans: Any,
                        tracer_provider: Any) -> None:
        """What the client writes into run metadata is what a server's handler reads: same trace, exact parent."""
        RunnableLambda(lambda _: get_sync_client(url=url_of(server)).runs.create("t1", "fx", input=QUESTION),
                       name="caller").invoke(None, config={"callbacks": [handler]})
        (request,) = recorded(server)
        server_handler = OpenTelemetryCallbackHandler(tracer_provider=tracer_provider)
        RunnableLambda(lambda x: x, name="server_root").invoke(
            1, config={"callbacks": [server_handler], "metadata": request["json"]["metadata"]})
        tree = SpanTree(spans().spans)
        caller, root = tree.one("caller"), tree.one("server_root")
        assert root.parent is not None and root.parent.span_id == caller.context.span_id
        assert root.context.trace_id == caller.context.trace_id

    async def test_async_root(self, handler: OpenTelemetryCallbackHandler, spans: Any) -> None:
        """An async root run (the server's worker awaits its graph) joins the caller too, and leaves nothing
        current."""
        async def inner(x: int) -> int:
            await asyncio.sleep(0)
            return x

        await RunnableLambda(lambda x: x, afunc=inner, name="root").ainvoke(
            1, config={"callbacks": [handler], "metadata": {HANDOFF_KEY: {"traceparent": self.CALLER}}})
        root = SpanTree(spans().spans).one("root")
        assert root.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
        assert trace.get_current_span() is trace.INVALID_SPAN
