"""What the GenAI client metrics cost per model run, on the fast path and on the SDK's public record() path.

    .venv/bin/python benchmarks/metrics_micro.py [--runs 3000] [--chunks 40]

Times ``GenAIMetrics`` alone (no LangChain, no spans but the one a run's records are made in) for the two shapes a
model run records: a non-streamed call (duration and two token-usage values) and a stream of ``--chunks`` chunks
(one gap per chunk after the first, then duration, time to first chunk and tokens), each in a sampled span's
context (so exemplars are offered, as under the SDK's default filter) and outside any span. CPU time, best of five
rounds, µs per model run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from otel_callbacks.emit.metrics import GenAIMetrics

ATTRS = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
         "server.address": "api.openai.com", "server.port": 443}
USAGE = {"gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 40}


def _shapes(metrics: GenAIMetrics, chunks: int) -> dict[str, Callable[[], None]]:
    def invoke() -> None:
        attrs = dict(ATTRS)  # a new dict per run, as the handler makes
        attrs["gen_ai.response.model"] = "gpt-4o-2024"
        metrics.model_end(attrs, 0.42, USAGE, None, None)

    def stream() -> None:
        attrs = dict(ATTRS)
        for i in range(chunks - 1):
            metrics.chunk_gap(attrs, 0.0004 + (i % 7) * 0.01)
        attrs["gen_ai.response.model"] = "gpt-4o-2024"
        metrics.model_end(attrs, 0.42, USAGE, None, 0.05)

    return {"invoke": invoke, "stream": stream}


def _time(fn: Callable[[], None], runs: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(runs):
            fn()
        best = min(best, time.process_time() - start)
    return best / runs * 1e6


def measure(runs: int, chunks: int) -> dict[str, dict[str, float]]:
    tracer = TracerProvider().get_tracer("metrics_micro")
    results: dict[str, dict[str, float]] = {}
    for path in ("public", "fast"):
        provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        metrics = GenAIMetrics(provider, experimental=False)
        metrics._fast = metrics._fast and path == "fast"  # the public path, as an unproven SDK gets it
        for shape, fn in _shapes(metrics, chunks).items():
            fn()  # the attribute sets' first values, which the SDK aggregates itself either way
            with tracer.start_as_current_span("run"):
                in_span = _time(fn, runs)
            results.setdefault(f"{shape} (sampled span)", {})[path] = in_span
            results.setdefault(f"{shape} (no span)", {})[path] = _time(fn, runs)
        provider.shutdown()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--chunks", type=int, default=40)
    args = parser.parse_args(argv)
    results: Any = measure(args.runs, args.chunks)
    print(f"{'model run':<24}{'public µs':>11}{'fast µs':>10}{'fast/public':>13}")
    for shape, row in results.items():
        print(f"{shape:<24}{row['public']:>11.1f}{row['fast']:>10.1f}{row['fast'] / row['public']:>12.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
