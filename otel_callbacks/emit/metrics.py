"""GenAI client metrics (semconv v1.41): token usage, operation duration, time to first chunk, time per chunk.

Recorded per model run whether or not its trace is sampled: dashboards need every call. While no MeterProvider is
configured the handler holds no :class:`GenAIMetrics` at all, so the cost is one global read per model run.
"""

from __future__ import annotations

from typing import Any, Final

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider

from otel_callbacks import _semconv as sc
from otel_callbacks._version import __version__
from otel_callbacks.emit import compat

# Bucket boundaries advised by the conventions; the SDK's defaults (0..10000 ms-oriented) fit neither.
TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

TOKEN_USAGE: Final = "gen_ai.client.token.usage"
OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.operation.time_per_output_chunk"
# Not in v1.41; emitted only with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental.
EXECUTE_TOOL_DURATION: Final = "gen_ai.execute_tool.duration"
INVOKE_AGENT_DURATION: Final = "gen_ai.invoke_agent.duration"

# Attributes of a model run's start that metrics carry (low cardinality, as the conventions list them).
METRIC_START_KEYS: Final[tuple[str, ...]] = (
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    sc.SERVER_ADDRESS,
    sc.SERVER_PORT,
)


def metrics_enabled(meter_provider: MeterProvider | None) -> bool:
    """Whether a real MeterProvider is there: given explicitly, or installed globally by now."""
    if meter_provider is not None:
        return not isinstance(meter_provider, NoOpMeterProvider)
    current = metrics.get_meter_provider()
    # The API hands out a proxy until an SDK provider is installed; recording into it is wasted work.
    return not compat.is_proxy_meter_provider(current) and not isinstance(current, NoOpMeterProvider)


class GenAIMetrics:
    """The histograms, created once per handler."""

    def __init__(self, meter_provider: MeterProvider | None, *, experimental: bool) -> None:
        meter = metrics.get_meter("otel_callbacks", __version__, meter_provider,
                                  schema_url="https://opentelemetry.io/schemas/1.41.0")
        self.token_usage = meter.create_histogram(
            TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        self.duration = meter.create_histogram(
            OPERATION_DURATION, unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.time_to_first_chunk = meter.create_histogram(
            TIME_TO_FIRST_CHUNK, unit="s", description="Time to receive the first chunk of a streaming response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.time_per_output_chunk = meter.create_histogram(
            TIME_PER_OUTPUT_CHUNK, unit="s", description="Time between consecutive chunks of a streaming response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.tool_duration = self.agent_duration = None
        if experimental:
            self.tool_duration = meter.create_histogram(
                EXECUTE_TOOL_DURATION, unit="s", description="Tool execution duration.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
            self.agent_duration = meter.create_histogram(
                INVOKE_AGENT_DURATION, unit="s", description="Agent invocation duration.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS)

    def model_end(self, attrs: dict[str, Any], seconds: float, usage: dict[str, Any], error: str | None,
                  first_chunk_seconds: float | None) -> None:
        """Record a finished model run: duration (with ``error.type`` on failure), tokens, time to first chunk."""
        if error is not None:
            attrs = {**attrs, sc.ERROR_TYPE: error}
        self.duration.record(seconds, attrs)
        if first_chunk_seconds is not None:
            self.time_to_first_chunk.record(first_chunk_seconds, attrs)
        inp = usage.get(sc.GEN_AI_USAGE_INPUT_TOKENS)
        if isinstance(inp, int):
            self.token_usage.record(inp, {**attrs, "gen_ai.token.type": "input"})
        out = usage.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
        if isinstance(out, int):
            self.token_usage.record(out, {**attrs, "gen_ai.token.type": "output"})

    def chunk_gap(self, attrs: dict[str, Any], seconds: float) -> None:
        self.time_per_output_chunk.record(seconds, attrs)

    def operation_end(self, op: str, attrs: dict[str, Any], seconds: float, error: str | None) -> None:
        """Tool and agent durations (experimental names, opt-in only)."""
        histogram = self.tool_duration if op == sc.OP_EXECUTE_TOOL else self.agent_duration
        if histogram is None:
            return
        if error is not None:
            attrs = {**attrs, sc.ERROR_TYPE: error}
        histogram.record(seconds, attrs)
