"""Turns the workers' raw timings into added cost, ratios and goal checks (summarise), and a Markdown report."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any

LABELS = {
    "none": "no tracing (A/A: noise floor)",
    "noop": "no-op handler",
    "minimal": "minimal handler",
    "floor": "contract floor: minimal + span current + a stamp per chunk",
    "ours": "**ours** (content off)",
    "ours-metrics": "ours + SDK MeterProvider",
    "ours-ratio0": "ours, sampler ratio 0",
    "ours-sdk": "ours, SDK path (LEAN_SPANS=false)",
    "openllmetry": "OpenLLMetry 0.62.4",
    "openinference": "OpenInference 0.1.80",
    "official": "official genai-langchain 1.3b0",
    "langfuse": "Langfuse 5.2.0 CallbackHandler",
}
PEERS = ("openllmetry", "openinference", "official", "langfuse")
# Issue 6: ours <= 0.3x the best peer and <= 1.2x the minimal handler per span; ratio-0 sampling <= 2x the no-op.
GOAL_VS_PEER = 0.3
GOAL_VS_MINIMAL = 1.2
GOAL_SAMPLING = 2.0
# Issue 16, goal 2: the default path at most 1.1x the minimal handler on every workload.
GOAL_VS_MINIMAL_16 = 1.1
GOAL_WORKLOADS = ("invoke", "ainvoke", "stream")


def _mad(values: list[float]) -> float:
    middle = statistics.median(values)
    return statistics.median(abs(value - middle) for value in values)


def _relative(cell: dict[str, Any]) -> float:
    return statistics.median(t / b - 1 for b, t in zip(cell["baseline_us"], cell["traced_us"], strict=True))


def pool(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One tracer's worker processes as one result: per workload their groups pooled, the worst case of spans and
    memory, and each process's own median relative overhead (``per_process_relative``) to show their spread."""
    done = [result for result in results if "error" not in result]
    if not done:
        return results[0]
    pooled = dict(done[0])
    workloads: dict[str, Any] = {}
    for name in pooled["workloads"]:
        cells = [result["workloads"][name] for result in done if name in result["workloads"]]
        cell = dict(cells[0])
        cell["baseline_us"] = [value for c in cells for value in c["baseline_us"]]
        cell["traced_us"] = [value for c in cells for value in c["traced_us"]]
        cell["groups"] = sum(c["groups"] for c in cells)
        cell["sustained_spans_per_call"] = min(c["sustained_spans_per_call"] for c in cells)
        cell["leaked_spans_per_call"] = max(c["leaked_spans_per_call"] for c in cells)
        cell["rss_growth_kib"] = max(c["rss_growth_kib"] for c in cells)
        for key in ("wire_bytes_per_call", "proto_bytes_per_call", "attributes_per_call", "events_per_call"):
            cell[key] = statistics.mean(c.get(key, 0.0) for c in cells)
        exports = [c.get("export_us_per_call") for c in cells]
        cell["export_us_per_call"] = None if None in exports else statistics.mean(exports)  # type: ignore[arg-type]
        cell["per_process_relative"] = [_relative(c) for c in cells]
        workloads[name] = cell
    pooled["workloads"] = workloads
    pooled["notes"] = list(dict.fromkeys(note for result in done for note in result["notes"]))
    pooled["notes"] += [f"one worker process failed: {result['error']}" for result in results if "error" in result]
    pooled["processes"] = len(done)
    return pooled


def reference_baselines(raw: list[dict[str, Any]]) -> dict[str, float]:
    """Per workload, the median over all processes of each process's median baseline µs per call."""
    per_workload: dict[str, list[float]] = {}
    for result in raw:
        for name, value in result.get("workloads", {}).items():
            per_workload.setdefault(name, []).append(statistics.median(value["baseline_us"]))
    return {name: statistics.median(values) for name, values in per_workload.items()}


def _cell(result: dict[str, Any], reference_us: float) -> dict[str, Any]:
    """Added cost from the groups of alternating calls.

    Each group's traced calls are compared with the baseline calls they alternated with, as a ratio, so that a
    stretch in which the shared machine runs slow inflates both sides alike and cancels; the median relative
    overhead is then priced at the run-wide reference baseline, which puts every tracer (each timed in its own
    process) on one scale.
    """
    runs = max(1, result["runs_per_call"])
    pairs = list(zip(result["baseline_us"], result["traced_us"], strict=True))
    relative = [traced / baseline - 1 for baseline, traced in pairs]
    per_process = result.get("per_process_relative") or [statistics.median(relative)]
    overhead = statistics.median(relative)
    added = overhead * reference_us
    # Standard error of a median, ~1.86 MAD / sqrt(n) for roughly normal noise.
    noise = 1.86 * _mad(relative) / len(pairs) ** 0.5 * reference_us
    return {
        "baseline_us": statistics.median(result["baseline_us"]),
        "traced_us": statistics.median(result["traced_us"]),
        "reference_baseline_us": reference_us,
        "relative_overhead": overhead,
        "added_us_per_call": added,
        "added_us_per_run": added / runs,
        "raw_added_us_per_call": statistics.median(traced - baseline for baseline, traced in pairs),
        # Included in the traced side: the span export after each group (older result files lack it).
        "export_us_per_call": result.get("export_us_per_call"),
        "per_process_added_us_per_run": [rel * reference_us / runs for rel in per_process],
        "noise_us_per_call": noise,
        "runs_per_call": result["runs_per_call"],
        "sustained_spans_per_call": result["sustained_spans_per_call"],
        "leaked_spans_per_call": result["leaked_spans_per_call"],
        "rss_growth_kib": result["rss_growth_kib"],
        "wire_bytes_per_call": result.get("wire_bytes_per_call", 0.0),
        "spans_per_flush": result.get("pairs_per_group", 0) * result.get("groups_per_flush", 1)
        * result["sustained_spans_per_call"],
        "proto_bytes_per_call": result.get("proto_bytes_per_call", 0.0),
        "attributes_per_call": result.get("attributes_per_call", 0.0),
        "events_per_call": result.get("events_per_call", 0.0),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def summarise(
    raw: list[dict[str, Any]],
    *,
    quick: bool,
    seconds: float,
    clock: str = "cpu",
    references: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Added µs per call and per run for each tracer and workload, the ratios, and the goals of issue 6.

    ``references`` prices the relative overheads at another table's baselines (the real-export table uses the main
    one's); by default at this table's own.
    """
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    errors: dict[str, str] = {}
    notes: list[str] = []
    versions: dict[str, dict[str, str]] = {}
    sources: set[str] = set()
    own = reference_baselines(raw)
    references = {**own, **(references or {})}
    for result in raw:
        if "error" in result:
            errors[result["tracer"]] = result["error"]
            continue
        cells[result["tracer"]] = {name: _cell(value, references[name]) for name, value in result["workloads"].items()}
        versions[result["tracer"]] = result["versions"]
        if result.get("ours_source"):
            sources.add(result["ours_source"])
        notes.extend(f"{result['tracer']}: {note}" for note in result["notes"])

    def added(tracer: str, workload: str, key: str = "added_us_per_call") -> float | None:
        cell = cells.get(tracer, {}).get(workload)
        return cell[key] if cell else None

    workloads = sorted({name for per in cells.values() for name in per}, key=lambda n: list(_ORDER).index(n))
    ratios: dict[str, dict[str, Any]] = {}
    for workload in workloads:
        peers = {peer: cost for peer in PEERS if (cost := added(peer, workload)) is not None}
        best = min(peers, key=lambda peer: peers[peer]) if peers else None
        # Peers that made a span for every run: the official one traces only models, tools and agents.
        complete = {
            peer: cost
            for peer, cost in peers.items()
            if cells[peer][workload]["sustained_spans_per_call"] >= cells[peer][workload]["runs_per_call"] - 0.01
        }
        best_complete = min(complete, key=lambda peer: complete[peer]) if complete else None
        ours = added("ours", workload)
        ratios[workload] = {
            "best_peer": best,
            "ours_vs_best_peer": _ratio(ours, peers.get(best)) if best else None,
            "best_span_per_run_peer": best_complete,
            "ours_vs_best_span_per_run_peer": _ratio(ours, complete.get(best_complete)) if best_complete else None,
            "ours_vs_minimal": _ratio(ours, added("minimal", workload)),
            "ours_sdk_vs_minimal": _ratio(added("ours-sdk", workload), added("minimal", workload)),
            "floor_vs_minimal": _ratio(added("floor", workload), added("minimal", workload)),
            "ours_vs_floor": _ratio(ours, added("floor", workload)),
            "ours_sdk_vs_best_span_per_run_peer": (
                _ratio(added("ours-sdk", workload), complete.get(best_complete)) if best_complete else None
            ),
            "ours_ratio0_vs_noop": _ratio(added("ours-ratio0", workload), added("noop", workload)),
            "metrics_extra_us_per_run": (
                added("ours-metrics", workload, "added_us_per_run") - added("ours", workload, "added_us_per_run")  # type: ignore[operator]
                if added("ours-metrics", workload) is not None and added("ours", workload) is not None
                else None
            ),
        }
    return {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "quick": quick,
        "processes": max((result.get("processes", 1) for result in raw if "error" not in result), default=1),
        "clock": clock,
        "seconds": round(seconds, 1),
        "workloads": workloads,
        "reference_baselines": references,
        "cells": cells,
        "ratios": ratios,
        "errors": errors,
        "notes": notes,
        "versions": versions,
        "ours_source": sorted(sources),
    }


_ORDER = ("invoke", "ainvoke", "stream", "agent")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _goal(value: float | None, goal: float) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}x {'✅' if value <= goal else '❌'}"


def markdown(summary: dict[str, Any]) -> str:
    """The report: added µs per span and per call, spans exported, ratios against the goals."""
    workloads: list[str] = summary["workloads"]
    cells = summary["cells"]
    tracers = [name for name in LABELS if name in cells]
    head = "| tracer | " + " | ".join(workloads) + " |"
    rule = "|---|" + "---:|" * len(workloads)
    lines = [
        f"Measured {summary['when']} on {summary['machine']}; {'--quick' if summary['quick'] else 'full'} run, "
        f"{summary['seconds']:.0f} s, {summary['clock']} clock. Each tracer in {summary['processes']} fresh "
        "process(es) of its own; added cost = median over the pooled groups of alternating calls of (traced / "
        "baseline - 1), priced at the run-wide reference baseline (see README).",
        "",
        "### Added µs per span (per LangChain run) vs no tracing",
        "",
        head,
        rule,
    ]
    for tracer in tracers:
        row = [_fmt(cells[tracer][w]["added_us_per_run"]) if w in cells[tracer] else "n/a" for w in workloads]
        lines.append(f"| {LABELS[tracer]} | " + " | ".join(row) + " |")
    lines += ["", "### Added µs per call (± standard error) and (spans exported / runs) per call", "", head, rule]
    reference = {w: cell["reference_baseline_us"] for per in cells.values() for w, cell in per.items()}
    lines.append(
        "| *reference baseline µs per call* | " + " | ".join(_fmt(reference.get(w), 0) for w in workloads) + " |"
    )
    for tracer in tracers:
        row = []
        for w in workloads:
            cell = cells[tracer].get(w)
            if cell is None:
                row.append("n/a")
                continue
            spans = f"{cell['sustained_spans_per_call']:.2f}/{cell['runs_per_call']}" if tracer != "none" else "-"
            row.append(f"{cell['added_us_per_call']:.0f} ±{cell['noise_us_per_call']:.0f} ({spans})")
        lines.append(f"| {LABELS[tracer]} | " + " | ".join(row) + " |")
    if any(len(cell["per_process_added_us_per_run"]) > 1 for per in cells.values() for cell in per.values()):
        lines += ["", "### Added µs per span, each worker process alone (their groups are pooled above)", "", head,
                  rule]
        for tracer in tracers:
            row = [" / ".join(_fmt(v) for v in cells[tracer][w]["per_process_added_us_per_run"])
                   if w in cells[tracer] else "n/a" for w in workloads]
            lines.append(f"| {LABELS[tracer]} | " + " | ".join(row) + " |")
    lines += [
        "",
        "### Goals (issue 6)",
        "",
        "| workload | best peer | ours / best peer (≤ 0.3x) | ours / best span-per-run peer "
        "| ours / minimal (≤ 1.2x) | ratio-0 ours / no-op (≤ 2x) | metrics: extra µs per run "
        "| SDK path: ours-sdk / minimal |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for w in workloads:
        r = summary["ratios"][w]
        goal_row = w in GOAL_WORKLOADS
        lines.append(
            f"| {w}{'' if goal_row else ' (info)'} | {r['best_peer'] or 'n/a'} "
            f"| {_goal(r['ours_vs_best_peer'], GOAL_VS_PEER)} "
            f"| {_fmt(r['ours_vs_best_span_per_run_peer'], 2)}x ({r['best_span_per_run_peer'] or 'n/a'}) "
            f"| {_goal(r['ours_vs_minimal'], GOAL_VS_MINIMAL)} "
            f"| {_goal(r['ours_ratio0_vs_noop'], GOAL_SAMPLING)} | {_fmt(r['metrics_extra_us_per_run'])} "
            f"| {_fmt(r['ours_sdk_vs_minimal'], 2)}x |"
        )
    if "floor" in cells:
        lines += [
            "",
            "### Goal 2 (issue 16): the default path against the minimal handler and the contract floor",
            "",
            "The contract floor is the minimal handler plus what our span contract needs that no attribute stands "
            "in for: the run's span current while the run's code runs, and a timestamp per streamed chunk "
            "(`reference.FloorHandler`), on the SDK's own spans as the minimal handler: a tracer on SDK spans that "
            "keeps the contract costs at least the floor (ours makes cheaper spans, see README).",
            "",
            "| workload | ours / minimal (≤ 1.1x) | contract floor / minimal | ours / contract floor |",
            "|---|---:|---:|---:|",
        ]
        for w in workloads:
            r = summary["ratios"][w]
            lines.append(
                f"| {w} | {_goal(r['ours_vs_minimal'], GOAL_VS_MINIMAL_16)} | {_fmt(r['floor_vs_minimal'], 2)}x "
                f"| {_fmt(r['ours_vs_floor'], 2)}x |"
            )
    memory = ", ".join(
        f"{t} {max(c['rss_growth_kib'] for c in cells[t].values()) / 1024:.1f}" for t in tracers if cells[t]
    )
    lines += ["", f"RSS growth over a workload's timed calls, worst workload (MiB): {memory}."]
    export = "; ".join(
        f"{t} " + " / ".join(_fmt(c.get("export_us_per_call")) for c in cells[t].values())
        for t in tracers
        if any(c.get("export_us_per_call") for c in cells[t].values())
    )
    if export:
        lines.append(
            f"Of the added µs per call, span export after the calls (queue drain; the exporter reads every attribute "
            f"and event, as an encoder would), {' / '.join(workloads)}: {export}."
        )
    lines.append(
        "Spans exported are counted over an unbroken traced stretch after the timed calls, where a tracer slower "
        "than the BatchSpanProcessor's queue drops spans; fewer spans than runs also means the tracer skips runs."
    )
    for tracer in tracers:
        leaked = max(cell["leaked_spans_per_call"] for cell in cells[tracer].values())
        if leaked:
            lines.append(f"- **{tracer}: {leaked:.2f} spans per call exported while switched off** (switch incomplete)")
    if summary["ours_source"]:
        # More than one entry means the handler changed between the ours* processes of this run.
        lines.append(f"- ours measured at: {'; '.join(summary['ours_source'])}")
    for note in summary["notes"]:
        lines.append(f"- {note}")
    for tracer, error in summary["errors"].items():
        lines.append(f"- **{tracer} not measured**: {error}")
    return "\n".join(lines) + "\n"
