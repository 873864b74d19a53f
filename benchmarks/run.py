"""Benchmark every LangChain tracer against no tracing, each in its own fresh process, and report the ratios.

    bash benchmarks/setup_peers.sh          # once: one venv per tracer under benchmarks/.venvs/
    python benchmarks/run.py [--quick] [--tracers ours,minimal,...] [--workloads invoke,stream] [--export http]

Prints a table and writes benchmarks/results/latest.json and latest.md. Needs only the standard library: each tracer
is timed by worker.py under its own venv's python (the peers patch LangChain globally, two share a module name).
After the main tables (discarding exporter), the same tracers are timed again with the official OTLP exporter
sending to a loopback receiver (receiver.py, started here and stopped by its pid): the real-export table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import report
import report_export

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
RESULTS = HERE / "results"

# Same order as the table. "none" times the baseline against itself: its "added" cost is the noise floor.
TRACERS = (
    "none", "noop", "minimal", "floor", "ours", "ours-metrics", "ours-ratio0", "ours-sdk",
    "openllmetry", "openinference", "official", "langfuse",
)
WORKLOADS = ("invoke", "ainvoke", "stream", "agent")
# The real-export table: the span-making tracers only (none/noop/ratio-0 export nothing, metrics add no spans).
EXPORT_TRACERS = ("minimal", "ours", "ours-sdk", "openllmetry", "openinference", "official", "langfuse")
EXPORT_PROTOCOLS = ("http", "grpc")

# Peers run from their own venv named after them; everything else from .venvs/ours (see tracers.VENV).
_VENV = {peer: peer for peer in report.PEERS}


def python_for(tracer: str) -> Path | None:
    """The interpreter of the tracer's venv; handler-style tracers fall back to this interpreter."""
    candidate = VENVS / _VENV.get(tracer, "ours") / "bin" / "python"
    if candidate.exists():
        return candidate
    return Path(sys.executable) if tracer not in _VENV else None


def run_worker(
    tracer: str,
    quick: bool,
    workloads: str,
    clock: str,
    timeout: float,
    export: str = "discard",
    endpoints: dict[str, int] | None = None,
) -> dict[str, Any]:
    python = python_for(tracer)
    if python is None:
        return {"tracer": tracer, "error": f"no venv; run: bash benchmarks/setup_peers.sh {_VENV[tracer]}"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        command = [str(python), str(HERE / "worker.py"), "--tracer", tracer, "--out", str(out)]
        command += ["--workloads", workloads, "--clock", clock, "--export", export]
        if endpoints is not None:
            command += ["--endpoints", json.dumps(endpoints)]
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


class Receiver:
    """The loopback OTLP receiver (receiver.py) in a process of its own, stopped by its pid."""

    def __init__(self, directory: Path) -> None:
        python = VENVS / "ours" / "bin" / "python"
        ports = directory / "ports.json"
        command = [str(python if python.exists() else sys.executable), str(HERE / "receiver.py"), "--ports-file",
                   str(ports)]
        self._log = (directory / "receiver.log").open("w")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not ports.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"receiver did not start: {(directory / 'receiver.log').read_text()[-500:]}")
            time.sleep(0.05)
        self.endpoints: dict[str, int] = json.loads(ports.read_text())

    def stop(self) -> None:
        if self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._log.close()


def run_rounds(
    jobs: list[tuple[str, str]], processes: int, args: argparse.Namespace, endpoints: dict[str, int] | None
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Each (tracer, export) job in ``processes`` fresh workers, round after round over all jobs, so that a slow
    stretch of the machine touches every tracer alike."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {job: [] for job in jobs}
    for round_ in range(processes):
        for tracer, export in jobs:
            t0 = time.monotonic()
            result = run_worker(tracer, args.quick, args.workloads, args.clock, timeout=300 if args.quick else 900,
                                export=export, endpoints=endpoints)
            status = result.get("error") or "ok"
            label = tracer if export == "discard" else f"{tracer} [{export}]"
            print(f"  {label:<22} {round_ + 1}/{processes} {time.monotonic() - t0:5.1f}s  {status}",
                  file=sys.stderr, flush=True)
            runs[(tracer, export)].append(result)
    return runs


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
    parser.add_argument(
        "--export",
        default=None,
        help=f"real-export table: comma-separated protocols of the official OTLP exporter (default "
        f"{','.join(EXPORT_PROTOCOLS)}; http with --quick, to keep it short), or 'none' to skip it; covers the "
        f"chosen tracers among {', '.join(EXPORT_TRACERS)}",
    )
    parser.add_argument(
        "--export-processes",
        type=int,
        default=1,
        help="worker processes per tracer and protocol in the real-export table (default 1: the two protocols "
        "already put each tracer in two processes there)",
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
    export = args.export or ("http" if args.quick else ",".join(EXPORT_PROTOCOLS))
    protocols = [] if export == "none" else [name for name in export.split(",") if name]
    if set(protocols) - set(EXPORT_PROTOCOLS):
        parser.error(f"--export takes protocols among {EXPORT_PROTOCOLS}, or none")

    processes = args.processes or (1 if args.quick else 2)
    started = time.monotonic()
    runs = run_rounds([(tracer, "discard") for tracer in chosen], processes, args, None)
    raw = [report.pool(results) for results in runs.values()]
    summary = report.summarise(raw, quick=args.quick, seconds=time.monotonic() - started, clock=args.clock)

    export_jobs = [(tracer, protocol) for protocol in protocols for tracer in chosen if tracer in EXPORT_TRACERS]
    export_runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    exports: dict[str, dict[str, Any]] = {}
    if export_jobs:
        export_started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                receiver = Receiver(Path(tmp))
            except RuntimeError as error:
                # The main tables stand on their own; a missing exporter package is the usual cause.
                error_text = f"{error} (re-run bash benchmarks/setup_peers.sh: the venvs need the OTLP exporters)"
                export_runs = {job: [{"tracer": job[0], "error": error_text}] for job in export_jobs}
            else:
                try:
                    export_runs = run_rounds(export_jobs, args.export_processes, args, receiver.endpoints)
                finally:
                    receiver.stop()
        for protocol in protocols:
            pooled = [report.pool(results) for (_, p), results in export_runs.items() if p == protocol]
            # Priced at the main tables' reference baselines, so a real-export figure reads next to the discarding
            # one; the ratios within the table do not depend on it.
            exports[protocol] = report.summarise(
                pooled, quick=args.quick, seconds=time.monotonic() - export_started, clock=args.clock,
                references=summary["reference_baselines"] or None,
            )
    summary["seconds"] = round(time.monotonic() - started, 1)
    markdown = report.markdown(summary) + report_export.markdown(exports)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    # `otel-callbacks view` on a 100k-span file, against a bare json.loads of its lines (issue 16, goal 4).
    view_md = args.out_dir / "view.md"
    view_python = python_for("ours") or Path(sys.executable)
    view_cmd = [str(view_python), str(HERE / "view.py"), "--markdown", str(view_md)]
    subprocess.run(view_cmd + (["--repeat", "2"] if args.quick else []), check=False, timeout=1800)
    if view_md.exists():
        markdown += "\n\n### `otel-callbacks view` on a 100k-span file\n\n" + view_md.read_text()
    print(markdown)
    payload = {
        "summary": summary,
        "export_summaries": exports,
        "raw": {tracer: results for (tracer, _), results in runs.items()},
        "export_raw": {f"{tracer}/{protocol}": results for (tracer, protocol), results in export_runs.items()},
    }
    (args.out_dir / "latest.json").write_text(json.dumps(payload, indent=2))
    (args.out_dir / "latest.md").write_text(markdown)
    print(f"written: {args.out_dir / 'latest.json'}, {args.out_dir / 'latest.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
