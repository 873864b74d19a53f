"""Instructions each tracer adds per workload call, counted by callgrind: a companion to run.py without its timing
noise.

    python3 benchmarks/instructions.py [--tracers none,minimal,floor,ours] [--workloads invoke,agent] [--calls 200]

For every tracer and workload, the same worker (``--one``) runs under ``valgrind --tool=callgrind`` twice, with 0
and with ``--calls`` timed calls after the same imports and warm-up; the difference over the calls is the
instructions per call, the export thread's included (the queue is flushed after the calls). No timing: what is
left to vary is the run ids and LangGraph's checkpoint ids (random, so dict probes differ), a few per cent of the
difference between two tracers at most. What it does not see is how fast those instructions run (cache misses,
branch mispredictions): compare its ratios with run.py's to tell executed work from the rest. Needs valgrind and
the ``.venvs/ours`` venv of setup_peers.sh; a call under callgrind is ~50x slower, so the defaults take several
minutes.

What one part of ours costs: ``--tracers ours,ours-without-run-attributes`` (parts in ``KNOCKOUTS``, joined with
``+``) runs ours with that part replaced by nothing. A diagnostic, not a tracer: its spans lack what the part
makes. It patches our internal names, and fails loudly when one of them moves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


KNOCKOUTS = ("run-attributes", "start-attributes", "response-attributes", "context", "chunk-events")
_WITHOUT = "ours-without-"


def _patch(module: object, name: str, replacement: object) -> None:
    if not hasattr(module, name):
        raise RuntimeError(f"{module!r} has no {name}: the knockout needs updating")
    setattr(module, name, replacement)


def _knock_out(part: str) -> None:
    """Replace one part of ours by nothing, before the handler is made (see the module docstring)."""
    from opentelemetry.trace import SpanKind

    from otel_callbacks.handler import ends, starts
    from otel_callbacks.mapping import response, spans, values

    if part == "run-attributes":  # id, type, tags, metadata, conversation id
        _patch(values, "run_attributes", lambda *args, **kwargs: {})
    elif part == "start-attributes":  # span names and gen_ai.* start attributes of chains, models, tools
        _patch(spans, "chain_span", lambda name, *args, **kwargs: (name, SpanKind.INTERNAL, {}))
        _patch(spans, "llm_span", lambda *args, **kwargs: ("chat", {"gen_ai.operation.name": "chat"}))
        _patch(spans, "llm_request_attributes", lambda *args: {})
    elif part == "response-attributes":  # response model, finish reasons, usage
        _patch(response, "llm_response_attributes", lambda result: {})
    elif part == "context":  # the run's span made current while its code runs, and restored
        _patch(starts, "enter", lambda record, extra=None: None)
        _patch(ends, "leave", lambda record: None)
    elif part != "chunk-events":  # applied to the handler (stream_events=False)
        raise ValueError(f"unknown part {part!r}; known: {', '.join(KNOCKOUTS)}")


def _one(tracer: str, workload: str, calls: int) -> None:
    """The measured process: import, warm up, then ``calls`` traced calls (worker.py's loop) and a flush."""
    import pipelines
    import tracers
    import worker
    import workloads

    parts = tracer.removeprefix(_WITHOUT).split("+") if tracer.startswith(_WITHOUT) else []
    tracer = "ours" if parts else tracer
    pipelines.export_only_on_flush()  # under callgrind a run lasts minutes: the timer would fire at varying points
    tracers.prepare_env(tracer)
    work = workloads.build(workload)
    for part in parts:
        _knock_out(part)
    installed = tracers.install(tracer)
    if "chunk-events" in parts:
        _patch(installed.handlers[0], "_stream_events", False)
    run = worker._runner(work, installed, asyncio.new_event_loop())
    run([True] * 50)
    installed.export_spans()
    run([True] * calls)
    installed.export_spans()


def _count(python: Path, tracer: str, workload: str, calls: int) -> int:
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(python), __file__,
         "--one", tracer, workload, str(calls)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, cwd=HERE, check=True,
    )
    found = _COLLECTED.search(result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind for {tracer}/{workload}:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracers", default="none,minimal,floor,ours")
    parser.add_argument("--workloads", default="invoke,ainvoke,stream,agent")
    parser.add_argument("--calls", type=int, default=200, help="timed calls (the agent workload runs half)")
    parser.add_argument("--one", nargs=3, metavar=("TRACER", "WORKLOAD", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        _one(args.one[0], args.one[1], int(args.one[2]))
        return 0
    python = HERE / ".venvs" / "ours" / "bin" / "python"
    if not python.exists():
        print("benchmarks/.venvs/ours is missing: run bash benchmarks/setup_peers.sh first", file=sys.stderr)
        return 2
    names = args.tracers.split(",")
    if "none" not in names:
        names.insert(0, "none")
    jobs = [(t, w, n) for w in args.workloads.split(",") for t in names
            for n in (0, args.calls // 2 if w == "agent" else args.calls)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(zip(jobs, pool.map(lambda job: _count(python, *job), jobs), strict=True))
    # A knocked-out part's own cost is ours minus ours without it, also given as a share of the minimal handler's.
    parts = [t for t in names if t.startswith(_WITHOUT)] if {"ours", "minimal"} <= set(names) else []
    print("| workload | " + " | ".join(f"{t} (M added)" for t in names[1:]) + " | "
          + " | ".join(f"{t} / minimal" for t in names[1:] if t != "minimal" and "minimal" in names)
          + "".join(f" | {t.removeprefix(_WITHOUT)}: cost / minimal" for t in parts) + " |")
    for workload in args.workloads.split(","):
        calls = args.calls // 2 if workload == "agent" else args.calls
        per = {t: (counts[(t, workload, calls)] - counts[(t, workload, 0)]) / calls for t in names}
        added = {t: per[t] - per["none"] for t in names[1:]}
        cells = [f"{added[t] / 1e6:.3f}" for t in names[1:]]
        if "minimal" in added:
            cells += [f"{added[t] / added['minimal']:.2f}x" for t in names[1:] if t != "minimal"]
        cells += [f"{(added['ours'] - added[t]) / added['minimal']:.2f}x" for t in parts]
        print(f"| {workload} (untraced {per['none'] / 1e6:.2f}M) | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
