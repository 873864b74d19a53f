"""What the configured sampler lets the handler skip: two probes, made once per handler."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState, set_span_in_context

_BUILTIN = "opentelemetry.sdk.trace.sampling"
_PROBE_TRACE_IDS = (1, 2**128 - 1)  # both ends of the id range, where ratio-based samplers decide differently


def _child_decisions(sampler: Any, flags: int, state: TraceState | None = None) -> list[SamplingResult] | None:
    """What a built-in ``sampler`` decides for a child of a local parent with these trace flags and state, at both
    ends of the trace id range; ``None`` for samplers that are not the SDK's own (they may decide anything)."""
    if sampler is None or type(sampler).__module__ != _BUILTIN:
        return None
    results = []
    for trace_id in _PROBE_TRACE_IDS:
        parent = NonRecordingSpan(SpanContext(trace_id, 1, False, TraceFlags(flags), state))
        results.append(sampler.should_sample(set_span_in_context(parent), trace_id, "probe"))
    return results


def children_follow_parent(sampler: Any) -> bool:
    """Whether ``sampler`` drops every child of an unsampled local parent, as the SDK's built-in samplers do.

    Then an unsampled run's children need no span of their own: they can share the parent's non-recording one.
    """
    results = _child_decisions(sampler, TraceFlags.DEFAULT)
    return results is not None and not any(r.decision.is_recording() for r in results)


def sampler_reads_attributes(sampler: Any) -> bool:
    """Whether ``sampler`` (or one it delegates to) is not one of the SDK's attribute-blind built-ins."""
    if sampler is None:
        return False
    if type(sampler).__module__ != _BUILTIN:
        return True
    return any(sampler_reads_attributes(v) for v in vars(sampler).values() if isinstance(v, Sampler))


def sampled_children_follow_parent(sampler: Any) -> bool:
    """Whether ``sampler`` samples every child of a sampled local parent, adding no attributes and keeping the
    parent's trace state, as ``ParentBased`` and ``ALWAYS_ON`` do. Then a sampled run's children need no sampler
    call: the decision is known.
    """
    state = TraceState([("probe", "1")])
    results = _child_decisions(sampler, TraceFlags.SAMPLED, state)
    return results is not None and all(
        r.decision is Decision.RECORD_AND_SAMPLE and not r.attributes and r.trace_state == state for r in results
    )


def passes_attributes(sampler: Any) -> bool:
    """Whether ``sampler`` returns the attributes it is given unchanged, as the SDK's built-ins do: then a span's
    start attributes need no copy from the sampling result."""
    return sampler is not None and not sampler_reads_attributes(sampler)
