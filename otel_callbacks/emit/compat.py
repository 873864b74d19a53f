"""Every probe of a private OpenTelemetry SDK/API or CPython internal, and the SDK range the fast path is proven on.

Why one module: each of these reads something its owner may rename or change in any release. Here each probe
checks what it reads and returns ``None`` (or the public fallback) when it is not what we know, so the caller falls
back without losing a span; ``tests/test_compat.py`` pins every probe to the versions CI runs, so a change in an
internal fails a test instead of silently turning an optimisation off.

Nothing here imports the SDK at module level: ``import otel_callbacks`` must work even when the SDK cannot be
imported (it raises at import on a malformed ``OTEL_SPAN_*_LIMIT`` variable).
"""

from __future__ import annotations

import logging
import sys
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from functools import partial, reduce
from importlib import metadata
from operator import add
from typing import Any

from opentelemetry import context as context_api
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

_logger = logging.getLogger(__name__)

# The SDK minors CI runs the whole suite on, both paths (.ci/run: the declared floor and the newest). The fast path
# reads SDK internals, so it is offered only inside this range; elsewhere the handler uses the SDK's public path.
FAST_PATH_SDK_MIN = (1, 39)
FAST_PATH_SDK_MAX = (1, 45)


def sdk_version() -> tuple[int, int] | None:
    """The installed ``opentelemetry-sdk`` as ``(major, minor)``; ``None`` if absent or unparsable."""
    try:
        major, minor = metadata.version("opentelemetry-sdk").split(".")[:2]
        return int(major), int(minor)
    except (metadata.PackageNotFoundError, ValueError):
        return None


# Releases inside the range whose own path the fast path does not reproduce (it follows the releases around them).
FAST_PATH_SDK_EXCLUDED = {
    "1.42.0": "sets the random-trace-id flag on children of a remote parent (1.42.1 reverts it)",
}


def _sdk_release() -> str | None:
    try:
        return metadata.version("opentelemetry-sdk")
    except metadata.PackageNotFoundError:
        return None


def fast_path_proven() -> bool:
    """Whether the installed SDK is one the fast path is proven on."""
    version = sdk_version()
    return (version is not None and FAST_PATH_SDK_MIN <= version <= FAST_PATH_SDK_MAX
            and _sdk_release() not in FAST_PATH_SDK_EXCLUDED)


def sdk_trace_module() -> Any:
    """``opentelemetry.sdk.trace`` if the application has imported it (any SDK tracer implies it), else ``None``.

    Read from ``sys.modules`` instead of imported: the handler never imports the SDK itself, so a tracer that is not
    the SDK's never costs the SDK's import (or its failure on a malformed span-limit variable).
    """
    return sys.modules.get("opentelemetry.sdk.trace")


# --- OpenTelemetry context ---------------------------------------------------------------------------------------
def runtime_context_ops() -> tuple[Callable[[], Context], Callable[[Context], Any], Callable[[Any], None], bool]:
    """``(get_current, attach, reset, direct)``: the runtime context's own ContextVar methods when it is the default
    ``ContextVarsRuntimeContext`` (the same get/set/reset, two calls fewer per run), else the public API.

    ``reset`` raises ``ValueError``/``RuntimeError`` for a token made in another context, where the public
    ``detach`` would log "Failed to detach context" instead; callers rely on the exception.
    """
    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime).__name__ == "ContextVarsRuntimeContext" and isinstance(var, ContextVar):
        return var.get, var.set, var.reset, True
    return context_api.get_current, context_api.attach, _raising_detach(runtime), False


def _raising_detach(runtime: Any) -> Callable[[Any], None]:
    detach = getattr(runtime, "detach", None)
    if callable(detach):
        return detach  # type: ignore[no-any-return]
    return context_api.detach


# --- asyncio ------------------------------------------------------------------------------------------------------
def running_tasks_map() -> dict[Any, Any] | None:
    """The C task module's map of each running loop's current task (``_asyncio._current_tasks``), or ``None``.

    ``asyncio.current_task()`` first asks the OS for the pid; this map answers the same question with a dict read.
    """
    try:
        from _asyncio import _current_tasks  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _current_tasks if isinstance(_current_tasks, dict) else None


# --- metrics API --------------------------------------------------------------------------------------------------
def global_meter_provider_unset() -> bool:
    """Whether no global MeterProvider is installed, read from the API's module global (``get_meter_provider()``
    looks up an environment variable on every call). ``False`` ("ask the API") if that global is renamed."""
    from opentelemetry.metrics import _internal as metrics_internal

    return getattr(metrics_internal, "_METER_PROVIDER", False) is None


def is_proxy_meter_provider(provider: Any) -> bool:
    """Whether ``provider`` is the API's placeholder until an SDK MeterProvider is installed (recording into it is
    wasted work). Its class is private; a renamed class reads as "not a proxy", which only costs that work."""
    return type(provider).__name__ == "_ProxyMeterProvider"


# --- SDK tracer -----------------------------------------------------------------------------------------------------
class TracerParts:
    """What the fast path reads off an SDK ``Tracer`` beyond its public attributes."""

    def __init__(self, tracer: Any) -> None:
        self.limits = tracer._span_limits
        self.scope = tracer._instrumentation_scope
        enabled = getattr(tracer, "_is_enabled", None)  # SDK >= 1.40: tracer configurator
        self.enabled: Callable[[], bool] | None = enabled if callable(enabled) else None
        # The SDK's own span metrics (SDK >= 1.40): a known no-op (1.42+, internal metrics off) costs nothing;
        # anything else is called exactly as the SDK's Tracer calls it.
        metrics = getattr(tracer, "_tracer_metrics", None)
        if metrics is not None and type(metrics).__name__ == "NoOpTracerMetrics":
            metrics = None
        if metrics is not None and not callable(getattr(metrics, "start_span", None)):
            raise AttributeError("unknown tracer metrics")
        self.tracer_metrics = metrics


def tracer_parts(tracer: Any) -> TracerParts | None:
    """The fast path's view of ``tracer``; ``None`` when it is not the SDK's own ``Tracer`` laid out as we know."""
    sdk = sdk_trace_module()
    if sdk is None or type(tracer) is not getattr(sdk, "Tracer", None):
        return None
    try:
        return TracerParts(tracer)
    except AttributeError:
        return None


def span_processors(processor: Any) -> tuple[Any, ...] | None:
    """The processors inside the provider's ``SynchronousMultiSpanProcessor``; ``None`` for any other processor."""
    sdk = sdk_trace_module()
    procs = getattr(processor, "_span_processors", None)
    if sdk is None or type(processor) is not sdk.SynchronousMultiSpanProcessor or not isinstance(procs, tuple):
        return None
    return procs


def on_ending_hook(processor: Any) -> Callable[[Any], None] | None:
    """A processor's ``_on_ending`` (SDK >= 1.40), unless it is the base class's no-op or absent (SDK 1.39)."""
    sdk = sdk_trace_module()
    base = getattr(sdk.SpanProcessor, "_on_ending", None) if sdk is not None else None
    hook = getattr(type(processor), "_on_ending", None)
    if base is None or hook is None or hook is base:  # no such hook in this SDK: the SDK never calls one either
        return None
    return getattr(processor, "_on_ending", None)


# --- API SpanContext ------------------------------------------------------------------------------------------------
def _checked_child_context(parent: SpanContext, span_id: int) -> SpanContext:
    return SpanContext(parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state)


def _tuple_child_context(parent: SpanContext, span_id: int) -> SpanContext:
    # SpanContext is a tuple (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid); the parent's trace
    # id and a generated span id are valid by construction, so the constructor's checks are skipped.
    return tuple.__new__(SpanContext, (parent[0], span_id, False, parent[3], parent[4], True))


def _pick_child_context() -> Callable[[SpanContext, int], SpanContext]:
    probe_parent = SpanContext(3, 5, True, TraceFlags(1), TraceState([("k", "v")]))
    try:
        probe = _tuple_child_context(probe_parent, 7)
        if probe == _checked_child_context(probe_parent, 7) and probe.is_valid and probe.span_id == 7:
            return _tuple_child_context
    except Exception:  # an API whose SpanContext is laid out differently
        pass
    return _checked_child_context


child_span_context: Callable[[SpanContext, int], SpanContext] = _pick_child_context()
"""``SpanContext(parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state)``, cheaper when the API's
``SpanContext`` is laid out as we know."""


# --- SDK metrics ----------------------------------------------------------------------------------------------------
_SDK_METRICS = "opentelemetry.sdk.metrics._internal"
# What HistogramFeed reads and writes on an explicit-bucket histogram aggregation.
_AGGREGATION_FIELDS = ("_lock", "_value", "_sum", "_min", "_max", "_record_min_max", "_boundaries", "_reservoir",
                       "_get_empty_bucket_counts")


class HistogramFeed:
    """The SDK aggregations (one per reader and view) that one histogram's values for one attribute set go to.

    Resolved only after the SDK itself has created them (by a public ``record()``), so the data point's attributes,
    start time and cardinality handling stay the SDK's own. Valid while the SDK's reader set is the one seen then.
    """

    def __init__(self, histogram: Any, storages: Any, aggregations: list[Any], exemplar_filter: Any) -> None:
        self.storages = storages
        self.consumer = histogram._measurement_consumer
        self.enabled: Callable[[], bool] | None = getattr(histogram, "_is_enabled", None)  # SDK >= 1.40
        self.aggregations = aggregations
        self.exemplar_filter = exemplar_filter
        filter_name = type(exemplar_filter).__name__
        # The SDK's own filters decide on the measurement's context alone.
        self.context_only = filter_name in ("TraceBasedExemplarFilter", "AlwaysOnExemplarFilter",
                                            "AlwaysOffExemplarFilter")
        self.boundaries: tuple[float, ...] = tuple(aggregations[0]._boundaries) if aggregations else ()
        # The SDK's default reservoir for these aggregations keeps the last offer per bucket, the bucket found by a
        # linear scan of the same boundaries (a bisection finds the same one); offered into directly.
        aligned = all(type(agg._reservoir).__name__ == "AlignedHistogramBucketExemplarReservoir"
                      and tuple(agg._reservoir._boundaries) == self.boundaries == tuple(agg._boundaries)
                      and isinstance(agg._reservoir._reservoir_storage, defaultdict) for agg in aggregations)
        self._buckets: list[tuple[Any, Any]] | None = [
            (agg._reservoir._reservoir_storage, getattr(agg._reservoir, "_lock", None)) for agg in aggregations
        ] if aligned else None
        # TraceBased: every sampled value carries a valid span, so only a bucket's last offer is observable (AlwaysOn
        # may offer span-less values, which keep the previous offer's span ids).
        self.last_per_bucket = aligned and filter_name == "TraceBasedExemplarFilter"

    def valid(self) -> bool:
        enabled = self.enabled
        return self.consumer._reader_storages is self.storages and (enabled is None or enabled())

    def add(self, value: float) -> None:
        """What ``_ExplicitBucketHistogramAggregation.aggregate`` does with one value, for each aggregation."""
        for agg in self.aggregations:
            with agg._lock:
                counts = agg._value
                if counts is None:
                    counts = agg._value = agg._get_empty_bucket_counts()
                agg._sum += value
                if agg._record_min_max:
                    agg._min = min(agg._min, value)
                    agg._max = max(agg._max, value)
                counts[bisect_left(agg._boundaries, value)] += 1

    def aggregate(self, values: Sequence[float]) -> list[int]:
        """:meth:`add` for each value in order, one lock per aggregation; the values' indexes in :attr:`boundaries`."""
        bounds = self.boundaries
        indexes = list(map(partial(bisect_left, bounds), values))
        for agg in self.aggregations:
            own = indexes if agg._boundaries == bounds else list(map(partial(bisect_left, agg._boundaries), values))
            per_bucket = Counter(own)
            with agg._lock:
                counts = agg._value
                if counts is None:
                    counts = agg._value = agg._get_empty_bucket_counts()
                # one by one, as the SDK adds them (a float sum depends on the order; sum() compensates on 3.12+)
                agg._sum = reduce(add, values, agg._sum)
                for index, n in per_bucket.items():
                    counts[index] += n
                if agg._record_min_max:
                    agg._min = min(agg._min, min(values))
                    agg._max = max(agg._max, max(values))
        return indexes

    def offer(self, value: float, time_unix_nano: int, attributes: dict[str, Any], ctx: Context) -> None:
        """The exemplar offer the SDK makes after aggregating a sampled value, to each aggregation's reservoir."""
        buckets = self._buckets
        if buckets is None:
            for agg in self.aggregations:
                agg._reservoir.offer(value, time_unix_nano, attributes, ctx)
            return
        index = bisect_left(self.boundaries, value)
        for storage, lock in buckets:
            if lock is None:  # SDK 1.39: the aligned reservoir offers without a lock
                storage[index].offer(value, time_unix_nano, attributes, ctx)
            else:
                with lock:
                    storage[index].offer(value, time_unix_nano, attributes, ctx)


def histogram_feed(histogram: Any, attributes: dict[str, Any]) -> HistogramFeed | None:
    """The feed of ``histogram`` for ``attributes`` (which the SDK has aggregated at least once), or ``None``.

    ``None`` unless the SDK is proven, ``histogram`` is the SDK's own, every reader aggregates it cumulatively in an
    explicit-bucket histogram, and each aggregation is found under the SDK's own key for ``attributes`` (a changed
    key function, a cardinality overflow or a delta reader that drops aggregations on collect all read as ``None``).
    """
    instrument = sys.modules.get(f"{_SDK_METRICS}.instrument")
    matching = sys.modules.get(f"{_SDK_METRICS}._view_instrument_match")
    aggregation = sys.modules.get(f"{_SDK_METRICS}.aggregation")
    if (not fast_path_proven() or instrument is None or matching is None or aggregation is None
            or type(histogram) is not getattr(instrument, "_Histogram", None)):
        return None
    # SDK >= 1.40 keys by _hash_attributes (tells True from 1); 1.39 by the frozenset of the items.
    key_of: Callable[[dict[str, Any]], Any] = getattr(
        matching, "_hash_attributes", lambda attrs: frozenset(attrs.items()))
    histogram_aggregation = getattr(aggregation, "_ExplicitBucketHistogramAggregation", None)
    try:
        consumer = histogram._measurement_consumer
        storages = consumer._reader_storages
        found = []
        for storage in storages.values():
            for match in storage._get_or_init_view_instrument_match(histogram):
                if getattr(match, "_reset_on_collect", False):
                    return None
                keys = match._view._attribute_keys
                view_attrs = attributes if keys is None else {k: v for k, v in attributes.items() if k in keys}
                agg = match._attributes_aggregation.get(key_of(view_attrs))
                if type(agg) is not histogram_aggregation or not all(hasattr(agg, f) for f in _AGGREGATION_FIELDS):
                    return None
                found.append(agg)
        return HistogramFeed(histogram, storages, found, consumer._sdk_config.exemplar_filter)
    except (AttributeError, TypeError):
        return None
