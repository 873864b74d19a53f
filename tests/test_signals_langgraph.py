"""SIGTERM flushes (issue 13, item 4) when tracing is set up off the main thread, as in a langgraph dev graph.

langgraph-api imports graph modules in a worker thread of its event loop, after uvicorn installed its SIGTERM handler,
so ``signal.signal`` is refused there and no handler of ours can be installed. uvicorn's graceful shutdown then puts
the default disposition back and calls ``signal.raise_signal(SIGTERM)`` before atexit could run. Before the fix 0 of
the 27 spans of three runs, all waiting in the batch queue, were exported; set-up off the main thread now wraps
``signal.raise_signal``, so that re-raise flushes first.

The same holds with ``langgraph dev``'s default file watching: uvicorn's reloader then serves from a child process,
which it stops with SIGTERM and which re-raises it the same way (0 of 9 spans before, here too).

The server runs a small project written to the test's directory (its graph module calls ``setup_tracing`` the way a
user would), in the virtualenv of :mod:`tests._langgraph_server`, on 127.0.0.1, stopped by its pid (and the
reloader's child by its own, should it outlive the reloader). The last tests need no server: set-up in a thread
wraps ``raise_signal`` and warns when nothing handles SIGTERM, and a handler installed on the main thread afterwards
that re-raises, as uvicorn's does, gets the flush.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import pytest
from langgraph_sdk import get_sync_client

from tests import _langgraph_server
from tests.test_signals import ROOT, _env, _file_span_names, _lines_until, started

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


# Off the main thread without a real server: what is wrapped, what is said, and a server that comes later.

def test_setup_off_the_main_thread_wraps_raise_signal_and_warns_once() -> None:
    """Python allows signal handlers only on the main thread: set-up from another thread leaves the disposition
    alone and wraps signal.raise_signal instead; with nothing handling SIGTERM it warns, once, what to do. The
    wrapper passes other signals, and a SIGTERM that a handler catches, straight through. Set-up on the main thread
    then installs our handler and puts the interpreter's raise_signal back."""
    code = """
        import logging, signal, threading
        from otel_callbacks.setup import signals
        from otel_callbacks.setup.tracing import setup_tracing
        logging.basicConfig(format="%(levelname)s %(message)s")
        interpreters = signal.raise_signal
        for _ in range(2):
            thread = threading.Thread(target=lambda: setup_tracing("none", set_global=False), name="setup-thread")
            thread.start(); thread.join()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert signals.raise_signal_wrapped() and signal.raise_signal is not interpreters
        caught = []
        signal.signal(signal.SIGUSR2, lambda sig, frame: caught.append(sig))
        signal.raise_signal(signal.SIGUSR2)
        signal.signal(signal.SIGTERM, lambda sig, frame: caught.append(sig))
        signal.raise_signal(signal.SIGTERM)  # caught: nothing to flush for, the wrapper stays
        assert caught == [signal.SIGUSR2, signal.SIGTERM] and signals.raise_signal_wrapped()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        setup_tracing("none", set_global=False)
        assert signals.installed() and not signals.raise_signal_wrapped() and signal.raise_signal is interpreters
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env=_env(), cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, result.stderr
    assert "outside the main thread (setup-thread)" in warnings[0]
    assert "otel_callbacks.flush_and_shutdown()" in warnings[0] and "http.app" in warnings[0]


THREAD_WORKER = """
import sys, threading
from otel_callbacks.setup.tracing import setup_tracing

# Set up in a thread, then a server-like main thread takes SIGTERM over and re-raises it after its shutdown.
thread = threading.Thread(target=lambda: setup_tracing(["file"], file_path=sys.argv[1]))
thread.start(); thread.join()
import signal, time
from opentelemetry import trace

stop = []
previous = signal.signal(signal.SIGTERM, lambda sig, frame: stop.append(sig))
with trace.get_tracer("t").start_as_current_span("pending"):
    pass
print("ready", flush=True)
while not stop:
    time.sleep(0.02)
signal.signal(signal.SIGTERM, previous)
signal.raise_signal(signal.SIGTERM)
print("survived", flush=True)
"""


def test_server_started_after_a_thread_setup_flushes_at_its_reraise(tmp_path: Path) -> None:
    """Set-up in a thread, then a handler installed on the main thread that restores the default and re-raises
    (uvicorn's way): the re-raise flushes the pending span first, and the process still ends with SIGTERM's
    status."""
    path = tmp_path / "t.jsonl"
    with started(THREAD_WORKER, str(path)) as proc:
        _lines_until(proc, "ready", time.monotonic() + 60)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err
    assert "survived" not in out
    assert _file_span_names(path) == ["pending"]
