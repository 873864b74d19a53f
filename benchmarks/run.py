"""Benchmark every LangChain tracer against no tracing, each in its own fresh process, and report the ratios.

    bash benchmarks/setup_peers.sh          # once: one venv per tracer under benchmarks/.venvs/
    python benchmarks/run.py [--quick] [--tracers ours,minimal,...] [--workloads invoke,stream]

Prints a table and writes benchmarks/results/latest.json and latest.md. Needs only the standard library: each tracer
is timed by worker.py under its own venv's python (the peers patch LangChain globally, two share a module name).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import report

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
RESULTS = HERE / "results"

# Same order as the table. "none" times the baseline against itself: its "added" cost is the noise floor.
TRACERS = ("none", "noop", "minimal", "ours", "ours-metrics", "ours-ratio0", "openllmetry", "openinference", "official")
WORKLOADS = ("invoke", "ainvoke", "stream", "agent")

# Peers run from their own venv named after them; everything else from .venvs/ours (see tracers.VENV).
_VENV = {peer: peer for peer in report.PEERS}


def python_for(tracer: str) -> Path | None:
    """The interpreter of the tracer's venv; handler-style tracers fall back to this interpreter."""
    candidate = VENVS / _VENV.get(tracer, "ours") / "bin" / "python"
    if candidate.exists():
        return candidate
    return Path(sys.executable) if tracer not in _VENV else None


def run_worker(tracer: str, quick: bool, workloads: str, clock: str, timeout: float) -> dict[str, Any]:
    python = python_for(tracer)
    if python is None:
        return {"tracer": tracer, "error": f"no venv; run: bash benchmarks/setup_peers.sh {_VENV[tracer]}"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        command = [str(python), str(HERE / "worker.py"), "--tracer", tracer, "--out", str(out)]
        command += ["--workloads", workloads, "--clock", clock]
        if quick:
            command.append("--quick")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"tracer": tracer, "error": f"timed out after {timeout:.0f}s"}
        if done.returncode != 0 or not out.exists():
            tail = "\n".join(done.stderr.strip().splitlines()[-6:])
            return {"tracer": tracer, "error": f"worker exited {done.returncode}: {tail}"}
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and iterations (under 2 minutes)")
    parser.add_argument("--tracers", default=",".join(TRACERS), help="comma-separated subset of: %(default)s")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of: %(default)s")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes per tracer, their groups pooled (default 2, 1 with --quick): one process's memory "
        "layout and hash seed shift its figures by up to ~10%%",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="process CPU time (default; robust to other load) or wall",
    )
    args = parser.parse_args(argv)
    chosen = [name for name in args.tracers.split(",") if name]
    unknown = sorted(set(chosen) - set(TRACERS))
    if unknown:
        parser.error(f"unknown tracers {unknown}; choose from {TRACERS}")

    processes = args.processes or (1 if args.quick else 2)
    started = time.monotonic()
    runs: dict[str, list[dict[str, Any]]] = {tracer: [] for tracer in chosen}
    # Round after round over all tracers, so that a slow stretch of the machine touches every tracer alike.
    for round_ in range(processes):
        for tracer in chosen:
            t0 = time.monotonic()
            result = run_worker(tracer, args.quick, args.workloads, args.clock, timeout=300 if args.quick else 900)
            status = result.get("error") or "ok"
            print(f"  {tracer:<14} {round_ + 1}/{processes} {time.monotonic() - t0:5.1f}s  {status}", file=sys.stderr,
                  flush=True)
            runs[tracer].append(result)
    raw = [report.pool(results) for results in runs.values()]

    summary = report.summarise(raw, quick=args.quick, seconds=time.monotonic() - started, clock=args.clock)
    markdown = report.markdown(summary)
    print(markdown)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "latest.json").write_text(json.dumps({"summary": summary, "raw": runs}, indent=2))
    (args.out_dir / "latest.md").write_text(markdown)
    print(f"written: {args.out_dir / 'latest.json'}, {args.out_dir / 'latest.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
