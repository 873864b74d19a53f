"""Profile our handler on one workload under cProfile and print where its time goes.

    benchmarks/.venvs/ours/bin/python benchmarks/profile_hotpath.py [--workload invoke] [--calls 2000] [--top 25]
        [--export http|grpc]

Prints the top functions by cumulative time over the whole call, the same restricted to otel_callbacks, and the
outside functions otel_callbacks calls (the SDK's start_span, attribute setting, ...), each in µs per workload
call. With ``--export`` the spans go through the official OTLP exporter to a loopback receiver (started here,
stopped by its pid) and are flushed on the profiled thread every ``--flush-every`` calls, so encoding and sending
show too (the top functions inside the exporter and its protobuf encoder are printed as well). cProfile itself
inflates the numbers ~3-4x: read the shares, not the absolute values. (Named profile_hotpath, not profile: a
profile.py next to this script would shadow the standard library module that cProfile imports.)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

import run as orchestrator
import tracers
import workloads


def _print_top(stats: pstats.Stats, calls: int, top: int, title: str, restrict: str | None) -> None:
    print(f"\n== {title}: top {top} by cumulative time (µs per workload call) ==")
    print(f"{'cum µs':>9} {'own µs':>9} {'ncalls/call':>11}  function")
    rows: list[tuple[float, float, float, str]] = []
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if restrict is not None and restrict not in filename:
            continue
        where = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append((cumtime, tottime, ncalls, f"{where}:{line}({function})"))
    for cumtime, tottime, ncalls, name in sorted(rows, reverse=True)[:top]:
        print(f"{cumtime / calls * 1e6:9.1f} {tottime / calls * 1e6:9.1f} {ncalls / calls:11.1f}  {name}")


def _print_callees(stats: pstats.Stats, calls: int, top: int, package: str) -> None:
    """Functions outside ``package`` by the time spent in them when called directly from ``package``."""
    print(f"\n== called from {package} (SDK, stdlib, LangChain): top {top} by cumulative time ==")
    print(f"{'cum µs':>9} {'ncalls/call':>11}  function")
    rows: list[tuple[float, float, str]] = []
    for (filename, line, function), (_cc, _nc, _tt, _ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if package in filename:
            continue
        from_us = [value for caller, value in callers.items() if package in caller[0]]
        if from_us:
            where = filename.split("site-packages/")[-1]
            rows.append((sum(v[3] for v in from_us), sum(v[1] for v in from_us), f"{where}:{line}({function})"))
    for cumtime, ncalls, name in sorted(rows, reverse=True)[:top]:
        print(f"{cumtime / calls * 1e6:9.1f} {ncalls / calls:11.1f}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", default="invoke", choices=workloads.NAMES)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--tracer", default="ours", help="any handler-style tracer of tracers.py (ours, minimal, ...)")
    parser.add_argument("--dump", help="also write the raw pstats to this file (for snakeviz, gprof2dot, ...)")
    parser.add_argument("--export", choices=("discard", "http", "grpc"), default="discard")
    parser.add_argument("--flush-every", type=int, default=50, help="calls between flushes with --export")
    args = parser.parse_args(argv)
    if args.export == "discard":
        return _profile(args, None)
    with tempfile.TemporaryDirectory() as tmp:
        receiver = orchestrator.Receiver(Path(tmp))
        try:
            return _profile(args, receiver.endpoints)
        finally:
            receiver.stop()


def _profile(args: argparse.Namespace, endpoints: dict[str, int] | None) -> int:
    workload = workloads.build(args.workload)
    installed = tracers.install(args.tracer, args.export, endpoints)
    config: dict[str, Any] = installed.config(True)
    loop = asyncio.new_event_loop()

    # With real export, flushing on this thread puts the encoder in the profile (cProfile sees one thread only).
    flush_every = args.flush_every if endpoints is not None else 0

    def run(n: int) -> None:
        if workload.is_async:

            async def many() -> None:
                for index in range(n):
                    await workload.call(config)  # type: ignore[arg-type]
                    if flush_every and index % flush_every == flush_every - 1:
                        installed.export_spans()

            loop.run_until_complete(many())
        else:
            for index in range(n):
                workload.call(config)  # type: ignore[arg-type]
                if flush_every and index % flush_every == flush_every - 1:
                    installed.export_spans()

    run(max(20, args.calls // 10))  # warm caches and lazy imports outside the profile
    profiler = cProfile.Profile()
    profiler.enable()
    run(args.calls)
    profiler.disable()
    installed.shutdown()
    loop.close()

    stats = pstats.Stats(profiler, stream=io.StringIO())
    if args.dump:
        stats.dump_stats(args.dump)
    _print_top(stats, args.calls, args.top, f"{args.tracer}, {args.workload}, whole call", None)
    _print_top(stats, args.calls, args.top, "inside otel_callbacks", "otel_callbacks/")
    _print_callees(stats, args.calls, 15, "otel_callbacks/")
    if endpoints is not None:
        _print_top(stats, args.calls, args.top, f"inside the OTLP exporter ({args.export})", "opentelemetry/exporter/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
