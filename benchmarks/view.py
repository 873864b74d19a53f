"""Benchmark ``otel-callbacks view`` on a 100k-span OTLP/JSON lines file against the cost of just reading it.

    python benchmarks/view.py [--spans 100000] [--repeat 5] [--markdown PATH] [--regenerate]

The file is written by the real file exporter (``OtlpJsonFileSpanExporter`` behind the SDK-default
``BatchSpanProcessor``) from our handler tracing the benchmark workloads (``workloads.py``: mostly the invoke chain,
plus agent and streamed calls), and cached under ``benchmarks/results/``. Every command runs as its own process, as
a user runs it, so interpreter start and imports count on both sides:

- floor: a bare ``json.loads`` of every line of the file (the least any reader of the format pays);
- ``view FILE`` and ``view FILE --trace ID`` (a 12-digit prefix of a trace id from the middle of the file), output
  to a file.

Wall time is the fastest of ``--repeat`` runs (the machines are shared; the fastest run is the least disturbed);
peak memory is the process's maximum resident set (``ru_maxrss``). Goals (issue 16): ``view`` at most 5x the floor's
time, ``--trace`` at most 2x, peak memory at most 3x the file's size. Prints the ratios and a markdown table and
exits 1 when a goal fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

TIME_GOAL, TRACE_TIME_GOAL, MEMORY_GOAL = 5.0, 2.0, 3.0
# Calls per generation cycle: the invoke chain dominates real files; the agent and streaming add deeper trees,
# LangGraph metadata and per-chunk events.
_MIX = (("agent", 1), ("invoke", 10), ("stream", 1))
# Bumped when the generated content changes, so a stale cached file is not reused.
_GENERATOR_VERSION = 1

_FLOOR = """
import json, sys
with open(sys.argv[1], encoding="utf-8", errors="replace") as handle:
    for line in handle:
        if line.strip():
            json.loads(line)
"""


@dataclass(frozen=True)
class Run:
    """One finished process: wall and CPU seconds, peak resident set in bytes, exit code."""

    seconds: float
    cpu: float
    peak_bytes: int
    returncode: int


def generate(path: Path, spans: int) -> int:
    """Write at least ``spans`` spans (whole calls only) with the real handler and file exporter; returns the count."""
    sys.path.insert(0, str(HERE))
    import workloads
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otel_callbacks import OpenTelemetryCallbackHandler
    from otel_callbacks.setup.exporters import OtlpJsonFileSpanExporter

    class Counter(SpanProcessor):
        ended = 0

        def on_end(self, span: ReadableSpan) -> None:
            Counter.ended += 1

    path.unlink(missing_ok=True)
    provider = TracerProvider(resource=Resource.create({"service.name": "view-benchmark"}))
    provider.add_span_processor(Counter())
    provider.add_span_processor(BatchSpanProcessor(OtlpJsonFileSpanExporter(path)))
    handler = OpenTelemetryCallbackHandler(tracer_provider=provider)
    built = [(workloads.build(name), count) for name, count in _MIX]
    config: Any = {"callbacks": [handler]}
    while Counter.ended < spans:
        for workload, count in built:
            for _ in range(count):
                workload.call(config)
    provider.shutdown()
    return Counter.ended


def cached_file(spans: int, regenerate: bool) -> tuple[Path, int]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"view-{spans}.jsonl"
    meta_path = path.with_suffix(".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and not regenerate else {}
    if path.exists() and meta.get("generator") == _GENERATOR_VERSION and meta.get("size") == path.stat().st_size:
        return path, int(meta["spans"])
    print(f"generating {path} ({spans} spans with the real handler and file exporter) ...", file=sys.stderr)
    count = generate(path, spans)
    meta_path.write_text(json.dumps({"generator": _GENERATOR_VERSION, "spans": count, "size": path.stat().st_size}))
    return path, count


def middle_trace_id(path: Path) -> str:
    with path.open(encoding="utf-8") as handle:
        lines = handle.readlines()
    data = json.loads(lines[len(lines) // 2])
    return str(data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"])


# Linux carries the forking process's resident high-water mark into the child's ru_maxrss (vfork/fork + exec),
# so a child forked from this process (which may hold the generator's spans) would report at least our own size.
# A small wrapper process forks the measured command instead and reports its rusage.
_WRAPPER = """
import json, os, subprocess, sys, time
with open(sys.argv[1], "wb") as sink:
    start = time.perf_counter()
    process = subprocess.Popen(sys.argv[2:], stdout=sink, stderr=subprocess.PIPE)
    err = process.stderr.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
kib = 1 if sys.platform == "darwin" else 1024
print(json.dumps({"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak": usage.ru_maxrss * kib,
                  "rc": os.waitstatus_to_exitcode(status), "err": err.decode("utf-8", "replace")[-2000:]}))
"""


def measure(command: list[str], out: Path) -> Run:
    """Run ``command`` with stdout to ``out`` (through ``_WRAPPER``); wall and CPU seconds, peak resident set."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, str(out), *command], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        sys.stderr.write(result["err"])
    return Run(result["seconds"], result["cpu"], result["peak"], result["rc"])


def best(runs: list[Run]) -> Run:
    return Run(min(r.seconds for r in runs), min(r.cpu for r in runs), max(r.peak_bytes for r in runs),
               max(r.returncode for r in runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--regenerate", action="store_true", help="write a new trace file even if one is cached")
    args = parser.parse_args(argv)

    path, spans = cached_file(args.spans, args.regenerate)
    size = path.stat().st_size
    trace_id = middle_trace_id(path)[:12]
    python = sys.executable
    commands = {
        "floor": [python, "-c", _FLOOR, str(path)],
        "view": [python, "-m", "otel_callbacks", "view", str(path)],
        "trace": [python, "-m", "otel_callbacks", "view", str(path), "--trace", trace_id],
    }
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {name: Path(tmp) / f"{name}.txt" for name in commands}
        for _ in range(args.repeat):  # interleaved, so a busy moment on the machine hits every command alike
            for name, command in commands.items():
                runs[name].append(measure(command, outputs[name]))
        view_out = outputs["view"].read_text(encoding="utf-8")
        trace_out = outputs["trace"].read_text(encoding="utf-8")
    floor, view, trace = best(runs["floor"]), best(runs["view"]), best(runs["trace"])
    shown_traces = sum(1 for line in view_out.splitlines() if line.startswith("trace "))
    problems = [f"{name} exited {run.returncode}" for name, run in (("view", view), ("--trace", trace))
                if run.returncode != 0]
    if trace_out.count("\ntrace ") + trace_out.startswith("trace ") != 1:
        problems.append("--trace did not print exactly one trace")

    rows = [
        ("json.loads floor", floor, None, None),
        ("view", view, TIME_GOAL, MEMORY_GOAL),
        (f"view --trace {trace_id}", trace, TRACE_TIME_GOAL, MEMORY_GOAL),
    ]
    lines = [
        f"`otel-callbacks view` on {spans:,} spans in {shown_traces:,} traces, {size / 1e6:.1f} MB of OTLP/JSON lines "
        f"(fastest of {args.repeat} runs, each its own process)",
        "",
        "| command | wall s | x floor (goal) | CPU s | x floor | peak MB | x file size (goal) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, run, time_goal, memory_goal in rows:
        ratio, memory = run.seconds / floor.seconds, run.peak_bytes / size
        time_cell = f"{ratio:.2f}x" + (f" (≤ {time_goal:g}x)" if time_goal else "")
        memory_cell = f"{memory:.2f}x" + (f" (≤ {memory_goal:g}x)" if memory_goal else "")
        lines.append(f"| `{label}` | {run.seconds:.2f} | {time_cell} | {run.cpu:.2f} | {run.cpu / floor.cpu:.2f}x "
                     f"| {run.peak_bytes / 1e6:.0f} | {memory_cell} |")
        if time_goal and ratio > time_goal:
            problems.append(f"{label}: {ratio:.2f}x the floor's time, goal {time_goal:g}x")
        if memory_goal and memory > memory_goal:
            problems.append(f"{label}: peak memory {memory:.2f}x the file size, goal {memory_goal:g}x")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    for problem in problems:
        print(f"GOAL FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
