"""One trace across two processes: a traced client calls a real LangGraph server (``langgraph dev``) serving
``examples/remote_graph``, and the client's and the server's spans form one tree with exact parents.

The server (``tests/_langgraph_server.py``: its own cached virtualenv, pinned ``langgraph-cli[inmem]``, this
repository installed editable) runs the example as it is shipped, in both set-ups:

* ``langgraph.json``: the graph module sets up tracing; the client's trace context reaches the graph's root run in
  the run's metadata (``otel_callbacks.runs.handoff``) — no web app, no ``OTEL_ENABLED``;
* ``langgraph.http.json``: the ASGI middleware in ``http.app`` (an HTTP server span per request) and
  ``OTEL_ENABLED=true`` (langgraph-api's ``worker.stream_run`` span around the graph run).

The server exports with the file exporter (OTLP/JSON lines, the process id as a resource attribute); the client's
spans are the test process's own (in memory). The last test stops a server holding every span in its batch queue
with SIGTERM and finds all of them in the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_sync_client
from opentelemetry.trace import SpanKind

from otel_callbacks import OpenTelemetryCallbackHandler
from tests import _langgraph_server

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "remote_graph"
QUESTION = {"messages": [{"role": "human", "content": "How much is 120 EUR in USD?"}]}
ANSWER = "That is 129.60 USD."
POLL_S = 30.0
# Only set-up arguments: every OTEL_* the server reads is given here (start() drops the caller's own).
SERVER_ENV = {"OTEL_TRACES_EXPORTER": "file", "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process"}

# The server's graph run, as the trace shows it under whatever started it (root name filled in per call).
GRAPH = [
    "{root}",
    "  agent",
    "    chat scripted-fx-1",
    "    tools_condition",
    "  tools",
    "    execute_tool convert_currency",
    "  agent",
    "    chat scripted-fx-1",
    "    tools_condition",
]
GRAPH_SPANS = len(GRAPH)


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: int
    start_ns: int
    pid: int


def _kind(value: object) -> int:
    # OTLP/JSON numbers kinds 1 (internal) .. 5 (consumer); the API's SpanKind is 0-based.
    return int(value) - 1 if isinstance(value, int) else SpanKind.INTERNAL.value


def server_spans(path: Path) -> list[Span]:
    """Every span in the server's file exporter output."""
    if not path.exists():
        return []
    found: list[Span] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        for resource_spans in json.loads(line).get("resourceSpans", []):
            attributes = {a["key"]: a["value"] for a in resource_spans["resource"].get("attributes", [])}
            pid = int(attributes.get("process.pid", {}).get("intValue", -1))
            for scope in resource_spans.get("scopeSpans", []):
                for s in scope.get("spans", []):
                    found.append(Span(s["traceId"], s["spanId"], s.get("parentSpanId") or None, s["name"],
                                      _kind(s.get("kind")), int(s["startTimeUnixNano"]), pid))
    return found


def client_spans(exported: Any) -> list[Span]:
    pid = os.getpid()
    return [Span(f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}",
                 f"{s.parent.span_id:016x}" if s.parent is not None else None, s.name, s.kind.value,
                 s.start_time, pid) for s in exported]


def tree(spans: list[Span], root: Span) -> list[str]:
    """The trace under ``root`` as indented names, children by start time."""
    children: dict[str, list[Span]] = {}
    for span in spans:
        if span.parent_id is not None:
            children.setdefault(span.parent_id, []).append(span)
    lines: list[str] = []

    def walk(span: Span, depth: int) -> None:
        lines.append("  " * depth + span.name)
        for child in sorted(children.get(span.span_id, []), key=lambda s: s.start_ns):
            walk(child, depth + 1)

    walk(root, 0)
    return lines


def graph_under(prefix: list[str], root_name: str) -> list[str]:
    pad = "  " * len(prefix)
    return [*("  " * i + name for i, name in enumerate(prefix)), *(pad + line.format(root=root_name) for line in GRAPH)]


@dataclass
class Served:
    server: _langgraph_server.LangGraphServer
    file: Path
    http: bool  # the http.app set-up

    def wait_for(self, count: int, trace_id: str | None = None) -> list[Span]:
        """The server's spans once ``count`` of them (of ``trace_id`` if given) are in its file (bounded)."""
        deadline = time.monotonic() + POLL_S
        while True:
            spans = server_spans(self.file)
            mine = [s for s in spans if trace_id is None or s.trace_id == trace_id]
            if len(mine) >= count:
                time.sleep(0.2)  # one more batch could still be on its way: the test sees everything
                return server_spans(self.file)
            if time.monotonic() > deadline or self.server.proc.poll() is not None:
                raise AssertionError(f"{len(mine)} of {count} server spans after {POLL_S:.0f} s: "
                                     f"{sorted(s.name for s in mine)}\n{self.server.log_tail()}")
            time.sleep(0.05)


def _serve(tmp: Path, config: str, env: dict[str, str]) -> Iterator[Served]:
    file = tmp / "server-spans.jsonl"
    server = _langgraph_server.start(EXAMPLE, {**SERVER_ENV, "OTEL_CALLBACKS_FILE_PATH": str(file), **env},
                                     tmp / "server.log", config=config)
    try:
        yield Served(server, file, http=config != "langgraph.json")
    finally:
        server.stop()


@pytest.fixture(name="served", scope="module", params=["langgraph.json", "langgraph.http.json"])
def _served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(tmp_path_factory.mktemp("langgraph"), request.param, {"OTEL_BSP_SCHEDULE_DELAY": "50"})


def client_graph(url: str) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("remote", RemoteGraph("fx", url=url))
    builder.add_edge(START, "remote")
    return builder.compile(name="client")


def one_trace(served: Served, exported: Any, http_path: str, expected_server: int) -> tuple[list[Span], Span]:
    """All spans of the client's one trace (both processes) and its root; exactly one trace on the client."""
    client = client_spans(exported)
    (trace_id,) = {s.trace_id for s in client}
    (root,) = [s for s in client if s.parent_id is None]
    server = [s for s in served.wait_for(expected_server, trace_id) if s.trace_id == trace_id]
    spans = client + server
    ids = {s.span_id for s in spans}
    assert all(s.parent_id is None or s.parent_id in ids for s in spans), "a span's parent is missing"
    assert {s.pid for s in server} == {served.server.pid} and os.getpid() != served.server.pid
    if served.http:
        (http_span,) = [s for s in server if s.kind == SpanKind.SERVER.value and s.name == http_path]
        (worker,) = [s for s in server if s.name == "worker.stream_run"]
        assert worker.kind == SpanKind.CONSUMER.value and worker.parent_id == http_span.span_id
    return spans, root


def remote_prefix(served: Served, http_path: str) -> list[str]:
    return [http_path, "worker.stream_run"] if served.http else []


# The server's graph root, called by RemoteGraph from a client node, inherits the node's langgraph_* metadata
# (RemoteGraph forwards config metadata); it is still the server's root run, so a workflow.
ROOT_UNDER_NODE = "invoke_workflow fx_agent"


class TestOneTrace:
    @pytest.mark.parametrize("call", ["invoke", "stream"])
    def test_remote_graph(self, call: str, served: Served, handler: OpenTelemetryCallbackHandler,
                          span_exporter: Any) -> None:
        """client root -> remote node -> [HTTP -> worker] -> graph root -> nodes -> chat and tool spans."""
        app = client_graph(served.server.url)
        config: Any = {"callbacks": [handler]}
        if call == "invoke":
            state = app.invoke(QUESTION, config=config)
        else:
            *_, state = app.stream(QUESTION, config=config, stream_mode="values")
        assert state["messages"][-1].content == ANSWER
        http_path = "POST /runs/stream"
        prefix = remote_prefix(served, http_path)
        spans, root = one_trace(served, span_exporter.get_finished_spans(), http_path, GRAPH_SPANS + len(prefix))
        assert tree(spans, root) == graph_under(["invoke_workflow client", "remote", *prefix], ROOT_UNDER_NODE)

    async def test_remote_graph_async(self, served: Served, handler: OpenTelemetryCallbackHandler,
                                      span_exporter: Any) -> None:
        """The same trace from ainvoke: the async client carries the awaiting node's span."""
        state = await client_graph(served.server.url).ainvoke(QUESTION, config={"callbacks": [handler]})
        assert state["messages"][-1].content == ANSWER
        http_path = "POST /runs/stream"
        prefix = remote_prefix(served, http_path)
        spans, root = one_trace(served, span_exporter.get_finished_spans(), http_path, GRAPH_SPANS + len(prefix))
        assert tree(spans, root) == graph_under(["invoke_workflow client", "remote", *prefix], ROOT_UNDER_NODE)

    def test_create_and_join(self, served: Served, handler: OpenTelemetryCallbackHandler,
                             span_exporter: Any) -> None:
        """A background run (runs.create) joined later (runs.join) is in the trace of the run that created it."""
        sdk = get_sync_client(url=served.server.url)

        def create_and_join(question: Any) -> Any:
            thread = sdk.threads.create()
            run = sdk.runs.create(thread["thread_id"], "fx", input=question)
            return sdk.runs.join(thread["thread_id"], run["run_id"])

        state = RunnableLambda(create_and_join, name="background_run").invoke(QUESTION,
                                                                               config={"callbacks": [handler]})
        assert state["messages"][-1]["content"] == ANSWER
        http_path = "POST /threads/{thread_id}/runs"
        prefix = remote_prefix(served, http_path)
        other_requests = ["POST /threads", "GET /threads/{thread_id}/runs/{run_id}/join"] if served.http else []
        spans, root = one_trace(served, span_exporter.get_finished_spans(), http_path,
                                GRAPH_SPANS + len(prefix) + len(other_requests))
        lines = tree(spans, root)
        expected = graph_under(["background_run", *prefix], "invoke_workflow fx_agent")
        if served.http:
            # the three requests are the lambda's children, by start time: create the thread, the run, join it
            expected = [expected[0], "  POST /threads", *expected[1:], "  GET /threads/{thread_id}/runs/{run_id}/join"]
        assert lines == expected


class TestExampleClient:
    def test_client_script_as_shipped(self, served: Served, tmp_path: Path) -> None:
        """examples/remote_graph/client.py, run as it is, answers twice; each of its traces goes on in the server."""
        file = tmp_path / "client-spans.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(SERVER_ENV, OTEL_CALLBACKS_FILE_PATH=str(file), PYTHONPATH=str(ROOT))
        result = subprocess.run([sys.executable, str(EXAMPLE / "client.py"), served.server.url], capture_output=True,
                                text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [ANSWER, ANSWER]
        client = server_spans(file)  # the same OTLP/JSON file format
        roots = sorted((s for s in client if s.parent_id is None), key=lambda s: s.start_ns)
        assert [r.name for r in roots] == ["invoke_workflow client", "background_run"]
        (client_pid,) = {s.pid for s in client}
        assert client_pid not in (-1, os.getpid(), served.server.pid)
        for root in roots:
            mine = [s for s in client if s.trace_id == root.trace_id]
            server = [s for s in served.wait_for(GRAPH_SPANS, root.trace_id) if s.trace_id == root.trace_id]
            (graph_root,) = [s for s in server if s.name.endswith("fx_agent")]
            parents = {s.span_id for s in mine} if not served.http else {s.span_id for s in server}
            assert graph_root.parent_id in parents


class TestUntracedClient:
    def test_server_spans_form_their_own_trace(self, served: Served, tmp_path: Path) -> None:
        """A client process without otel-callbacks gets its answer; the server's run is a trace of its own."""
        code = ("import json, sys\n"
                "from langgraph.pregel.remote import RemoteGraph\n"
                "state = RemoteGraph('fx', url=sys.argv[1]).invoke(json.loads(sys.argv[2]))\n"
                "assert not any(m.startswith('otel_callbacks') for m in sys.modules)\n"
                "print(state['messages'][-1]['content'])\n")
        before = {s.span_id for s in server_spans(served.file)}
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        result = subprocess.run([sys.executable, "-c", code, served.server.url, json.dumps(QUESTION)],
                                capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == ANSWER
        prefix = ["POST /runs/stream", "worker.stream_run"] if served.http else []
        spans = [s for s in served.wait_for(len(before) + GRAPH_SPANS + len(prefix)) if s.span_id not in before]
        roots = [s for s in spans if s.parent_id is None and s.name == (prefix or ["invoke_workflow fx_agent"])[0]]
        (root,) = roots
        mine = [s for s in spans if s.trace_id == root.trace_id]
        assert tree(mine, root) == graph_under(prefix, "invoke_workflow fx_agent")


def test_sigterm_exports_every_span(tmp_path: Path) -> None:
    """SIGTERM to a real ``langgraph dev`` whose spans all wait in the batch queue: every one is exported.

    The http.app set-up imports ``server_tracing`` from the web app module, in the server's main thread, so the
    SIGTERM flush is installed; uvicorn's graceful shutdown runs first, then the flush, then the process ends with
    SIGTERM's status.
    """
    runs = 3
    gen: Iterator[Served] = _serve(tmp_path, "langgraph.http.json", {"OTEL_BSP_SCHEDULE_DELAY": "600000"})
    served = next(gen)
    try:
        sdk = get_sync_client(url=served.server.url)
        for _ in range(runs):
            state = sdk.runs.wait(None, "fx", input=QUESTION)
            assert state["messages"][-1]["content"] == ANSWER
        time.sleep(0.5)
        assert server_spans(served.file) == [], "spans were exported before the signal: the test proves nothing"
        assert served.server.stop() == -15
    finally:
        gen.close()
    spans = server_spans(served.file)
    roots = [s for s in spans if s.name == "POST /runs/wait"]
    assert len(roots) == runs
    for root in roots:
        mine = [s for s in spans if s.trace_id == root.trace_id]
        assert tree(mine, root) == graph_under(["POST /runs/wait", "worker.stream_run"], "invoke_workflow fx_agent")
    assert {s.pid for s in spans} == {served.server.pid}
