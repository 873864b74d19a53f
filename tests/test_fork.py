"""Process fork (gunicorn/celery pre-fork): what happens to the provider, the BatchSpanProcessor and our handler.

Every scenario runs in a fresh interpreter (``subprocess`` with a timeout) that forks, so a deadlock or a crash in the
child cannot hang or kill pytest. The child reports what it saw as JSON through a pipe; the parent prints the whole
picture as JSON on stdout.

Findings (opentelemetry-sdk 1.45, Linux):

* Fork with no run open (pre-fork servers): tracing works in the child with the same provider and handler, no
  re-creation needed. The SDK's at-fork hooks restart the BatchSpanProcessor's worker thread and clear its queue in
  the child, so spans the parent had queued are exported by the parent only, never twice. (The default resource has
  no ``process.pid``; with the process resource detector the SDK's fork hook refreshes it in the child.)
* Fork while a run is open (``os.fork`` inside a tool, multiprocessing with the fork start method): the child inherits
  a copy of the handler's registry and of the current context. The open run's span is current in the child, and
  runs/spans the child starts nest under it (same trace). If the child also ends the inherited run, that span is
  exported twice - once by each process, same span id. Nothing in the child ends inherited runs on its own.
* The registry's ``threading.Lock`` has no at-fork reinit: a fork while another thread holds it (evicting, or adding
  token usage to the parents of a model run) leaves the child's copy locked forever, and the child deadlocks on its
  first model run with usage under a parent (``RunRegistry.add_usage``) or its first eviction.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="os.fork semantics tested on Linux")

SCRIPT = textwrap.dedent('''
    import json, os, select, signal, sys, threading, time
    from uuid import uuid4

    from langchain_core.runnables import RunnableLambda
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_callbacks import OpenTelemetryCallbackHandler

    mode = sys.argv[1]
    exporter = InMemorySpanExporter()
    # a long schedule delay: spans wait in the queue until force_flush, so "pending at fork time" is deterministic
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    handler = OpenTelemetryCallbackHandler(provider)
    handler.raise_error = True
    chain = RunnableLambda(lambda x: x + 1) | RunnableLambda(lambda x: x * 2)

    def spans():
        return [{"name": s.name, "span_id": s.context.span_id, "trace_id": s.context.trace_id,
                 "parent": s.parent.span_id if s.parent else None,
                 "pid": s.resource.attributes.get("process.pid")} for s in exporter.get_finished_spans()]

    def in_child(work):
        """Fork; run work() in the child, return its JSON result (or a timeout/crash marker) to the parent."""
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                signal.alarm(5)  # a deadlocked child dies instead of hanging
                result = work()
            except BaseException as exc:
                result = {"error": repr(exc)}
            os.write(write, json.dumps(result).encode())
            os.close(write)
            os._exit(0)
        os.close(write)
        data = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read], [], [], 0.2)
            if ready:
                chunk = os.read(read, 65536)
                if not chunk:
                    break
                data += chunk
        os.close(read)
        _, status = os.waitpid(pid, 0)
        if not data:
            return {"crashed": True, "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}
        return json.loads(data)

    out = {"parent_pid": os.getpid()}
    if mode == "prefork":
        chain.invoke(1, config={"callbacks": [handler]})
        provider.force_flush()
        exporter.clear()
        chain.invoke(2, config={"callbacks": [handler]})  # queued, not yet exported, when the fork happens

        def child():
            exporter.clear()
            result = {"pid": os.getpid(), "open_runs": handler.open_runs,
                      "value": chain.invoke(3, config={"callbacks": [handler]})}
            provider.force_flush()
            result["spans"] = spans()
            result["worker_alive"] = processor._batch_processor._worker_thread.is_alive()
            return result

        out["child"] = in_child(child)
        provider.force_flush()
        out["parent_spans"] = spans()
    elif mode == "open-run":
        root = uuid4()
        handler.on_chain_start({"name": "root"}, {}, run_id=root)

        def child():
            result = {"pid": os.getpid(), "open_runs": handler.open_runs,
                      "current_span_is_root": trace.get_current_span().is_recording()}
            kid = uuid4()
            handler.on_tool_start({"name": "in-child"}, "x", run_id=kid, parent_run_id=root)
            handler.on_tool_end("y", run_id=kid)
            with provider.get_tracer("user").start_as_current_span("user-span-in-child"):
                pass
            handler.on_chain_end({}, run_id=root)  # the child also ends the inherited run
            provider.force_flush()
            result["spans"] = spans()
            return result

        out["child"] = in_child(child)
        handler.on_chain_end({}, run_id=root)
        provider.force_flush()
        out["parent_spans"] = spans()
    elif mode == "lock-held":
        held, release = threading.Event(), threading.Event()

        from otel_callbacks.emit import lean_span

        def holder():
            # as if this thread were evicting, adding usage or ending a lean span at fork time
            with handler._runs._lock, lean_span._END_LOCK:
                held.set()
                release.wait(30)

        thread = threading.Thread(target=holder)
        thread.start()
        held.wait(5)

        def child():
            # a model run with usage under a chain: RunRegistry.add_usage takes the lock (so does eviction)
            from langchain_core.messages import AIMessage
            from langchain_core.outputs import ChatGeneration, LLMResult

            root, model = uuid4(), uuid4()
            handler.on_chain_start({"name": "after-fork"}, {}, run_id=root)
            handler.on_chat_model_start({}, [["hi"]], run_id=model, parent_run_id=root)
            message = AIMessage("x", usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2})
            handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=model)
            handler.on_chain_end({}, run_id=root)
            return {"ok": True}

        out["child"] = in_child(child)
        release.set()
        thread.join(5)
    provider.shutdown()
    print(json.dumps(out))
''')


def run_scenario(mode: str, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "fork_scenario.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, timeout=90,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{mode}: {json.dumps(result)[:1500]}")
    return result


def test_prefork_child_traces_with_the_inherited_provider(tmp_path: Path) -> None:
    result = run_scenario("prefork", tmp_path)
    child, parent_spans = result["child"], result["parent_spans"]
    assert "error" not in child and "crashed" not in child, child
    assert child["value"] == 8
    assert child["open_runs"] == 0
    assert child["worker_alive"] is True  # the SDK's at-fork hook restarted the batch worker in the child
    # the child exported its own chain's three spans ...
    assert len(child["spans"]) == 3 and "RunnableSequence" in {s["name"] for s in child["spans"]}
    # ... and none of the spans the parent had queued at fork time: those are exported by the parent, once
    assert len(parent_spans) == 3
    assert not {s["span_id"] for s in parent_spans} & {s["span_id"] for s in child["spans"]}
    assert not {s["trace_id"] for s in parent_spans} & {s["trace_id"] for s in child["spans"]}


def test_fork_inside_an_open_run(tmp_path: Path) -> None:
    result = run_scenario("open-run", tmp_path)
    child, parent_spans = result["child"], result["parent_spans"]
    assert "error" not in child and "crashed" not in child, child
    assert child["open_runs"] == 1  # the parent's open run, inherited
    assert child["current_span_is_root"] is True
    by_name = {s["name"]: s for s in child["spans"]}
    parent_root = next(s for s in parent_spans if s["name"] == "root")
    # the child's runs and the user's own spans nest under the inherited run's span, in the same trace
    assert by_name["execute_tool in-child"]["parent"] == parent_root["span_id"]
    assert by_name["user-span-in-child"]["parent"] == parent_root["span_id"]
    assert by_name["execute_tool in-child"]["trace_id"] == parent_root["trace_id"]
    # documented hazard: both processes ended the run, so its span is exported twice with the same id
    assert by_name["root"]["span_id"] == parent_root["span_id"]


def test_fork_while_another_thread_holds_the_registry_lock(tmp_path: Path) -> None:
    result = run_scenario("lock-held", tmp_path)
    assert result["child"] == {"ok": True}
