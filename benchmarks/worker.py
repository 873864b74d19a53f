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
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pipelines
import tracers
import workloads


@dataclass(frozen=True)
class Plan:
    """How much to run per workload: ``groups`` groups of alternating baseline/traced calls.

    Calls alternate one by one (baseline, traced, baseline, ...), because on the shared 2-core machines even CPU
    time per call swings 2x within a fraction of a second; adjacent calls see the same machine. A group (about
    ``group_seconds`` of baseline calls, sized by calibration so a run takes about the same time on a loaded
    machine) sums each side and gives one traced/baseline ratio.
    """

    groups: int
    group_seconds: float
    sustained_seconds: float


FULL = Plan(groups=36, group_seconds=0.025, sustained_seconds=1.0)  # per process; run.py starts two per tracer
QUICK = Plan(groups=20, group_seconds=0.012, sustained_seconds=0.2)
# The real-export table runs seven tracers over two protocols after the main tables; fewer groups keep a full run
# within its time, and its 25 ms groups still give batches of a few hundred spans.
FULL_EXPORT = Plan(groups=24, group_seconds=0.025, sustained_seconds=1.0)


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


Runner = Callable[[list[bool]], list[float]]


def _runner(workload: workloads.Workload, installed: tracers.Installed, loop: asyncio.AbstractEventLoop) -> Runner:
    """Return run(flags) -> µs of each call, traced where the flag is true; switching happens outside the timing."""
    if workload.is_async:

        async def many(flags: list[bool]) -> list[float]:
            times = []
            for flag in flags:
                config = installed.config(flag)
                start = _clock()
                await workload.call(config)  # type: ignore[arg-type]
                times.append((_clock() - start) / 1000)
            return times

        return lambda flags: loop.run_until_complete(many(flags))

    def sync_many(flags: list[bool]) -> list[float]:
        times = []
        for flag in flags:
            config = installed.config(flag)
            start = _clock()
            workload.call(config)  # type: ignore[arg-type]
            times.append((_clock() - start) / 1000)
        return times

    return sync_many


def _count_runs(workload: workloads.Workload, loop: asyncio.AbstractEventLoop) -> tuple[int, int]:
    counter = workloads.RunCounter()
    call = workload.call({"callbacks": [counter]})  # type: ignore[typeddict-item]
    if workload.is_async:
        loop.run_until_complete(call)
    return counter.runs, counter.tokens


def _exported(installed: tracers.Installed, run: Runner, flags: list[bool]) -> dict[str, float]:
    """Spans (and, with real export, bytes received) per call over ``flags`` calls run back to back."""
    keys = ("spans", "attributes", "events", "wire_bytes", "proto_bytes")
    if installed.counter is None:
        return dict.fromkeys(keys, 0.0)
    installed.force_flush()
    before = installed.counter.totals()
    run(flags)
    installed.force_flush()
    after = installed.counter.totals()
    return {key: (after[key] - before[key]) / len(flags) for key in keys}


def _sustained(installed: tracers.Installed, run: Runner, seconds: float) -> dict[str, float]:
    """Spans exported per call over an unbroken traced stretch, where a slow tracer can overflow the span queue."""
    per_call_us = statistics.median(run([True] * 3))
    return _exported(installed, run, [True] * max(5, round(seconds * 1e6 / per_call_us)))


# With real export, a flush sends this many spans at most: below the BatchSpanProcessor's default batch of 512, at
# which its thread would wake and export inside a timed call, with room for tracers making more spans than runs.
REAL_EXPORT_BATCH_SPANS = 384


def measure(run: Runner, installed: tracers.Installed, plan: Plan, batch_spans: int | None = None) -> dict[str, Any]:
    """Alternate baseline and traced calls; per group, the mean µs per call of each side.

    The queued spans are exported after every group, or with ``batch_spans`` (real export) after as many groups as
    fill a batch of about that many spans, the flush's CPU time spread evenly over the groups it carried.
    """
    # Warm-up (lazy imports and caches on both paths), which also counts the spans of a traced call.
    spans_per_call = _exported(installed, run, [True, False] * 10)["spans"] * 2
    per_call_us = statistics.median(run([False] * 5))
    pairs = max(2, round(plan.group_seconds * 1e6 / per_call_us))
    # A real export request has a fixed CPU cost (the HTTP request or gRPC call; see README) that a busy app's
    # BatchSpanProcessor pays once per 512 spans; flushing after every group would send batches of 30-100 spans and
    # charge every tracer alike a per-request cost per call that such an app does not pay.
    per_flush = 1 if batch_spans is None else max(1, int(batch_spans // max(1.0, pairs * spans_per_call)))
    installed.force_flush()
    gc.collect()
    baseline: list[float] = []
    traced: list[float] = []
    flushes: list[float] = []
    pending: list[int] = []
    for group in range(plan.groups):
        # Which side goes first alternates by group, so neither always follows the other's garbage or cache state.
        flags = [group % 2 == 1, group % 2 == 0] * pairs
        times = run(flags)
        baseline.append(sum(t for t, flag in zip(times, flags, strict=True) if not flag) / pairs)
        traced.append(sum(t for t, flag in zip(times, flags, strict=True) if flag) / pairs)
        pending.append(group)
        if len(pending) < per_flush and group < plan.groups - 1:
            continue
        # The spans are exported after the calls, so the export thread never wakes inside a timed call. That
        # export is still the traced calls' cost (the exporter reads every attribute and event, as an encoder
        # does, and a tracer may defer work until then): its CPU time goes to the traced side.
        start = _clock()
        installed.export_spans()
        share_us = (_clock() - start) / 1000 / len(pending)
        installed.force_flush()
        for index in pending:
            traced[index] += share_us / pairs
            flushes.append(share_us)
        pending.clear()
    return {
        "pairs_per_group": pairs,
        "groups": plan.groups,
        "groups_per_flush": per_flush,
        "baseline_us": baseline,
        "traced_us": traced,
        "export_us_per_call": statistics.median(flushes) / pairs,
        # A switched-off tracer must export nothing; anything here means its switch-off is incomplete.
        "leaked_spans_per_call": _exported(installed, run, [False] * 20)["spans"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracer", required=True, choices=sorted(tracers.VENV))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workloads", default=",".join(workloads.NAMES))
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    parser.add_argument("--export", choices=pipelines.EXPORTS, default="discard",
                        help="discarding exporter, or the official OTLP exporter to the receiver (--endpoints)")
    parser.add_argument("--endpoints", type=json.loads, default=None,
                        help='the loopback receiver\'s ports as JSON, {"http": PORT, "grpc": PORT}')
    args = parser.parse_args(argv)
    if args.export != "discard" and args.endpoints is None:
        parser.error(f"--export {args.export} needs --endpoints")
    global _clock
    _clock = CLOCKS[args.clock]
    plan = QUICK if args.quick else FULL if args.export == "discard" else FULL_EXPORT
    names = [name for name in args.workloads.split(",") if name]

    tracers.prepare_env(args.tracer)
    if args.export != "discard":
        # The flushes after the groups do all the exporting, never the processor's timer inside a timed call.
        pipelines.export_only_on_flush()
    loop = asyncio.new_event_loop()
    # Built (and so imported) before install(): an instrumentor patches only what is loaded, and the PatchSwitch
    # can only switch off patches on modules that existed before instrument().
    built = {name: workloads.build(name) for name in names}
    installed = tracers.install(args.tracer, args.export, args.endpoints)
    results: dict[str, Any] = {}
    for name, workload in built.items():
        run = _runner(workload, installed, loop)
        installed.config(False)  # counts the runs untraced, so a peer's spans cannot mix in
        runs, tokens = _count_runs(workload, loop)
        rss_before = _rss_kib()
        batch = None if args.export == "discard" else REAL_EXPORT_BATCH_SPANS
        result = measure(run, installed, plan, batch)
        gc.collect()
        rss_growth = _rss_kib() - rss_before
        sustained = _sustained(installed, run, plan.sustained_seconds)
        result.update(
            description=workload.description,
            runs_per_call=runs,
            tokens_per_call=tokens,
            rss_growth_kib=rss_growth,
            sustained_spans_per_call=sustained["spans"],
            # Counted by the receiver (0 with the discarding exporter): request bodies as sent (after any
            # compression) and the protobuf they decode from.
            wire_bytes_per_call=sustained["wire_bytes"],
            proto_bytes_per_call=sustained["proto_bytes"],
            attributes_per_call=sustained["attributes"],
            events_per_call=sustained["events"],
        )
        results[name] = result
    installed.shutdown()
    loop.close()
    payload = {
        "tracer": args.tracer,
        "python": sys.version.split()[0],
        "versions": tracers.versions(),
        "clock": args.clock,
        "export": args.export,
        "ours_source": tracers.ours_source() if args.tracer.startswith("ours") else None,
        "notes": installed.notes,
        "switched_attributes": installed.switched,
        "workloads": results,
    }
    args.out.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
