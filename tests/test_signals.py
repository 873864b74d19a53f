"""SIGTERM flushes (issue 13, item 4): pending spans and metrics are exported, for a bounded time, before the process
ends as SIGTERM would (exit status -15), whether or not a server handles the signal first.

Real processes on 127.0.0.1, stopped by pid. Before: a worker at 10 runs/s killed after 3 s lost every span (the
batch processor exports every 5 s and SIGTERM's default action skips atexit), and so did a uvicorn server, which shuts
down gracefully, puts back the previous handler and re-raises the signal.

uvicorn is not in the test environment (nothing there depends on it), so :data:`STAND_IN` reproduces its signal
handling exactly, as in uvicorn 0.54 ``Server.capture_signals`` / ``handle_exit``: ``signal.signal`` installs its
handler and keeps the previous one; the handler records the signal and sets ``should_exit``; the app is loaded
*after* that (uvicorn's ``config.load()`` runs inside ``capture_signals``, so ``uvicorn app:app`` sets tracing up with
uvicorn's handler already installed); shutdown stops accepting, waits for the requests in flight, puts the previous
handler back and calls ``signal.raise_signal`` for each captured signal. The same scenarios were run against the real
uvicorn 0.54 by hand, with the same results (see the closing note of issue 13).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests._otlp_receiver import HttpReceiver
from tests.test_failing_exporters import collector

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import sys, time
from langchain_core.runnables import RunnableLambda
from opentelemetry import metrics
import otel_callbacks
from otel_callbacks.setup.tracing import setup_tracing

if sys.argv[1] == "file":
    setup_tracing(["file"], file_path=sys.argv[2])
else:
    setup_tracing(["otlp"], endpoint=sys.argv[2], protocol="http/protobuf", metrics=True)
runs = metrics.get_meter("worker").create_counter("worker.runs")
handler = otel_callbacks.OpenTelemetryCallbackHandler()
chain = RunnableLambda(lambda x: x + 1) | RunnableLambda(lambda x: x * 2)
i = 0
while True:  # a worker at about 10 runs a second, until SIGTERM
    print(f"started {i}", flush=True)
    chain.invoke(i, config={"callbacks": [handler], "run_name": f"run-{i}"})
    runs.add(1)
    print(f"done {i}", flush=True)
    i += 1
    time.sleep(0.1)
"""

STAND_IN = """
import faulthandler, signal, sys, threading, time
faulthandler.register(signal.SIGUSR1)  # a test that waits in vain dumps the stacks
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SETUP_AT, TRACE_FILE = sys.argv[1], sys.argv[2]
if sys.argv[3] == "no-watcher":  # as on systems without /proc: only the exit path delivers the deferred signal
    import otel_callbacks.setup.signals as signals
    signals._pending_reader = lambda: None


printing = threading.Lock()


def load_app():
    from langchain_core.runnables import RunnableLambda
    import otel_callbacks
    from otel_callbacks.setup.tracing import setup_tracing

    if SETUP_AT in ("app-import", "app-import-thread", "before-server+app-import-thread"):
        setup_tracing(["file"], file_path=TRACE_FILE)
    handler = otel_callbacks.OpenTelemetryCallbackHandler()
    chain = RunnableLambda(lambda x: x) | RunnableLambda(lambda x: time.sleep(0.3) or x)

    class App(BaseHTTPRequestHandler):
        def do_GET(self):
            n = self.path.strip("/")
            with printing:  # print() writes the text and the newline apart: lines of two threads would merge
                print(f"serving {n}", flush=True)
            chain.invoke(n, config={"callbacks": [handler], "run_name": f"request-{n}"})
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    return App


def load_app_in_a_thread():  # as langgraph-api imports graph modules: in a worker thread, uvicorn's handler in place
    loaded = []
    loader = threading.Thread(target=lambda: loaded.append(load_app()), name="loader")
    loader.start()
    loader.join()
    return loaded[0]


class Draining(ThreadingHTTPServer):
    daemon_threads = False  # so that server_close joins the request threads: uvicorn waits for its connections


class Server:  # uvicorn's signal handling, as its Server.capture_signals and handle_exit do it
    def __init__(self):
        self.should_exit = False
        self.captured = []

    def handle_exit(self, sig, frame):
        self.captured.append(sig)
        self.should_exit = True

    def run(self):
        original = signal.signal(signal.SIGTERM, self.handle_exit)
        try:
            app = load_app_in_a_thread() if SETUP_AT.endswith("-thread") else load_app()  # uvicorn's config.load()
            http = Draining(("127.0.0.1", 0), app)
            threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}).start()
            print(f"ready {http.server_address[1]}", flush=True)
            while not self.should_exit:
                time.sleep(0.05)
            http.shutdown()  # stop accepting
            http.server_close()  # wait for the requests in flight
        finally:
            signal.signal(signal.SIGTERM, original)
        for sig in reversed(self.captured):
            signal.raise_signal(sig)


if SETUP_AT.startswith("before-server"):
    from otel_callbacks.setup.tracing import setup_tracing

    setup_tracing(["file"], file_path=TRACE_FILE)
Server().run()
"""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


@contextmanager
def started(code: str, *args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """A Python process running ``code``; killed by its pid if still alive at the end."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(env), cwd=ROOT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _lines_until(proc: subprocess.Popen[str], prefix: str, deadline: float, count: int = 1) -> list[str]:
    """stdout lines up to the ``count``-th starting with ``prefix``'s first word (read in a thread, so that the
    deadline holds)."""
    lines: list[str] = []
    found = threading.Event()
    word = prefix.split()[0]

    def read() -> None:
        assert proc.stdout is not None
        seen = 0
        for line in proc.stdout:
            lines.append(line.strip())
            seen += line.startswith(word) if count > 1 else line.startswith(prefix)
            if seen >= count:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(max(deadline - time.monotonic(), 0)):
        os.kill(proc.pid, signal.SIGUSR1)
        time.sleep(1)
        os.kill(proc.pid, signal.SIGKILL)
        raise AssertionError(f"no {prefix!r} line after {lines}; stderr: {proc.stderr.read() if proc.stderr else ''}")
    return lines


def _file_span_names(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [span["name"] for line in path.read_text().splitlines()
            for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]


def _terminate_worker(proc: subprocess.Popen[str], after_s: float) -> tuple[set[int], set[int], str]:
    """Let the worker run ``after_s``, SIGTERM it, wait: (runs started, runs done, stderr)."""
    _lines_until(proc, "done 0", time.monotonic() + 60)  # imports take a while on a loaded machine
    time.sleep(after_s)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    lines = out.splitlines()
    started_runs = {int(line.split()[1]) for line in lines if line.startswith("started")}
    done = {int(line.split()[1]) for line in lines if line.startswith("done")}
    return started_runs | {0}, done | {0}, err


def _assert_every_done_run_arrived(names: list[str], started_runs: set[int], done: set[int]) -> None:
    arrived = {int(n.split("-")[1]) for n in names if n.startswith("run-")}
    assert len(started_runs - done) <= 1  # at most the run the signal interrupted
    assert done <= arrived, f"runs done but not exported: {sorted(done - arrived)}"
    # every run is a chain of two lambdas: three spans; none of a finished run is missing
    assert names.count("RunnableLambda") >= 2 * len(done)


class TestPlainWorker:
    def test_file_exporter_loses_nothing(self, tmp_path: Path) -> None:
        """Killed with SIGTERM after about 3 s: every finished run's spans are in the file, and the process ended
        with the status SIGTERM gives."""
        path = tmp_path / "t.jsonl"
        with started(WORKER, "file", str(path)) as proc:
            started_runs, done, err = _terminate_worker(proc, 3)
        names = _file_span_names(path)
        print(f"\nplain worker, file: {len(done)} runs done, {len(names)} spans exported, exit {proc.returncode}")
        assert proc.returncode == -signal.SIGTERM, err
        assert len(done) >= 10
        _assert_every_done_run_arrived(names, started_runs, done)

    def test_otlp_spans_and_metrics_lose_nothing(self) -> None:
        """The same worker exporting spans and metrics over OTLP/HTTP to a receiver on 127.0.0.1: every finished
        run's spans arrive, and the run counter's last value equals the runs done."""
        with HttpReceiver() as receiver, started(WORKER, "otlp", receiver.endpoint) as proc:
            started_runs, done, err = _terminate_worker(proc, 3)
            names = receiver.span_names()
            counter = receiver.last_metrics().get("worker.runs")
        print(f"\nplain worker, OTLP: {len(done)} runs done, {len(names)} spans received, exit {proc.returncode}")
        assert proc.returncode == -signal.SIGTERM, err
        _assert_every_done_run_arrived(names, started_runs, done)
        assert counter is not None and counter.sum.data_points[0].as_int == len(done)

    def test_flush_is_bounded_with_a_dead_collector(self) -> None:
        """A collector that never answers cannot keep a SIGTERMed process alive past the exit timeout (500 ms here;
        the exporter's request timeout is 10 s)."""
        with collector("blackhole") as port, started(WORKER, "otlp", f"http://127.0.0.1:{port}",
                                                     env={"OTEL_CALLBACKS_EXIT_TIMEOUT": "500"}) as proc:
            _lines_until(proc, "done 2", time.monotonic() + 60)
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            elapsed = time.monotonic() - start
        assert proc.returncode == -signal.SIGTERM, err
        assert "Gave up flushing spans after 500 ms" in err
        assert elapsed < 5


class TestServer:
    def _serve_and_terminate(self, setup_at: str, tmp_path: Path, watcher: str = "watcher"
                             ) -> tuple[subprocess.Popen[str], list[int], list[str], str]:
        path = tmp_path / "t.jsonl"
        with started(STAND_IN, setup_at, str(path), watcher) as proc:
            port = int(_lines_until(proc, "ready", time.monotonic() + 60)[-1].split()[1])
            answered: list[int] = []

            def get(n: int) -> None:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/{n}", timeout=30) as response:
                    if response.status == 200:
                        answered.append(n)

            for n in range(5):  # finished before the signal: their spans wait in the batch queue
                get(100 + n)
            in_flight = [threading.Thread(target=get, args=(n,)) for n in range(10)]
            for thread in in_flight:
                thread.start()
            serving = _lines_until(proc, "serving", time.monotonic() + 30, count=15)  # 5 warm-ups, then the 10
            assert len([line for line in serving if line.startswith("serving") and int(line.split()[1]) < 10]) == 10
            proc.send_signal(signal.SIGTERM)  # the 10 requests are being served (each takes 300 ms)
            for thread in in_flight:
                thread.join(30)
            _, err = proc.communicate(timeout=60)
        return proc, answered, _file_span_names(path), err

    @pytest.mark.parametrize(("setup_at", "watcher"), [("before-server", "watcher"), ("app-import", "watcher"),
                                                        ("app-import", "no-watcher"), ("app-import-thread", "watcher"),
                                                        ("before-server+app-import-thread", "watcher")])
    def test_graceful_drain_then_flush(self, tmp_path: Path, setup_at: str, watcher: str) -> None:
        """Tracing set up before the server started, or while it loads the app (its handler already installed;
        also without the Linux watcher; also in a thread, where only signal.raise_signal can be wrapped, alone or
        after a set-up before the server started): the server still drains (the 10 requests in flight at SIGTERM
        are answered), every answered request's spans are exported, and the process ends with SIGTERM's status."""
        proc, answered, names, err = self._serve_and_terminate(setup_at, tmp_path, watcher)
        requests = {int(n.split("-")[1]) for n in names if n.startswith("request-")}
        print(f"\nserver ({setup_at}, {watcher}): {len(answered)} answered, {len(requests)} request spans, "
              f"exit {proc.returncode}")
        assert proc.returncode == -signal.SIGTERM, err
        assert sorted(answered) == [*range(10), *range(100, 105)]
        assert requests == set(answered)


APP_HANDLER = """
import signal, sys, time
from otel_callbacks.setup.tracing import setup_tracing

stop = False
def on_term(sig, frame):  # an application that stops its own loop on SIGTERM
    global stop
    stop = True

signal.signal(signal.SIGTERM, on_term)
provider = setup_tracing(["file"], file_path=sys.argv[1])
print("ready", flush=True)
while not stop:
    time.sleep(0.02)
with provider.get_tracer("t").start_as_current_span("after-own-handler"):
    pass
print("stopped", flush=True)
"""

OWNS_SIGNALS = """
import signal, sys, time
from otel_callbacks.setup.lifecycle import flush_and_shutdown
from otel_callbacks.setup.tracing import setup_tracing

provider = setup_tracing(["file"], file_path=sys.argv[1])

def on_term(sig, frame):  # installed after set-up: it replaces ours, and flushes itself
    flush_and_shutdown(2000)
    signal.signal(sig, signal.SIG_DFL)
    signal.raise_signal(sig)

signal.signal(signal.SIGTERM, on_term)
with provider.get_tracer("t").start_as_current_span("pending"):
    pass
print("ready", flush=True)
time.sleep(60)
"""


class TestApplicationHandlers:
    def test_handler_installed_before_setup_still_runs(self, tmp_path: Path) -> None:
        """An application's own SIGTERM handler, installed before set-up, is called as before; its loop ends
        normally, so the exit flush exports its last span and the exit status is 0."""
        path = tmp_path / "t.jsonl"
        with started(APP_HANDLER, str(path)) as proc:
            _lines_until(proc, "ready", time.monotonic() + 60)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "stopped" in out
        assert _file_span_names(path) == ["after-own-handler"]

    def test_application_that_owns_signals_calls_flush_and_shutdown(self, tmp_path: Path) -> None:
        """A handler installed after set-up replaces ours; calling flush_and_shutdown from it exports what was
        pending."""
        path = tmp_path / "t.jsonl"
        with started(OWNS_SIGNALS, str(path)) as proc:
            _lines_until(proc, "ready", time.monotonic() + 60)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGTERM, err
        assert _file_span_names(path) == ["pending"]

    def test_ignored_sigterm_is_left_alone(self) -> None:
        """A process that ignores SIGTERM keeps ignoring it after set-up."""
        code = """
            import signal
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            from otel_callbacks.setup.tracing import setup_tracing
            setup_tracing("none")
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            signal.raise_signal(signal.SIGTERM)
            print("alive")
        """
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                                env=_env(), cwd=ROOT, timeout=60)
        assert (result.returncode, result.stdout.strip()) == (0, "alive"), result.stderr
