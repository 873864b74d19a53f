"""What the configured sampler lets the handler skip: two probes, made once per handler."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState, set_span_in_context


def children_follow_parent(sampler: Any) -> bool:
    """Whether ``sampler`` drops every child of an unsampled local parent, as the SDK's built-in samplers do.

    Then an unsampled run's children need no span of their own: they can share the parent's non-recording one.
    """
    if sampler is None or type(sampler).__module__ != "opentelemetry.sdk.trace.sampling":
        return False
    for trace_id in (1, 2**128 - 1):
        parent = NonRecordingSpan(SpanContext(trace_id, 1, is_remote=False, trace_flags=TraceFlags(0)))
        decision = sampler.should_sample(set_span_in_context(parent), trace_id, "probe").decision
        if decision.is_recording():
            return False
    return True


def sampler_reads_attributes(sampler: Any) -> bool:
    """Whether ``sampler`` (or one it delegates to) is not one of the SDK's attribute-blind built-ins."""
    if sampler is None:
        return False
    if type(sampler).__module__ != "opentelemetry.sdk.trace.sampling":
        return True
    return any(sampler_reads_attributes(v) for v in vars(sampler).values() if isinstance(v, Sampler))


def sampled_children_follow_parent(sampler: Any) -> bool:
    """Whether ``sampler`` samples every child of a sampled local parent, adding no attributes and keeping the
    parent's trace state, as ``ParentBased`` and ``ALWAYS_ON`` do. Then a sampled run's children need no sampler
    call: the decision is known.
    """
    if sampler is None or type(sampler).__module__ != "opentelemetry.sdk.trace.sampling":
        return False
    state = TraceState([("probe", "1")])
    for trace_id in (1, 2**128 - 1):
        parent = NonRecordingSpan(SpanContext(trace_id, 1, False, TraceFlags(TraceFlags.SAMPLED), state))
        result = sampler.should_sample(set_span_in_context(parent), trace_id, "probe")
        if result.decision is not Decision.RECORD_AND_SAMPLE or result.attributes or result.trace_state != state:
            return False
    return True
