"""Histogram records that skip the SDK's per-call work once an attribute set's aggregations are known.

The SDK's ``Histogram.record`` checks and copies the attributes, hashes them into a key, finds each reader's
aggregation, takes its lock and asks the exemplar filter, on every call. A model run records the same few attribute
sets over and over, so :class:`FastHistogram` lets the SDK do all that for an attribute set's first value and then
feeds later values straight into the aggregations it found (``compat.histogram_feed``): the same values, counts,
buckets, min/max, sums added in the same order, and exemplars offered exactly as the SDK offers them.

Anything the feed does not cover (an unproven SDK, a view with another aggregation, a delta reader on SDK >= 1.40,
a negative or non-finite value, an unhashable attribute) goes through the public ``record()``, so no value is lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from opentelemetry.context import Context

from otel_callbacks.emit import compat

# Attribute sets remembered per histogram; past this the cache starts again (high-cardinality models or servers).
MAX_FEEDS: Final = 512
_SCALARS: Final = frozenset((str, int, float, bool))
_MISSING: Final[Any] = object()

get_current_context = compat.runtime_context_ops()[0]


def feed_key(attrs: dict[str, Any]) -> tuple[tuple[Any, ...], tuple[type, ...]]:
    """A cache key that tells apart what the SDK's key tells apart among scalar values (``True`` from ``1``)."""
    return tuple(attrs.items()), tuple(map(type, attrs.values()))


class SampleMemo:
    """The exemplar filter's last answer, shared by the histograms of one provider: a model run's records at its end
    share one context, which is all the SDK's own filters read."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        # One tuple, replaced whole, so a thread never reads one record's context with another's answer. It keeps
        # the last context alive until the next record.
        self.last: tuple[Any, Any, bool] = (None, None, False)

    def sample(self, feed: compat.HistogramFeed, value: float, now: int, attrs: dict[str, Any], ctx: Context) -> bool:
        exemplar_filter = feed.exemplar_filter
        if not feed.context_only:
            return bool(exemplar_filter.should_sample(value, now, attrs, ctx))
        last_filter, last_ctx, answer = self.last
        if last_ctx is ctx and last_filter is exemplar_filter:
            return answer
        answer = bool(exemplar_filter.should_sample(value, now, attrs, ctx))
        self.last = (exemplar_filter, ctx, answer)
        return answer


class FastHistogram:
    """One SDK histogram with a cache of attribute set -> feed; ``record``/``record_many`` as the SDK's record."""

    __slots__ = ("_feeds", "_memo", "histogram")

    def __init__(self, histogram: Any, memo: SampleMemo) -> None:
        self.histogram = histogram
        self._feeds: dict[Any, compat.HistogramFeed | None] = {}
        self._memo = memo

    def _feed(self, key: Any) -> compat.HistogramFeed | None:
        """The live feed for ``key``, or ``None`` (the value goes through the public path then)."""
        feed = self._feeds.get(key, _MISSING)
        if feed is _MISSING:
            return None
        if feed is not None and not feed.valid():
            self._feeds.pop(key, None)
            return None
        return feed  # type: ignore[no-any-return]

    def _learn(self, key: Any, attrs: dict[str, Any]) -> None:
        """After a public record of ``attrs``: find the aggregations the SDK made for it (``None``: never fast)."""
        if len(self._feeds) >= MAX_FEEDS:
            self._feeds.clear()
        plain = all(type(v) in _SCALARS for v in attrs.values())
        self._feeds[key] = compat.histogram_feed(self.histogram, attrs) if plain else None

    def record(self, value: float, attrs: dict[str, Any], key: Any, ctx: Context, now: int) -> None:
        """``histogram.record(value, attrs)`` made at ``now`` (``time_ns()``) in ``ctx`` (the current context);
        ``key`` is :func:`feed_key` of ``attrs``."""
        try:
            feed = self._feed(key)
        except TypeError:  # an unhashable attribute value
            self.histogram.record(value, attrs, ctx)
            return
        if feed is None or not (0 <= value < math.inf):
            self.histogram.record(value, attrs, ctx)
            if key not in self._feeds and 0 <= value < math.inf:  # the SDK has made the aggregations now
                self._learn(key, attrs)
            return
        feed.add(value)
        if self._memo.sample(feed, value, now, attrs, ctx):
            feed.offer(value, now, attrs, ctx)

    def record_many(self, values: Sequence[float], times: Sequence[int], contexts: Sequence[Context],
                    attrs: dict[str, Any], key: Any) -> None:
        """As if ``histogram.record(values[i], attrs, contexts[i])`` had been called at ``times[i]``, in order."""
        start = 0
        try:
            feed = self._feed(key)
        except TypeError:
            feed = None
        if feed is None:  # the SDK makes the aggregations on the first value
            self.histogram.record(values[0], attrs, contexts[0])
            start = 1
            try:
                if key not in self._feeds and 0 <= values[0] < math.inf:
                    self._learn(key, attrs)
                feed = self._feed(key)
            except TypeError:
                feed = None
        rest = values[start:]
        if not rest:
            return
        # A NaN or an infinity makes the sum non-finite; the SDK drops those and negatives, with a warning each.
        if feed is None or not (min(rest) >= 0 and math.isfinite(sum(rest))):
            for value, ctx in zip(rest, contexts[start:], strict=True):
                self.histogram.record(value, attrs, ctx)
            return
        indexes = feed.aggregate(rest)
        self._offer_exemplars(feed, rest, times[start:], contexts[start:], attrs, indexes)

    def _offer_exemplars(self, feed: compat.HistogramFeed, values: Sequence[float], times: Sequence[int],
                         contexts: Sequence[Context], attrs: dict[str, Any], indexes: list[int]) -> None:
        sample = self._memo.sample
        n = len(values)
        if feed.context_only and contexts.count(contexts[0]) == n:  # equal contexts, as a stream's gaps have
            sampled: Sequence[int] = range(n) if sample(feed, values[0], times[0], attrs, contexts[0]) else ()
        else:
            sampled = [i for i, ctx in enumerate(contexts) if sample(feed, values[i], times[i], attrs, ctx)]
        if not sampled:
            return
        if feed.last_per_bucket:
            # A bucket keeps only its last offer, so offering the others would be overwritten unseen.
            last = dict(zip(indexes, range(n), strict=True)) if len(sampled) == n else {indexes[i]: i for i in sampled}
            sampled = sorted(last.values())
        for i in sampled:
            feed.offer(values[i], times[i], attrs, contexts[i])
