"""Times one tracer against the no-tracing baseline in this process and writes the raw numbers as JSON.

Run by run.py, once per tracer, with the tracer's own venv python:
    python benchmarks/worker.py --tracer ours --out /tmp/ours.json [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tracers
import workloads


@dataclass(frozen=True)
class Plan:
    """How much to run: pairs of (baseline, traced) blocks per workload, each baseline block ~``block_seconds``.

    Blocks are sized from a calibration of the baseline rather than fixed counts, so a run takes about the same
    time on a loaded machine; short blocks, alternated with baseline blocks, let both sides of a pair see the same
    machine load.
    """

    pairs: int
    block_seconds: float
    sustained_seconds: float


FULL = Plan(pairs=12, block_seconds=0.1, sustained_seconds=1.0)
QUICK = Plan(pairs=5, block_seconds=0.04, sustained_seconds=0.3)


def _calibrate(time_n: Callable[[dict[str, Any], int], float], config: dict[str, Any], seconds: float) -> int:
    """Calls per block so that a baseline block lasts about ``seconds`` (this also warms the workload up)."""
    per_call_us = min(time_n(config, 5) for _ in range(3))
    return max(5, round(seconds * 1e6 / per_call_us))


def _rss_kib() -> int:
    # /proc is there on the Linux machines this runs on; elsewhere memory is simply not reported.
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:
        return -1


# CPU time of the whole process (all threads, so the BatchSpanProcessor's thread is included) rather than wall time:
# the 2-core machines are shared with test runs, and while another process holds a core, wall time counts the wait.
CLOCKS: dict[str, Callable[[], int]] = {"cpu": time.process_time_ns, "wall": time.perf_counter_ns}
_clock = CLOCKS["cpu"]


def _timer(workload: workloads.Workload, loop: asyncio.AbstractEventLoop) -> Callable[[dict[str, Any], int], float]:
    """Return time(config, n) -> µs per call, running the workload n times back to back."""
    if workload.is_async:

        async def many(config: dict[str, Any], n: int) -> float:
            start = _clock()
            for _ in range(n):
                await workload.call(config)  # type: ignore[arg-type]
            return (_clock() - start) / n / 1000

        return lambda config, n: loop.run_until_complete(many(config, n))

    def sync_many(config: dict[str, Any], n: int) -> float:
        start = _clock()
        for _ in range(n):
            workload.call(config)  # type: ignore[arg-type]
        return (_clock() - start) / n / 1000

    return sync_many


def _count_runs(workload: workloads.Workload, loop: asyncio.AbstractEventLoop) -> tuple[int, int]:
    counter = workloads.RunCounter()
    _timer(workload, loop)({"callbacks": [counter]}, 1)
    return counter.runs, counter.tokens


def _block(time_n: Callable[[dict[str, Any], int], float], config: dict[str, Any], n: int) -> float:
    # Collect garbage left by the previous block so that one block does not pay for another's allocations.
    gc.collect()
    return time_n(config, n)


def _sustained(installed: tracers.Installed, time_n: Callable[[dict[str, Any], int], float], seconds: float) -> float:
    """Spans exported per call over an unbroken traced stretch, where a slow tracer can overflow the span queue."""
    exporter = installed.exporter
    if exporter is None:
        return 0.0
    installed.force_flush()
    before, calls, config = exporter.count, 0, installed.config(True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time_n(config, 5)
        calls += 5
    installed.force_flush()
    return (exporter.count - before) / calls


def measure(time_n: Callable[[dict[str, Any], int], float], installed: tracers.Installed, plan: Plan) -> dict[str, Any]:
    """Alternate baseline and traced blocks (ABBA order, to cancel linear drift) and collect paired timings."""
    exporter = installed.exporter
    time_n(installed.config(True), 10)
    n = _calibrate(time_n, installed.config(False), plan.block_seconds)
    installed.force_flush()
    baseline: list[float] = []
    traced: list[float] = []
    leaked = exported = 0
    for pair in range(plan.pairs):
        for is_traced in (False, True) if pair % 2 == 0 else (True, False):
            config = installed.config(is_traced)
            before = exporter.count if exporter else 0
            (traced if is_traced else baseline).append(_block(time_n, config, n))
            # Flushed outside the timed block so the export thread's work never lands in the next (baseline) block.
            installed.force_flush()
            delta = (exporter.count if exporter else 0) - before
            if is_traced:
                exported += delta
            else:
                leaked += delta
    return {
        "iterations": n,
        "pairs": plan.pairs,
        "baseline_us": baseline,
        "traced_us": traced,
        "spans_exported_per_call": exported / (n * plan.pairs),
        "leaked_spans": leaked,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracer", required=True, choices=sorted(tracers.VENV))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workloads", default=",".join(workloads.NAMES))
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    args = parser.parse_args(argv)
    global _clock
    _clock = CLOCKS[args.clock]
    plan = QUICK if args.quick else FULL
    names = [name for name in args.workloads.split(",") if name]

    tracers.prepare_env(args.tracer)
    loop = asyncio.new_event_loop()
    # Built (and so imported) before install(): an instrumentor patches only what is loaded, and the PatchSwitch
    # can only switch off patches on modules that existed before instrument().
    built = {name: workloads.build(name) for name in names}
    installed = tracers.install(args.tracer)
    results: dict[str, Any] = {}
    for name, workload in built.items():
        time_n = _timer(workload, loop)
        installed.config(False)  # counts the runs untraced, so a peer's spans cannot mix in
        runs, tokens = _count_runs(workload, loop)
        rss_before = _rss_kib()
        result = measure(time_n, installed, plan)
        gc.collect()
        result.update(
            description=workload.description,
            runs_per_call=runs,
            tokens_per_call=tokens,
            rss_growth_kib=_rss_kib() - rss_before,
            sustained_spans_per_call=_sustained(installed, time_n, plan.sustained_seconds),
        )
        results[name] = result
    installed.shutdown()
    loop.close()
    payload = {
        "tracer": args.tracer,
        "python": sys.version.split()[0],
        "versions": tracers.versions(),
        "clock": args.clock,
        "notes": installed.notes,
        "switched_attributes": installed.switched,
        "workloads": results,
    }
    args.out.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
