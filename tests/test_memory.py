"""Bounded memory: runs that never end cannot grow the handler without bound, and ordinary traffic keeps RSS flat.

* 50k runs started and never ended (abandoned generators, crashed workers, lost callbacks), with a small
  ``max_open_runs`` and with the default: the registry plateaus at the bound, every evicted span is ended once with
  status ERROR and ``langchain.run.evicted=True``, the eviction warning is logged once, RSS plateaus.
* 100k ordinary invokes of a small chain traced to a discarding exporter: RSS after warm-up vs at the end.

Figures are printed (run with ``-s``) for the closing note. Callbacks are called directly for the 50k case (fast);
the invoke case goes through LangChain. RSS is only meaningful in a fresh process (run this file alone for the
figures): after other tests the allocator reuses freed arenas and hides growth, so the allocated-blocks count of
Python's allocator is asserted as well.
"""

from __future__ import annotations

import contextvars
import gc
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import psutil
import pytest
from langchain_core.runnables import RunnableLambda
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.handler.handler import DEFAULT_MAX_OPEN_RUNS

MB = 1024 * 1024
RUNS = 50_000
INVOKES = int(os.environ.get("OTEL_CALLBACKS_RSS_INVOKES", "100000"))


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def blocks() -> int:
    """Live blocks of Python's allocator: a leak signal that, unlike RSS, freed-but-kept arenas do not hide."""
    gc.collect()
    return sys.getallocatedblocks()


class CountingDiscard(SpanProcessor):
    """Keeps nothing (so it cannot hide a leak): counts ends, evicted ends and the evicted spans' statuses.

    A span ended twice never reaches on_end twice (the SDK refuses and logs "Calling end() on an ended span"); the
    tests count that warning instead of remembering span ids.
    """

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0
        self.evicted = 0
        self.evicted_not_error = 0
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended += 1
            if (span.attributes or {}).get("langchain.run.evicted") is True:
                self.evicted += 1
                if span.status.status_code != StatusCode.ERROR:
                    self.evicted_not_error += 1

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Discard(SpanExporter):
    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def start_abandoned(handler: OpenTelemetryCallbackHandler, ids: list[UUID], sizes: list[int]) -> None:
    """Start runs and never end them: chains, child models and tools under the previous run, some roots."""
    for i, run_id in enumerate(ids):
        parent = ids[i - 1] if i % 3 else None
        if i % 3 == 1:
            handler.on_chat_model_start({"name": "m"}, [["hi"]], run_id=run_id, parent_run_id=parent,
                                        invocation_params={"model": "m"}, metadata={"thread_id": "t"})
        elif i % 3 == 2:
            handler.on_tool_start({"name": "t"}, "x", run_id=run_id, parent_run_id=parent)
        else:
            handler.on_chain_start({"name": "c"}, {"q": i}, run_id=run_id, tags=["a"], metadata={"n": i})
        if i % 1000 == 999:
            sizes.append(handler.open_runs)


@pytest.mark.parametrize("max_open", [64, None], ids=["max_open_runs=64", "default"])
def test_never_ended_runs_plateau(max_open: int | None, caplog: pytest.LogCaptureFixture) -> None:
    counter = CountingDiscard()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(counter)
    handler = OpenTelemetryCallbackHandler(provider, max_open_runs=max_open)
    handler.raise_error = True
    bound = max_open or DEFAULT_MAX_OPEN_RUNS
    ids = [uuid4() for _ in range(RUNS)]
    sizes: list[int] = []
    checkpoints: dict[str, float] = {}

    def scenario() -> None:  # in its own context: the attached spans never touch the test's context
        checkpoints["before"] = rss() / MB
        start_abandoned(handler, ids[:20_000], sizes)
        checkpoints["20k"] = rss() / MB
        checkpoints["blocks 20k"] = blocks()
        start_abandoned(handler, ids[20_000:], sizes)
        checkpoints["50k"] = rss() / MB
        checkpoints["blocks 50k"] = blocks()

    caplog.set_level(logging.WARNING, logger="opentelemetry.sdk.trace")
    with caplog.at_level(logging.WARNING, logger="otel_callbacks"):
        contextvars.copy_context().run(scenario)
    try:
        assert max(sizes) == bound and sizes[-1] == bound, "the registry must plateau at max_open_runs"
        assert handler.open_runs == bound
        assert handler._runs.evicted == RUNS - bound
        assert counter.ended == RUNS - bound, "every evicted span is ended"
        assert counter.evicted == RUNS - bound and counter.evicted_not_error == 0
        assert double_ends(caplog) == 0
        assert len([r for r in caplog.records if "runs open at once" in r.getMessage()]) == 1
        growth = checkpoints["50k"] - checkpoints["20k"]
        print(f"\n{RUNS} never-ended runs, bound {bound}: RSS before {checkpoints['before']:.1f} MB, "
              f"after 20k {checkpoints['20k']:.1f} MB, after 50k {checkpoints['50k']:.1f} MB; plateau "
              f"{checkpoints['50k'] - checkpoints['before']:.1f} MB above start, growth 20k->50k {growth:.1f} MB; "
              f"allocated blocks 20k->50k {checkpoints['blocks 20k']:.0f} -> {checkpoints['blocks 50k']:.0f}")
        assert growth < 20, f"RSS kept growing after the plateau: +{growth:.1f} MB from 20k to 50k runs"
        # 30k more abandoned runs past the plateau: one leaked object per run would be 30k blocks
        assert checkpoints["blocks 50k"] - checkpoints["blocks 20k"] < 10_000
    finally:
        for run_id in ids[-bound:]:
            handler.on_chain_end({}, run_id=run_id)
        provider.shutdown()
    assert handler.open_runs == 0
    assert counter.ended == RUNS and double_ends(caplog) == 0


def double_ends(caplog: pytest.LogCaptureFixture) -> int:
    return len([r for r in caplog.records if "on an ended span" in r.getMessage()])


def test_eviction_ends_the_oldest_and_later_callbacks_for_it_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="opentelemetry.sdk.trace")
    counter = CountingDiscard()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(counter)
    handler = OpenTelemetryCallbackHandler(provider, max_open_runs=2)
    handler.raise_error = True
    a, b, c = uuid4(), uuid4(), uuid4()
    for run_id in (a, b, c):
        handler.on_chain_start({"name": "r"}, {}, run_id=run_id)
    assert handler.open_runs == 2 and counter.evicted == 1
    handler.on_chain_end({}, run_id=a)  # the evicted run's real end arrives late: ignored, not ended twice
    handler.on_llm_new_token("x", run_id=a)
    handler.on_chain_end({}, run_id=b)
    handler.on_chain_end({}, run_id=c)
    assert counter.ended == 3 and double_ends(caplog) == 0 and handler.open_runs == 0
    provider.shutdown()


def test_an_evicted_stream_leaves_the_chunk_fast_path() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    handler = OpenTelemetryCallbackHandler(provider, max_open_runs=1)
    handler.raise_error = True
    streamed, other = uuid4(), uuid4()
    handler.on_llm_start({}, ["q"], run_id=streamed)
    handler.on_llm_new_token("a", run_id=streamed)
    handler.on_llm_new_token("b", run_id=streamed)
    assert handler._runs.streaming[0] is streamed
    handler.on_chain_start({"name": "r"}, {}, run_id=other)  # evicts the stream, which keeps sending chunks
    assert handler._runs.streaming[0] is None
    handler.on_llm_new_token("c", run_id=streamed)
    assert handler._runs.streaming[0] is None and handler.open_runs == 1
    handler.on_chain_end({}, run_id=other)
    provider.shutdown()


def test_rss_flat_over_ordinary_invokes() -> None:
    exporter = Discard()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler = OpenTelemetryCallbackHandler(provider)
    chain = RunnableLambda(lambda x: {"n": x, "text": "abc" * 10})
    config: dict[str, Any] = {"callbacks": [handler], "metadata": {"thread_id": "t"}, "tags": ["bench"]}
    for i in range(2_000):  # warm-up: caches, interned strings, allocator arenas
        chain.invoke(i, config=config)  # type: ignore[arg-type]
    before, blocks_before = rss() / MB, blocks()
    middle = 0.0
    for i in range(INVOKES):
        chain.invoke(i, config=config)  # type: ignore[arg-type]
        if i == INVOKES // 2:
            middle = rss() / MB
    after, blocks_after = rss() / MB, blocks()
    provider.shutdown()
    print(f"\n{INVOKES} invokes traced to a discarding exporter: RSS after warm-up {before:.1f} MB, "
          f"half-way {middle:.1f} MB, end {after:.1f} MB (growth {after - before:+.1f} MB); allocated blocks "
          f"{blocks_before} -> {blocks_after}")
    assert blocks_after - blocks_before < INVOKES // 10, "objects accumulate per invoke"
    assert exporter.count == INVOKES + 2_000
    assert handler.open_runs == 0
    assert after - before < 30, f"RSS grew {after - before:.1f} MB over {INVOKES} invokes"
