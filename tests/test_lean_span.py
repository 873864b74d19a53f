"""The lean span path against the SDK's own: the same workloads must export the same spans either way.

``OTEL_CALLBACKS_LEAN_SPANS=false`` makes the handler use ``Tracer.start_span`` and the SDK ``Span``; every test
here runs a real workload both ways and compares what the exporter received, field by field (ids and times
normalised), so a difference in sampling, limits, validation, events or processor calls fails.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.emit import compat
from otel_callbacks.emit.fast import lean_tracer
from otel_callbacks.emit.lean_span import LeanSpan
from tests.support import CharStreamLLM, ai, fake_chat


class StartRecorder(SpanProcessor):
    """A processor that works on spans at start, as BaggageSpanProcessor does, and notes what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool, str | None]] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        parent = trace.get_current_span(parent_context).get_span_context()
        self.seen.append((span.name, span.is_recording(), format(parent.span_id, "016x") if parent.is_valid else None))
        span.set_attribute("app.on_start", "yes")

    def on_end(self, span: ReadableSpan) -> None:
        pass


class TaggingSampler(Sampler):
    """A custom sampler: samples everything and adds an attribute, as tail-hint samplers do."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None,
                      links: Any = None, trace_state: Any = None) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {"sampler.saw_op": str((attributes or {}).get(
            "gen_ai.operation.name"))}, parent.trace_state if parent.is_valid else None)

    def get_description(self) -> str:
        return "TaggingSampler"


@tool
def annotate(text: str) -> str:
    """Works on the current span the way user code does."""
    span = trace.get_current_span()
    span.set_attribute("app.plain", "x")
    span.set_attribute("app.list", [1, 2, 3])  # not plain: the SDK makes it a tuple
    span.set_attribute("app.bytes", b"\xff")  # not plain: left to the SDK's rules
    span.set_attributes({"app.count": 3, "app.flag": True, "app.tags": ["a", "b"]})
    span.add_event("app.event", {"k": "v", "bad": object()})  # type: ignore[dict-item]
    span.add_link(SpanContext(7, 9, False, TraceFlags(1)), {"link.kind": "follows"})
    span.record_exception(ValueError("handled"), {"app.extra": 1})
    span.update_name(f"{text} renamed")
    return text.upper()


def run_workloads(handler: OpenTelemetryCallbackHandler) -> None:
    config: RunnableConfig = {"callbacks": [handler], "tags": ["t1"], "metadata": {"user": "u", "n": 3}}
    chain = RunnableLambda(lambda x: x) | fake_chat(ai("hello", input_tokens=4, output_tokens=2), repeat=4,
                                                   ls_provider="openai", ls_model_name="gpt-x", ls_stop=["END"])
    chain.invoke("hi", config=config)
    annotate.invoke({"text": "tool"}, config=config)
    for _ in CharStreamLLM(response="abcdef").stream("x", config=config):
        pass

    def broken(x: Any) -> Any:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        RunnableLambda(broken).invoke(1, config=config)

    async def concurrent() -> None:
        await asyncio.gather(*(chain.ainvoke("hi", config=config) for _ in range(3)))

    asyncio.run(concurrent())


TIMINGS = ("gen_ai.response.time_to_first_chunk",)


def normalised(spans: Sequence[ReadableSpan]) -> list[dict[str, Any]]:
    """Exported spans with ids replaced by their order of appearance and times by their order."""
    ids: dict[int, int] = {}

    def sid(ctx: SpanContext | None) -> int | None:
        return None if ctx is None else ids.setdefault(ctx.span_id, len(ids))

    # Ids follow traces in the order they started, then spans by start within each trace: concurrent traces
    # interleave differently from run to run, but each one's own order is fixed (and identical traces may swap).
    trace_start: dict[int, int] = {}
    for span in spans:
        tid = span.context.trace_id
        trace_start[tid] = min(trace_start.get(tid, span.start_time or 0), span.start_time or 0)
    out = []
    for span in sorted(spans, key=lambda s: (trace_start[s.context.trace_id], s.context.trace_id, s.start_time or 0)):
        sid(span.context)
    for span in spans:
        attrs = {k: type(v).__name__ if k in TIMINGS else v for k, v in (span.attributes or {}).items()
                 if k != "langchain.run.id"}
        out.append({
            "name": span.name, "kind": span.kind, "id": sid(span.context), "parent": sid(span.parent),
            "flags": int(span.context.trace_flags), "state": span.context.trace_state.to_header(),
            "status": (span.status.status_code, span.status.description), "attributes": attrs,
            "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
            "events": [(e.name, {k: v for k, v in (e.attributes or {}).items() if k != "exception.stacktrace"},
                        e.dropped_attributes) for e in span.events],
            "links": [(link.context.span_id, dict(link.attributes or {})) for link in span.links],
            "scope": (span.instrumentation_scope.name, span.instrumentation_scope.schema_url),
            "resource": dict(span.resource.attributes),
            "ordered": span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time,
        })
    return sorted(out, key=lambda s: s["id"])


def export_both(monkeypatch: pytest.MonkeyPatch, make_provider: Callable[[InMemorySpanExporter], TracerProvider],
                workload: Callable[[OpenTelemetryCallbackHandler], None] = run_workloads,
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[OpenTelemetryCallbackHandler]]:
    results, handlers = [], []
    for lean in ("true", "false"):
        monkeypatch.setenv("OTEL_CALLBACKS_LEAN_SPANS", lean)
        exporter = InMemorySpanExporter()
        provider = make_provider(exporter)
        handler = OpenTelemetryCallbackHandler(provider)
        handler.raise_error = True
        workload(handler)
        provider.shutdown()
        results.append(normalised(exporter.get_finished_spans()))
        handlers.append(handler)
    return results[0], results[1], handlers


def simple(exporter: InMemorySpanExporter, **kwargs: Any) -> TracerProvider:
    provider = TracerProvider(**kwargs)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_default_workloads_export_the_same_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    lean, sdk, handlers = export_both(monkeypatch, simple)
    assert handlers[0].emission_path == "fast" and handlers[1].emission_path == "sdk"  # each path really taken
    assert len(lean) == 15  # 3 + 1 tool + 1 stream + 1 error + 3 x 3
    assert lean == sdk
    tool_span = next(s for s in lean if s["name"] == "tool renamed")
    assert tool_span["attributes"]["app.list"] == (1, 2, 3)
    assert [e[0] for e in tool_span["events"]] == ["app.event", "exception"]
    assert tool_span["links"] == [(9, {"link.kind": "follows"})]
    stream_span = next(s for s in lean if s["kind"] == SpanKind.CLIENT and s["events"])
    assert [e for e in stream_span["events"]] == [("langchain.llm.new_token", {}, 0)] * 6


def test_span_limits_are_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = SpanLimits(max_span_attributes=5, max_events=3, max_links=0, max_span_attribute_length=4,
                        max_event_attributes=1)
    lean, sdk, _ = export_both(monkeypatch, lambda e: simple(e, span_limits=limits))
    assert lean == sdk
    assert all(len(s["attributes"]) <= 5 and len(s["events"]) <= 3 and not s["links"] for s in lean)
    assert all(len(v) <= 4 for s in lean for k, v in s["attributes"].items() if isinstance(v, str) and k not in TIMINGS)
    assert any(s["dropped"][0] > 0 for s in lean) and any(s["dropped"][1] > 0 for s in lean)


def test_processor_on_start_sees_and_changes_the_span(monkeypatch: pytest.MonkeyPatch) -> None:
    recorders: list[StartRecorder] = []

    def provider(exporter: InMemorySpanExporter) -> TracerProvider:
        recorders.append(StartRecorder())
        made = simple(exporter)
        made.add_span_processor(recorders[-1])
        return made

    lean, sdk, _ = export_both(monkeypatch, provider)
    assert lean == sdk
    assert all(s["attributes"]["app.on_start"] == "yes" for s in lean)
    assert len(recorders[0].seen) == len(lean) and all(rec[1] for rec in recorders[0].seen)
    # the parent the processor is told about is the span's parent (child spans), as with the SDK
    assert [rec[2] is None for rec in recorders[0].seen] == [rec[2] is None for rec in recorders[1].seen]


@pytest.mark.parametrize("sampler", [TaggingSampler(), ParentBased(ALWAYS_ON)], ids=["custom", "parent-based"])
def test_samplers_decide_the_same(monkeypatch: pytest.MonkeyPatch, sampler: Sampler) -> None:
    lean, sdk, _ = export_both(monkeypatch, lambda e: simple(e, sampler=sampler))
    assert lean == sdk
    if isinstance(sampler, TaggingSampler):
        assert {s["attributes"]["sampler.saw_op"] for s in lean} >= {"chat", "execute_tool"}


def test_span_under_a_remote_parent_keeps_its_trace_state(monkeypatch: pytest.MonkeyPatch) -> None:
    remote = SpanContext(0xABC, 0xDEF, True, TraceFlags(1), trace.TraceState([("vendor", "v1")]))

    def workload(handler: OpenTelemetryCallbackHandler) -> None:
        with trace.use_span(trace.NonRecordingSpan(remote)):
            (RunnableLambda(lambda x: x) | RunnableLambda(lambda x: x)).invoke(1, config={"callbacks": [handler]})

    lean, sdk, _ = export_both(monkeypatch, simple, workload)
    assert lean == sdk
    assert [s["state"] for s in lean] == ["vendor=v1"] * 3


def test_ended_span_ignores_changes_and_exports_once(tracer_provider: TracerProvider,
                                                     span_exporter: InMemorySpanExporter) -> None:
    lean = lean_tracer(tracer_provider.get_tracer("t"))
    assert lean is not None
    span = lean.start_span("s", None, SpanKind.INTERNAL, None)
    assert isinstance(span, LeanSpan) and span.is_recording()
    span.set_status(StatusCode.OK)
    span.set_status(StatusCode.ERROR, "ignored: OK is final")
    span.end()
    span.end()
    span.set_attribute("late", 1)
    span.add_event("late")
    span.add_link(SpanContext(1, 2, False))
    span.update_name("late")
    (exported,) = span_exporter.get_finished_spans()
    assert exported.name == "s" and exported.status.status_code is StatusCode.OK
    assert not exported.attributes and not exported.events and not exported.links and not span.is_recording()


def test_used_as_a_context_manager_it_records_the_error(tracer_provider: TracerProvider,
                                                        span_exporter: InMemorySpanExporter) -> None:
    lean = lean_tracer(tracer_provider.get_tracer("t"))
    assert lean is not None
    with pytest.raises(ZeroDivisionError), lean.start_span("s", None, SpanKind.INTERNAL, None):
        _ = 1 / 0
    (exported,) = span_exporter.get_finished_spans()
    assert exported.status.status_code is StatusCode.ERROR
    assert exported.events[0].attributes["exception.type"] == "ZeroDivisionError"


def test_other_tracers_keep_the_sdk_path(monkeypatch: pytest.MonkeyPatch, tracer_provider: TracerProvider) -> None:
    assert lean_tracer(trace.NoOpTracer()) is None
    assert lean_tracer(trace.ProxyTracer("x")) is None
    monkeypatch.setenv("OTEL_CALLBACKS_LEAN_SPANS", "maybe")
    handler = OpenTelemetryCallbackHandler(tracer_provider)  # a bad value warns and keeps the default
    assert handler.emission_path == "fast"


@pytest.mark.skipif(compat.sdk_version() < (1, 40), reason="the tracer configurator arrived in SDK 1.40")
def test_disabled_tracer_makes_no_span(tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter) -> None:
    tracer = tracer_provider.get_tracer("t")
    lean = lean_tracer(tracer)
    assert lean is not None
    from opentelemetry.sdk.trace import _TracerConfig  # the SDK's (experimental) per-tracer switch

    tracer._set_tracer_config(_TracerConfig(is_enabled=False))
    span = lean.start_span("s", None, SpanKind.INTERNAL, None)
    assert not span.is_recording()
    span.end()
    assert span_exporter.get_finished_spans() == ()


@pytest.mark.parametrize("setter", ["one", "many"])
def test_values_that_are_not_plain_get_the_sdks_cleaning(setter: str, tracer_provider: TracerProvider,
                                                         span_exporter: InMemorySpanExporter) -> None:
    tracer = tracer_provider.get_tracer("t")
    lean = lean_tracer(tracer)
    assert lean is not None
    values = {"plain": "x", "list": [1, 2], "mixed": [1, "a"], "bytes": b"\xff", "nested": {"a": [1]}}
    for span in (lean.start_span("s", None, SpanKind.INTERNAL, None), tracer.start_span("s")):
        if setter == "one":
            for key, value in values.items():
                span.set_attribute(key, value)
        else:
            span.set_attributes(values)
        span.end()
    ours, sdks = (dict(s.attributes or {}) for s in span_exporter.get_finished_spans())
    assert ours == sdks
    assert ours["list"] == (1, 2)


def test_handler_made_before_the_provider_switches_to_it(tmp_path: Any) -> None:
    # The global provider can be set once per process: a fresh interpreter.
    script = """
from langchain_core.runnables import RunnableLambda
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_callbacks import OpenTelemetryCallbackHandler

from uuid import uuid4
from otel_callbacks.runs.registry import open_runs_of

handler = OpenTelemetryCallbackHandler()  # import time: the API still hands out a proxy
assert handler.emission_path == "sdk"
proxy = trace.get_tracer_provider()
early = uuid4()
handler.on_chain_start({"name": "early"}, {}, run_id=early)  # open while the provider is installed
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
(RunnableLambda(lambda x: x) | RunnableLambda(lambda x: x)).invoke(1, config={"callbacks": [handler]})
assert handler.emission_path == "fast"
assert list(open_runs_of(provider)) == [early.int] and not open_runs_of(proxy)  # the open run moved along
handler.on_chain_end({}, run_id=early)
assert not open_runs_of(provider) and handler.open_runs == 0
spans = exporter.get_finished_spans()
print(len(spans), len({s.context.trace_id for s in spans}), type(spans[0]).__name__)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["3", "1", "LeanSpan"]


def test_processors_added_later_are_called(tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter,
                                           handler: OpenTelemetryCallbackHandler) -> None:
    chain = RunnableLambda(lambda x: x) | RunnableLambda(lambda x: x)
    chain.invoke(1, config={"callbacks": [handler]})
    late_exporter, recorder = InMemorySpanExporter(), StartRecorder()
    tracer_provider.add_span_processor(SimpleSpanProcessor(late_exporter))
    tracer_provider.add_span_processor(recorder)
    chain.invoke(2, config={"callbacks": [handler]})
    assert len(span_exporter.get_finished_spans()) == 6
    assert len(late_exporter.get_finished_spans()) == 3
    assert len(recorder.seen) == 3
    assert all(s.attributes["app.on_start"] == "yes" for s in late_exporter.get_finished_spans())


@pytest.mark.parametrize("max_events", [None, 2])
def test_chunk_events_keep_their_order_among_other_events(max_events: int | None) -> None:
    exporter = InMemorySpanExporter()
    provider = simple(exporter, span_limits=SpanLimits(max_events=max_events))
    tracer = provider.get_tracer("t")
    lean = lean_tracer(tracer)
    assert lean is not None
    ours = lean.start_span("s", None, SpanKind.INTERNAL, None)
    sdks = tracer.start_span("s")
    assert isinstance(ours, LeanSpan)
    held = ours.chunk_log("tok")  # the handler holds the array through a stream (see on_llm_new_token)
    assert held is not None
    for i, step in enumerate(("chunk", "chunk", "other", "chunk", "read", "chunk")):
        if step == "chunk":
            log = held if i % 2 else ours.chunk_log("tok")  # held, or asked for again: the same array
            assert log is held
            log.append(time.time_ns())
            sdks.add_event("tok")
        elif step == "other":
            ours.add_event("other", {"k": 1})
            sdks.add_event("other", {"k": 1})
        else:  # a processor or user code reading the events mid-span
            assert [e.name for e in ours.events] == [e.name for e in sdks.events]  # type: ignore[attr-defined]
    ours.end()
    sdks.end()
    held.append(time.time_ns())  # too late: must not reach the exported span
    assert ours.chunk_log("tok") is None
    got, want = exporter.get_finished_spans()
    assert [(e.name, dict(e.attributes or {})) for e in got.events] == [
        (e.name, dict(e.attributes or {})) for e in want.events]
    assert got.dropped_events == want.dropped_events == (3 if max_events else 0)
    assert [e.timestamp for e in got.events] == sorted(e.timestamp for e in got.events)
    provider.shutdown()


def test_exporters_encode_chunk_events_as_sdk_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk events are tuples made when read (``lean_events.bare_events``); encoders see SDK events all the same."""
    import json

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    def stream(handler: OpenTelemetryCallbackHandler) -> None:
        for _ in CharStreamLLM(response="abcd").stream("x", config={"callbacks": [handler]}):
            pass

    encoded = []
    for lean in ("true", "false"):
        monkeypatch.setenv("OTEL_CALLBACKS_LEAN_SPANS", lean)
        exporter = InMemorySpanExporter()
        provider = simple(exporter)
        stream(OpenTelemetryCallbackHandler(provider))
        (span,) = exporter.get_finished_spans()
        assert (type(span) is LeanSpan) == (lean == "true")
        (proto,) = encode_spans([span]).resource_spans[0].scope_spans[0].spans
        as_json = json.loads(span.to_json())
        assert [e["name"] for e in as_json["events"]] == ["langchain.llm.new_token"] * 4
        assert [e.time_unix_nano for e in proto.events] == sorted(e.time_unix_nano for e in proto.events)
        assert all(span.start_time <= e.time_unix_nano <= span.end_time for e in proto.events)  # type: ignore[operator]
        encoded.append([(e.name, list(e.attributes), e.dropped_attributes_count) for e in proto.events])
        assert span.events[0] is span.events[0]  # made once, on first read
    assert encoded[0] == encoded[1] == [("langchain.llm.new_token", [], 0)] * 4
