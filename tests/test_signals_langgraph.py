"""SIGTERM flushes (issue 13, item 4) on a real ``langgraph dev`` server whose graph module sets tracing up.

langgraph-api imports graph modules in a worker thread of its event loop, after uvicorn installed its SIGTERM handler,
so ``signal.signal`` is refused there and no handler of ours can be installed. uvicorn's graceful shutdown then puts
the default disposition back and calls ``signal.raise_signal(SIGTERM)`` before atexit could run. Before the fix 0 of
the 27 spans of three runs, all waiting in the batch queue, were exported; set-up off the main thread now wraps
``signal.raise_signal``, so that re-raise flushes first.

The same holds with ``langgraph dev``'s default file watching: uvicorn's reloader then serves from a child process,
which it stops with SIGTERM and which re-raises it the same way (0 of 9 spans before, here too).

The server runs a small project written to the test's directory (its graph module calls ``setup_tracing`` the way a
user would), in the virtualenv of :mod:`tests._langgraph_server`, on 127.0.0.1, stopped by its pid (and the
reloader's child by its own, should it outlive the reloader).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest
from langgraph_sdk import get_sync_client

from tests import _langgraph_server

GRAPH = '''
import os
import threading

import otel_callbacks

print(f"graph module imported in thread {threading.current_thread().name} of process {os.getpid()}", flush=True)
otel_callbacks.setup_tracing(service_name="sigterm-graph")  # the set-up a user writes in the graph module
otel_callbacks.instrument()

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    n: int


def first(state: State) -> State:
    return {"n": state["n"] + 1}


def second(state: State) -> State:
    return {"n": state["n"] * 2}


builder = StateGraph(State)
builder.add_node("first", first)
builder.add_node("second", second)
builder.add_edge(START, "first")
builder.add_edge("first", "second")
builder.add_edge("second", END)
graph = builder.compile(name="sigterm_graph")
'''

RUNS = 3
TRACE = ["first", "invoke_workflow sigterm_graph", "second"]  # one run's spans, by name
# The teardown of langgraph-api's lifespan, logged by uvicorn's graceful shutdown before it re-raises SIGTERM.
TEARDOWN = "Shutting down background workers"


def _project(directory: Path) -> Path:
    directory.mkdir()
    (directory / "graph.py").write_text(GRAPH, encoding="utf-8")
    (directory / "langgraph.json").write_text(json.dumps({"dependencies": ["."],
                                                          "graphs": {"g": "./graph.py:graph"}}), encoding="utf-8")
    return directory


def _spans_by_trace(path: Path) -> dict[str, list[str]]:
    traces: dict[str, list[str]] = defaultdict(list)
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            for resource_spans in json.loads(line)["resourceSpans"]:
                for scope in resource_spans["scopeSpans"]:
                    for span in scope["spans"]:
                        traces[span["traceId"]].append(span["name"])
    return traces


def _plain(log: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", log)  # langgraph's console log is coloured


def _serving_pid(log: Path) -> int | None:
    found = re.search(r"graph module imported in thread \S+ of process (\d+)", _plain(log.read_text(errors="replace")))
    return int(found.group(1)) if found else None


@pytest.mark.parametrize("reload", [False, True], ids=["no-reload", "reload"])
def test_graph_module_setup_exports_every_span_at_sigterm(tmp_path: Path, reload: bool) -> None:
    """Three runs' spans wait in the batch queue (its timer pushed out); SIGTERM: the server shuts down as it does
    (lifespan teardown, exit status -15, or 0 from the reloader whose child it was) and every span is in the
    file."""
    file = tmp_path / "spans.jsonl"
    log = tmp_path / "server.log"
    env = {"OTEL_TRACES_EXPORTER": "file", "OTEL_CALLBACKS_FILE_PATH": str(file),
           "OTEL_BSP_SCHEDULE_DELAY": "600000"}
    start = _langgraph_server.start_reloading if reload else _langgraph_server.start
    server = start(_project(tmp_path / "project"), env, log)
    serving = _serving_pid(log)
    try:
        sdk = get_sync_client(url=server.url)
        for n in range(RUNS):
            assert sdk.runs.wait(None, "g", input={"n": n}) == {"n": (n + 1) * 2}
        time.sleep(0.5)
        assert _spans_by_trace(file) == {}, "spans were exported before the signal: the test proves nothing"
        status = server.stop()
    finally:
        server.stop()
        if serving is not None and serving != server.pid:
            with contextlib.suppress(ProcessLookupError):  # gone with the reloader, as it should be
                os.kill(serving, signal.SIGKILL)
                raise AssertionError(f"the reloader's child {serving} outlived it")
    text = _plain(log.read_text(encoding="utf-8", errors="replace"))
    imported = re.search(r"graph module imported in thread (\S+)", text)
    assert imported is not None and imported.group(1) != "MainThread", "the graph module must load off the main thread"
    assert serving is not None and (serving != server.pid) == reload
    assert status == (0 if reload else -15), text[-3000:]
    assert TEARDOWN in text  # uvicorn's graceful shutdown ran before the process ended
    traces = _spans_by_trace(file)
    mode = "reload" if reload else "no-reload"
    print(f"\nlanggraph dev ({mode}), graph-module set-up: {sum(map(len, traces.values()))} of {RUNS * len(TRACE)} "
          f"spans exported, exit {status}, stop {server.stop_seconds:.2f} s")
    assert sorted(sorted(names) for names in traces.values()) == [TRACE] * RUNS
    assert "re-raises SIGTERM with signal.raise_signal" in text  # what set-up did is said at info level
