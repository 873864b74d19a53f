"""GenAI client metrics (semconv v1.41): token usage, operation duration, time to first chunk, time per chunk.

Recorded per model run whether or not its trace is sampled: dashboards need every call. While no MeterProvider is
configured the handler holds no :class:`GenAIMetrics` at all, so the cost is one global read per model run.

On an SDK the fast path is proven on, records go through :mod:`otel_callbacks.emit.metrics_fast`, and a stream's
chunk gaps are kept on the side (value, time, context) and recorded together when its model run ends: one value per
gap as before, off the per-chunk path. Elsewhere every value is recorded through the public ``record()`` when it
happens.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from time import monotonic_ns, time_ns
from typing import Any, Final

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider

from otel_callbacks import _semconv as sc
from otel_callbacks._version import __version__
from otel_callbacks.emit import compat
from otel_callbacks.emit.metrics_fast import FastHistogram, SampleMemo, feed_key, get_current_context

# Bucket boundaries advised by the conventions; the SDK's defaults (0..10000 ms-oriented) fit neither.
TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)

TOKEN_USAGE: Final = sc.METRIC_TOKEN_USAGE
OPERATION_DURATION: Final = sc.METRIC_OPERATION_DURATION
TIME_TO_FIRST_CHUNK: Final = sc.METRIC_TIME_TO_FIRST_CHUNK
TIME_PER_OUTPUT_CHUNK: Final = sc.METRIC_TIME_PER_OUTPUT_CHUNK
# Not in v1.41; emitted only with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental.
EXECUTE_TOOL_DURATION: Final = sc.METRIC_EXECUTE_TOOL_DURATION
INVOKE_AGENT_DURATION: Final = sc.METRIC_INVOKE_AGENT_DURATION
# Under the opt-in, usage counters per kind of token the provider reported (semconv-genai: replace token.usage sums).
_USAGE_COUNTERS: Final = (
    (sc.GEN_AI_USAGE_INPUT_TOKENS, "input_tokens", "Input tokens used."),
    (sc.GEN_AI_USAGE_OUTPUT_TOKENS, "output_tokens", "Output tokens used."),
    (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "cache_read.input_tokens", "Input tokens read from the cache."),
    (sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, "cache_write.input_tokens", "Input tokens written to the cache."),
    (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "reasoning.output_tokens", "Output tokens spent on reasoning."),
)

# Attributes of a model run's start that metrics carry (low cardinality, as the conventions list them).
METRIC_START_KEYS: Final[tuple[str, ...]] = (
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    sc.SERVER_ADDRESS,
    sc.SERVER_PORT,
)

# Streams whose gaps are held at once, and gaps held per stream, before they are recorded anyway: bounds the memory
# of streams that never end and the delay before a long stream's gaps reach a reader.
MAX_OPEN_STREAMS: Final = 256
MAX_HELD_GAPS: Final = 1024
MAX_TOKEN_SETS: Final = 256
_INPUT: Final = {"gen_ai.token.type": "input"}
_OUTPUT: Final = {"gen_ai.token.type": "output"}


def metrics_enabled(meter_provider: MeterProvider | None) -> bool:
    """Whether a real MeterProvider is there: given explicitly, or installed globally by now."""
    if meter_provider is not None:
        return not isinstance(meter_provider, NoOpMeterProvider)
    current = metrics.get_meter_provider()
    # The API hands out a proxy until an SDK provider is installed; recording into it is wasted work.
    return not compat.is_proxy_meter_provider(current) and not isinstance(current, NoOpMeterProvider)


def _token_sets(attrs: dict[str, Any]) -> tuple[dict[str, Any], Any, dict[str, Any], Any]:
    in_attrs, out_attrs = {**attrs, **_INPUT}, {**attrs, **_OUTPUT}
    return in_attrs, feed_key(in_attrs), out_attrs, feed_key(out_attrs)


class _HeldGaps:
    """A stream's chunk gaps not recorded yet, with what the SDK would have read when each happened.

    Values and times sit in arrays and a context only where it changes: a tuple per chunk made the garbage
    collector run more often, which cost more than the gaps themselves.
    """

    __slots__ = ("attrs", "changes", "ctx", "done", "owner", "times", "values")

    def __init__(self, owner: dict[str, Any]) -> None:
        self.owner = owner  # held so that its id() names this stream until the gaps are recorded
        self.attrs = dict(owner)  # as at the gaps: the response model is added to the owner only at the end
        self.values = array("d")
        self.times = array("q")  # time_ns() at each gap
        self.ctx: Any = None
        self.changes: list[tuple[int, Any]] = []  # (first gap, current context) each time the context changes
        self.done = False  # recorded: later gaps of the stream go to new held gaps

    def add(self, seconds: float) -> int:
        """Hold one gap with what the SDK would read when it happens (the time, the current context); returns how
        many are held."""
        values = self.values
        values.append(seconds)
        self.times.append(time_ns())
        ctx = get_current_context()
        if ctx is not self.ctx:
            self.ctx = ctx
            self.changes.append((len(values) - 1, ctx))
        return len(values)

    def contexts(self) -> list[Any]:
        """The current context at each gap."""
        n = len(self.values)
        bounds = [start for start, _ in self.changes[1:]] + [n]
        out: list[Any] = []
        for (start, ctx), end in zip(self.changes, bounds, strict=True):
            out += [ctx] * (end - start)
        return out


class GenAIMetrics:
    """The histograms, created once per handler."""

    def __init__(self, meter_provider: MeterProvider | None, *, experimental: bool) -> None:
        meter = metrics.get_meter("otel_callbacks", __version__, meter_provider,
                                  schema_url="https://opentelemetry.io/schemas/1.41.0")
        # The latest conventions keep the instruments (and their attributes) under inference names, and split
        # token usage into one histogram per direction (no gen_ai.token.type) plus usage counters.
        self._latest = experimental
        self.token_usage = meter.create_histogram(
            TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS) if not experimental else None
        self.input_tokens = self.output_tokens = None
        self._usage_counters: tuple[tuple[str, Any], ...] = ()
        if experimental:
            self.input_tokens = meter.create_histogram(
                sc.METRIC_INFERENCE_INPUT_TOKENS, unit="{token}", description="Input tokens per inference.",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
            self.output_tokens = meter.create_histogram(
                sc.METRIC_INFERENCE_OUTPUT_TOKENS, unit="{token}", description="Output tokens per inference.",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
            self._usage_counters = tuple(
                (key, meter.create_counter(sc.METRIC_USAGE_PREFIX + suffix, unit="{token}", description=text))
                for key, suffix, text in _USAGE_COUNTERS)
        self.duration = meter.create_histogram(
            sc.METRIC_INFERENCE_DURATION if experimental else OPERATION_DURATION, unit="s",
            description="GenAI operation duration.", explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.time_to_first_chunk = meter.create_histogram(
            sc.METRIC_INFERENCE_TIME_TO_FIRST_CHUNK if experimental else TIME_TO_FIRST_CHUNK, unit="s",
            description="Time to receive the first chunk of a streaming response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.time_per_output_chunk = meter.create_histogram(
            sc.METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK if experimental else TIME_PER_OUTPUT_CHUNK, unit="s",
            description="Time between consecutive chunks of a streaming response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.tool_duration = self.agent_duration = None
        if experimental:
            self.tool_duration = meter.create_histogram(
                EXECUTE_TOOL_DURATION, unit="s", description="Tool execution duration.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
            self.agent_duration = meter.create_histogram(
                INVOKE_AGENT_DURATION, unit="s", description="Agent invocation duration.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self._fast = compat.fast_path_proven()
        memo = SampleMemo()
        self._fast_duration = FastHistogram(self.duration, memo)
        self._fast_first_chunk = FastHistogram(self.time_to_first_chunk, memo)
        self._fast_tokens = FastHistogram(self.token_usage, memo) if self.token_usage is not None else None
        self._fast_in = FastHistogram(self.input_tokens, memo) if self.input_tokens is not None else None
        self._fast_out = FastHistogram(self.output_tokens, memo) if self.output_tokens is not None else None
        self._fast_gaps = FastHistogram(self.time_per_output_chunk, memo)
        self._fast_operations = {op: FastHistogram(histogram, memo) for op, histogram in (
            (sc.OP_EXECUTE_TOOL, self.tool_duration), (sc.OP_INVOKE_AGENT, self.agent_duration)) if histogram}
        self._held: dict[int, _HeldGaps] = {}
        # Per attribute set of a model run: its token-usage attribute sets and their feed keys.
        self._token_attrs: dict[Any, tuple[dict[str, Any], Any, dict[str, Any], Any]] = {}

    def model_end(self, attrs: dict[str, Any], seconds: float, usage: dict[str, Any], error: str | None,
                  first_chunk_seconds: float | None) -> None:
        """Record a finished model run: its held chunk gaps, duration (with ``error.type`` on failure), tokens, time
        to first chunk."""
        if not self._fast:
            self._public_model_end(attrs, seconds, usage, error, first_chunk_seconds)
            return
        held = self._held.pop(id(attrs), None)
        if held is not None:
            self._record_held(held)
        if error is not None:
            attrs = {**attrs, sc.ERROR_TYPE: error}
        key = feed_key(attrs)
        ctx, now = get_current_context(), time_ns()
        self._fast_duration.record(seconds, attrs, key, ctx, now)
        if first_chunk_seconds is not None:
            self._fast_first_chunk.record(first_chunk_seconds, attrs, key, ctx, now)
        inp = usage.get(sc.GEN_AI_USAGE_INPUT_TOKENS)
        out = usage.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
        if self._latest:
            if self._fast_in is not None and isinstance(inp, int):
                self._fast_in.record(inp, attrs, key, ctx, now)
            if self._fast_out is not None and isinstance(out, int):
                self._fast_out.record(out, attrs, key, ctx, now)
            self._count_usage(attrs, usage)
        elif self._fast_tokens is not None and (isinstance(inp, int) or isinstance(out, int)):
            token_attrs = self._token_sets(attrs, key)
            if isinstance(inp, int):
                self._fast_tokens.record(inp, token_attrs[0], token_attrs[1], ctx, now)
            if isinstance(out, int):
                self._fast_tokens.record(out, token_attrs[2], token_attrs[3], ctx, now)

    def _token_sets(self, attrs: dict[str, Any], key: Any) -> tuple[dict[str, Any], Any, dict[str, Any], Any]:
        """The input and output token attribute sets of ``attrs`` and their keys, made once per attribute set."""
        try:
            return self._token_attrs[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable attribute value: nothing to cache under
            return _token_sets(attrs)
        if len(self._token_attrs) >= MAX_TOKEN_SETS:
            self._token_attrs.clear()
        sets = self._token_attrs[key] = _token_sets(attrs)
        return sets

    def _public_model_end(self, attrs: dict[str, Any], seconds: float, usage: dict[str, Any], error: str | None,
                          first_chunk_seconds: float | None) -> None:
        if error is not None:
            attrs = {**attrs, sc.ERROR_TYPE: error}
        self.duration.record(seconds, attrs)
        if first_chunk_seconds is not None:
            self.time_to_first_chunk.record(first_chunk_seconds, attrs)
        inp = usage.get(sc.GEN_AI_USAGE_INPUT_TOKENS)
        out = usage.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
        if self.token_usage is not None:
            if isinstance(inp, int):
                self.token_usage.record(inp, {**attrs, **_INPUT})
            if isinstance(out, int):
                self.token_usage.record(out, {**attrs, **_OUTPUT})
            return
        if self.input_tokens is not None and isinstance(inp, int):
            self.input_tokens.record(inp, attrs)
        if self.output_tokens is not None and isinstance(out, int):
            self.output_tokens.record(out, attrs)
        self._count_usage(attrs, usage)

    def _count_usage(self, attrs: dict[str, Any], usage: dict[str, Any]) -> None:
        """The latest conventions' usage counters: each kind of token the provider reported."""
        for key, counter in self._usage_counters:
            value = usage.get(key)
            if isinstance(value, int) and value >= 0:
                counter.add(value, attrs)

    def chunk_gap(self, attrs: dict[str, Any], seconds: float) -> None:
        """One gap between chunks of the stream whose run's metric attributes are ``attrs`` (the same dict for every
        chunk of a run); held until :meth:`model_end` of that run on the fast path."""
        if not self._fast:
            self.time_per_output_chunk.record(seconds, attrs)
            return
        held = self._held.get(id(attrs))
        if held is None or held.owner is not attrs:
            if held is not None:  # cannot happen while the owner is held; recorded rather than dropped if it did
                self._record_held(held)
            if len(self._held) >= MAX_OPEN_STREAMS:
                self.flush()
            held = self._held[id(attrs)] = _HeldGaps(attrs)
        if held.add(seconds) >= MAX_HELD_GAPS:
            self._record_held(self._held.pop(id(attrs)))

    def chunk_sink(self, record: Any, span_sink: Callable[[int], object]) -> Callable[[int], None]:
        """``span_sink`` (which takes a chunk's event timestamp) that also records the chunk's gap, for a stream past
        its first chunk whose chunks need nothing else: what the handler's per-chunk path does for such a chunk,
        reading and writing ``record.last_chunk_ns`` (monotonic) as it does. On the fast path the gap goes
        straight into the stream's held gaps (as :meth:`chunk_gap` does, without finding them again)."""
        attrs = record.metric_attrs
        gap = self.chunk_gap
        held_of = self._held.get  # never holds anything off the fast path: every gap then goes through chunk_gap
        state: list[_HeldGaps | None] = [held_of(id(attrs))]
        last = MAX_HELD_GAPS - 1

        def sink(stamp: int) -> None:
            span_sink(stamp)
            now = monotonic_ns()
            seconds = (now - record.last_chunk_ns) / 1e9
            record.last_chunk_ns = now
            held = state[0]
            if held is None or held.done or len(held.values) >= last:
                gap(attrs, seconds)  # makes, or records and drops, the held gaps
                state[0] = held_of(id(attrs))
                return
            held.add(seconds)

        return sink

    def flush(self) -> None:
        """Record every held chunk gap now (streams that may never end; before a final collection)."""
        while self._held:
            try:
                _, held = self._held.popitem()
            except KeyError:
                return
            self._record_held(held)

    def _record_held(self, held: _HeldGaps) -> None:
        held.done = True
        if held.values:
            self._fast_gaps.record_many(held.values, held.times, held.contexts(), held.attrs, feed_key(held.attrs))

    def operation_end(self, op: str, attrs: dict[str, Any], seconds: float, error: str | None) -> None:
        """Tool and agent durations (experimental names, opt-in only)."""
        histogram = self.tool_duration if op == sc.OP_EXECUTE_TOOL else self.agent_duration
        if histogram is None:
            return
        if error is not None:
            attrs = {**attrs, sc.ERROR_TYPE: error}
        fast = self._fast_operations.get(op) if self._fast else None
        if fast is None:
            histogram.record(seconds, attrs)
        else:
            fast.record(seconds, attrs, feed_key(attrs), get_current_context(), time_ns())
