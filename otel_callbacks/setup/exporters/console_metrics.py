"""A compact console rendering of metrics: one line per metric and attribute set with count, sum, min and max.

The SDK's ``ConsoleMetricExporter`` prints every bucket of every histogram as indented JSON (hundreds of lines for
the four GenAI histograms); this prints what a person checks first. Attributes shared by every point are printed
once in the header so that each line shows only what tells it apart (here usually ``gen_ai.token.type``).

Example:
    >>> # PeriodicExportingMetricReader(ConsoleMetricSummaryExporter())
    >>> # metrics  service=my-app  on every point: gen_ai.operation.name=chat gen_ai.provider.name=openai
    >>> #   gen_ai.client.token.usage  {token}  count=2  sum=137  min=18  max=77  gen_ai.token.type=input
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

__all__ = ["ConsoleMetricSummaryExporter", "render_metrics"]


class ConsoleMetricSummaryExporter(MetricExporter):
    """Print :func:`render_metrics` lines to ``out`` (``sys.stdout`` at print time when ``None``) on every export."""

    def __init__(self, out: IO[str] | None = None) -> None:
        super().__init__()
        self._out = out

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        out = self._out or sys.stdout
        try:
            for line in render_metrics(metrics_data):
                print(line, file=out)
            out.flush()
        except (OSError, ValueError):  # a closed stdout (pipe gone, interpreter exit) must not break the reader
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def render_metrics(data: MetricsData | None) -> list[str]:
    """One header per resource, then ``name  unit  count=  sum=  min=  max=  distinguishing attributes`` lines.

    Example:
        >>> render_metrics(None)
        []
    """
    lines: list[str] = []
    for resource_metrics in data.resource_metrics if data else ():
        rows: list[tuple[str, str, list[str], dict[str, Any]]] = []
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in getattr(metric.data, "data_points", ()):
                    rows.append((metric.name, metric.unit or "", _stats(point), dict(point.attributes or {})))
        if not rows:
            continue
        common = _common_items(attrs for *_, attrs in rows)
        shared = set(common)
        service = resource_metrics.resource.attributes.get("service.name", "unknown_service")
        header = f"metrics  service={service}"
        if common:
            header += "  on every point: " + " ".join(f"{k}={_fmt(v)}" for k, v in common)
        lines.append(header)
        rows.sort(key=lambda row: (row[0], sorted((k, str(v)) for k, v in row[3].items())))
        # Pad every column (name, unit, each statistic) so the numbers of related lines line up.
        cells = [[name, unit, *stats, _own(attrs, shared)] for name, unit, stats, attrs in rows]
        widths = [max((len(row[i]) for row in cells if i < len(row)), default=0) for i in range(max(map(len, cells)))]
        for row in cells:
            lines.append(("  " + "  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row[:-1]))
                          + "  " + row[-1]).rstrip())
    return lines


def _stats(point: Any) -> list[str]:
    if hasattr(point, "count") and hasattr(point, "sum"):  # explicit and exponential histograms
        parts = [f"count={point.count}", f"sum={_fmt(point.sum)}"]
        if point.count:
            parts += [f"min={_fmt(point.min)}", f"max={_fmt(point.max)}"]
        return parts
    return [f"value={_fmt(getattr(point, 'value', '?'))}"]  # sums and gauges


def _own(attrs: dict[str, Any], shared: set[tuple[str, Any]]) -> str:
    own = sorted((kv for kv in _hashable(attrs) if kv not in shared), key=lambda kv: kv[0])
    return " ".join(f"{k}={_fmt(v)}" for k, v in own)


def _common_items(attribute_sets: Iterable[dict[str, Any]]) -> list[tuple[str, Any]]:
    sets = [set(_hashable(attrs)) for attrs in attribute_sets]
    shared = set.intersection(*sets) if sets else set()
    # A single point has nothing to be told apart from; keep its attributes on its own line.
    return sorted(shared, key=lambda kv: kv[0]) if len(sets) > 1 else []


def _hashable(attrs: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, tuple(v) if isinstance(v, list | tuple) else v) for k, v in attrs.items()]


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ",".join(map(str, value)) if isinstance(value, tuple | list) else str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return str(int(value))
