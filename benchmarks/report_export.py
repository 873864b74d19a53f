"""The real-export table: each span-making tracer with the official OTLP exporter to the loopback receiver.

Takes one ``report.summarise`` result per protocol and renders µs per span, spans and bytes received per span,
the export's own share and the goal of issue 16 (ours at most 0.6x the best span-per-run peer with real export).
"""

from __future__ import annotations

from typing import Any

from report import LABELS

GOAL_VS_PEER = 0.6
GOAL_WORKLOADS = ("invoke", "ainvoke", "agent")
PROTOCOL_NAMES = {"http": "HTTP/protobuf", "grpc": "gRPC"}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _per_protocol(
    exports: dict[str, dict[str, Any]], tracer: str, workload: str, render: Any
) -> str:
    parts = []
    for summary in exports.values():
        cell = summary["cells"].get(tracer, {}).get(workload)
        parts.append("n/a" if cell is None else render(cell))
    return " \\| ".join(parts)


def _bytes(cell: dict[str, Any]) -> str:
    spans = cell["sustained_spans_per_call"]
    if spans <= 0:
        return "-"
    proto = cell["proto_bytes_per_call"] / spans
    wire = cell["wire_bytes_per_call"] / spans
    return f"{proto:.0f}" + (f" (sent {wire:.0f})" if abs(wire - proto) >= 1 else "")


def _batch_range(exports: dict[str, dict[str, Any]], workload: str) -> str:
    sizes = [
        per[workload]["spans_per_flush"]
        for summary in exports.values()
        for per in summary["cells"].values()
        if workload in per and per[workload]["spans_per_flush"] > 0
    ]
    return f"{min(sizes):.0f}-{max(sizes):.0f}" if sizes else "n/a"


def _shape(cell: dict[str, Any]) -> str:
    spans = cell["sustained_spans_per_call"]
    if spans <= 0:
        return "-"
    return f"{cell['attributes_per_call'] / spans:.1f} / {cell['events_per_call'] / spans:.1f}"


def markdown(exports: dict[str, dict[str, Any]]) -> str:
    """The real-export section (empty when the run had no real-export table)."""
    if not exports:
        return ""
    protocols = list(exports)
    names = " \\| ".join(PROTOCOL_NAMES[p] for p in protocols)
    workloads: list[str] = next(iter(exports.values()))["workloads"]
    tracers = [t for t in LABELS if any(t in summary["cells"] for summary in exports.values())]
    head = "| tracer | " + " | ".join(workloads) + " |"
    rule = "|---|" + "---:|" * len(workloads)
    first = next(iter(exports.values()))
    lines = [
        "",
        f"## With real OTLP export ({names})",
        "",
        "The span-making tracers again, each with the official OTLP exporter (exporter defaults: no compression; "
        "Langfuse over HTTP with its own, gzip) behind the SDK-default BatchSpanProcessor, sending to a loopback "
        "receiver in another process that counts and discards. All CPU of the traced process is counted: the calls, "
        "the BatchSpanProcessor, protobuf encoding and the HTTP or gRPC client, in flushes of a few hundred spans "
        "after the groups. Spans and bytes are counted where they arrive, at the receiver. "
        f"{first['processes']} process(es) per tracer and protocol; priced at the main tables' reference "
        "baselines. Cells read " + names + ".",
        "",
        "### Added µs per span (per LangChain run), real export",
        "",
        head,
        rule,
    ]
    for tracer in tracers:
        row = [_per_protocol(exports, tracer, w, lambda c: _fmt(c["added_us_per_run"])) for w in workloads]
        lines.append(f"| {LABELS[tracer]} | " + " | ".join(row) + " |")
    lines += ["", "### Spans received per call / runs per call", "", head, rule]
    for tracer in tracers:
        row = [
            _per_protocol(exports, tracer, w, lambda c: f"{c['sustained_spans_per_call']:.2f}/{c['runs_per_call']}")
            for w in workloads
        ]
        lines.append(f"| {LABELS[tracer]} | " + " | ".join(row) + " |")
    lines += ["", "### Bytes per span received (encoded protobuf; as sent, if compressed)", "", head, rule]
    for tracer in tracers:
        row = [_per_protocol(exports, tracer, w, _bytes) for w in workloads]
        lines.append(f"| {LABELS[tracer]} | " + " | ".join(row) + " |")
    # One protocol suffices: the spans are the same whichever way they travel.
    shape = {next(iter(exports)): next(iter(exports.values()))}
    lines += ["", "### Attributes / events per span received (what the encoder walks)", "", head, rule]
    for tracer in tracers:
        row = [_per_protocol(shape, tracer, w, _shape) for w in workloads]
        lines.append(f"| {LABELS[tracer]} | " + " | ".join(row) + " |")
    lines += ["", "### Of the added µs per call: the export after the calls (encode and send)", "", head, rule]
    for tracer in tracers:
        row = [_per_protocol(exports, tracer, w, lambda c: _fmt(c.get("export_us_per_call"))) for w in workloads]
        lines.append(f"| {LABELS[tracer]} | " + " | ".join(row) + " |")
    batches = "; ".join(f"{w} {_batch_range(exports, w)}" for w in workloads)
    lines += [
        "",
        "Spans per export request (a flush after as many groups as fill about 384 spans, so the fixed cost of a "
        f"request is spread as in a busy app's 512-span batches): {batches}.",
        "",
        "### Goals with real export (issue 16)",
        "",
        "| workload | protocol | best span-per-run peer | ours / it (≤ 0.6x) | ours / minimal | ours-sdk / best "
        "span-per-run peer |",
        "|---|---|---|---:|---:|---:|",
    ]
    for w in workloads:
        for protocol, summary in exports.items():
            r = summary["ratios"].get(w)
            if r is None:
                continue
            ratio = r["ours_vs_best_span_per_run_peer"]
            mark = "" if ratio is None else (" ✅" if ratio <= GOAL_VS_PEER else " ❌")
            lines.append(
                f"| {w}{'' if w in GOAL_WORKLOADS else ' (info)'} | {PROTOCOL_NAMES[protocol]} "
                f"| {r['best_span_per_run_peer'] or 'n/a'} | {_times(ratio)}{mark if w in GOAL_WORKLOADS else ''} "
                f"| {_times(r['ours_vs_minimal'])} | {_times(r['ours_sdk_vs_best_span_per_run_peer'])} |"
            )
    lines.append("")
    for protocol, summary in exports.items():
        for tracer in tracers:
            cells = summary["cells"].get(tracer, {})
            leaked = max((cell["leaked_spans_per_call"] for cell in cells.values()), default=0.0)
            if leaked:
                lines.append(f"- **{tracer} [{protocol}]: {leaked:.2f} spans per call exported while switched off**")
        for tracer, error in summary["errors"].items():
            lines.append(f"- **{tracer} [{protocol}] not measured**: {error}")
    notes = dict.fromkeys(note for summary in exports.values() for note in summary["notes"]
                          if note.startswith("langfuse"))
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"
