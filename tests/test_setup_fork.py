"""Locks the set-up layer owns are made anew in a forked child (issue 13, item 5, the exporters' part).

Before: the file exporter's lock was copied into the child as it was at the fork; when the parent's batch worker was
writing at that moment the child could never write, and its exit flush gave up after 5 s with every span lost (1 of
40 forks with no run open, up to 20 of 40 with a parent thread tracing). Each test runs a fresh interpreter that
forks, and checks what reached the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._otlp_receiver import GrpcReceiver, HttpReceiver
from tests.test_setup import run_script


def _span_names(path: Path) -> list[str]:
    return [span["name"] for line in path.read_text().splitlines()
            for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]]


@pytest.mark.parametrize("kind", ["file", "console"])
def test_child_writes_although_the_lock_was_held_at_the_fork(tmp_path: Path, kind: str) -> None:
    """Another thread holds the file (or console) exporter's lock while the process forks: the child's span still
    reaches the file (or stdout), and its exit flush does not give up."""
    path = tmp_path / "t.jsonl"
    make = f"OtlpJsonFileSpanExporter({str(path)!r})" if kind == "file" else "ConsoleTreeSpanExporter()"
    result = run_script(f"""
        import os, threading
        from otel_callbacks.setup.exporters import ConsoleTreeSpanExporter, OtlpJsonFileSpanExporter
        from otel_callbacks.setup.tracing import setup_tracing

        exporter = {make}
        provider = setup_tracing([exporter])
        held, release = threading.Event(), threading.Event()

        def hold():  # as the batch worker does while it writes a batch
            with exporter._lock:
                held.set()
                release.wait(30)

        threading.Thread(target=hold, daemon=True).start()
        held.wait(10)
        pid = os.fork()
        if pid == 0:
            with provider.get_tracer("t").start_as_current_span("in-child"):
                pass
        else:
            release.set()
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    """, env={"OTEL_CALLBACKS_EXIT_TIMEOUT": "5000"})
    assert result.returncode == 0, result.stderr
    assert "Gave up" not in result.stderr
    if kind == "file":
        assert _span_names(path) == ["in-child"]
    else:
        assert "└─ in-child" in result.stdout


def test_forty_forks_while_a_parent_thread_traces(tmp_path: Path) -> None:
    """A parent thread ends spans non-stop (its batch worker writes every 1 ms) while the main thread forks 40
    children one after another; every child's span reaches the file."""
    path = tmp_path / "t.jsonl"
    result = run_script(f"""
        import os, threading, time
        from otel_callbacks.setup.tracing import setup_tracing

        provider = setup_tracing(["file"], file_path={str(path)!r})
        tracer = provider.get_tracer("t")
        stop = threading.Event()

        def trace():
            while not stop.is_set():
                tracer.start_span("in-parent").end()
                time.sleep(0.0002)

        threading.Thread(target=trace, daemon=True).start()
        time.sleep(0.2)
        children = []
        for i in range(40):
            pid = os.fork()
            if pid == 0:
                stop.set()  # a copy of the flag: the child's tracing thread does not exist anyway
                tracer.start_span(f"child-{{i}}").end()
                os._exit(0 if provider.force_flush(5000) else 1)
            children.append(pid)
            time.sleep(0.01)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
        stop.set()
        assert codes == [0] * 40, codes
    """, env={"OTEL_BSP_SCHEDULE_DELAY": "1", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4"}, timeout=120)
    assert result.returncode == 0, result.stderr
    names = _span_names(path)
    assert sorted(n for n in names if n.startswith("child-")) == sorted(f"child-{i}" for i in range(40))


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_forty_forks_while_a_parent_thread_traces_over_otlp(protocol: str) -> None:
    """The same forty forks with the official OTLP exporter: every child's span reaches the receiver, and the
    parent's spans keep arriving (a child must not write into the parent's pooled connection)."""
    receiver_class = GrpcReceiver if protocol == "grpc" else HttpReceiver
    with receiver_class() as receiver:
        result = run_script(f"""
            import os, threading, time
            from otel_callbacks.setup.tracing import setup_tracing

            provider = setup_tracing(["otlp"], endpoint={receiver.endpoint!r}, protocol={protocol!r})
            tracer = provider.get_tracer("t")
            stop = threading.Event()

            def trace():
                while not stop.is_set():
                    tracer.start_span("in-parent").end()
                    time.sleep(0.0002)

            threading.Thread(target=trace, daemon=True).start()
            time.sleep(0.2)
            children = []
            for i in range(40):
                pid = os.fork()
                if pid == 0:
                    stop.set()
                    tracer.start_span(f"child-{{i}}").end()
                    os._exit(0 if provider.force_flush(10_000) else 1)
                children.append(pid)
                time.sleep(0.01)
            codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
            stop.set()
            tracer.start_span("parent-last").end()
            assert provider.force_flush(10_000)
            assert codes == [0] * 40, codes
        """, env={"OTEL_BSP_SCHEDULE_DELAY": "1", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4"}, timeout=180)
        assert result.returncode == 0, result.stderr[-4000:]
        names = receiver.span_names()
    assert sorted(n for n in names if n.startswith("child-")) == sorted(f"child-{i}" for i in range(40))
    assert "parent-last" in names
