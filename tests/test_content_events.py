"""Content as log-record events (issue 14, item 4): ``EVENT_ONLY`` and ``SPAN_AND_EVENT`` emit one
``gen_ai.client.inference.operation.details`` record per model run, tied to its span, through a LoggerProvider; the
SDK's in-memory log exporter and the real OTLP exporters to the loopback receiver."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.setup.logs import InMemoryLogRecordExporter
from otel_callbacks.setup.tracing import setup_tracing
from tests._otlp_logs_receiver import GrpcLogsReceiver, HttpLogsReceiver
from tests.support import ai, fake_chat

EVENT = "gen_ai.client.inference.operation.details"
# Tool definitions take the same path (from the request's tools), covered on spans by test_openai_loopback.
CONTENT_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions")
SECRET = "sk-live-0123456789abcdef"


def _invoke(handler: OpenTelemetryCallbackHandler, *, fail: bool = False) -> None:
    model = fake_chat(ai(f"the answer, key {SECRET}", input_tokens=12, output_tokens=5))
    messages = [SystemMessage("be brief"), HumanMessage(f"what is it? my key is {SECRET}")]
    if fail:
        messages.append(HumanMessage("x"))
        model = fake_chat()  # no responses left: the fake model raises
    try:
        model.invoke(messages, config={"callbacks": [handler]})
    except Exception:
        if not fail:
            raise


@pytest.fixture(name="pipeline")
def _pipeline() -> Any:
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    provider = setup_tracing([spans], set_global=False, logs=[logs])
    yield provider, spans, logs
    provider.shutdown()


def _handler(provider: Any, mode: str, **options: Any) -> OpenTelemetryCallbackHandler:
    return OpenTelemetryCallbackHandler(provider, capture_content=mode, logger_provider=provider.logger_provider,
                                        **options)


@pytest.mark.parametrize("mode", ["EVENT_ONLY", "SPAN_AND_EVENT"])
def test_one_event_per_model_run_tied_to_its_span(pipeline: Any, mode: str) -> None:
    provider, spans, logs = pipeline
    _invoke(_handler(provider, mode))
    provider.force_flush()
    [span] = spans.get_finished_spans()
    [record] = [r.log_record for r in logs.get_finished_logs()]
    assert record.event_name == EVENT
    assert (record.trace_id, record.span_id) == (span.context.trace_id, span.context.span_id)
    attrs = dict(record.attributes)
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 5
    # Structured, as the conventions give the event's content, not JSON strings.
    inputs = attrs["gen_ai.input.messages"]
    assert inputs[0]["role"] == "user" and inputs[0]["parts"][0]["content"].startswith("what is it?")
    assert attrs["gen_ai.system_instructions"][0]["content"] == "be brief"
    assert attrs["gen_ai.output.messages"][0]["parts"][0]["content"].startswith("the answer")
    on_span = [k for k in CONTENT_KEYS if k in (span.attributes or {})]
    assert on_span == ([] if mode == "EVENT_ONLY" else list(CONTENT_KEYS))


@pytest.mark.parametrize("mode", ["SPAN_ONLY", "NO_CONTENT"])
def test_no_event_without_an_event_mode(pipeline: Any, mode: str) -> None:
    provider, _, logs = pipeline
    _invoke(_handler(provider, mode))
    provider.force_flush()
    assert logs.get_finished_logs() == ()


def test_environment_mode_and_global_logger_provider(pipeline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import _logs

    provider, _, logs = pipeline
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "EVENT_ONLY")
    monkeypatch.setattr(_logs._internal, "_LOGGER_PROVIDER", provider.logger_provider)
    _invoke(OpenTelemetryCallbackHandler(provider))
    provider.force_flush()
    assert len(logs.get_finished_logs()) == 1


def test_redact_and_max_value_length_apply_the_same(pipeline: Any) -> None:
    provider, spans, logs = pipeline
    handler = _handler(provider, "SPAN_AND_EVENT", redact=lambda s: re.sub(r"sk-live-\w+", "[KEY]", s),
                       max_value_length=80)
    _invoke(handler)
    provider.force_flush()
    [span] = spans.get_finished_spans()
    [record] = [r.log_record for r in logs.get_finished_logs()]
    for key in CONTENT_KEYS:
        on_span = span.attributes[key]
        in_event = record.attributes[key]
        assert SECRET not in json.dumps(in_event) and SECRET not in on_span
        assert json.loads(on_span) == json.loads(json.dumps(in_event))  # the same text, bounded the same
        assert len(on_span) <= 80


def test_failed_model_run_emits_its_event_with_the_error(pipeline: Any) -> None:
    provider, _, logs = pipeline
    _invoke(_handler(provider, "EVENT_ONLY"), fail=True)
    provider.force_flush()
    [record] = [r.log_record for r in logs.get_finished_logs()]
    assert record.attributes["error.type"]
    assert "gen_ai.input.messages" in record.attributes and "gen_ai.output.messages" not in record.attributes


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_events_over_otlp(protocol: str) -> None:
    receiver_class = GrpcLogsReceiver if protocol == "grpc" else HttpLogsReceiver
    with receiver_class() as receiver:
        provider = setup_tracing("otlp", endpoint=receiver.endpoint, protocol=protocol, set_global=False, logs=True)
        try:
            _invoke(_handler(provider, "EVENT_ONLY"))
            assert provider.force_flush(10_000)
        finally:
            provider.shutdown()
        [record] = receiver.log_records()
        [span_name] = receiver.span_names()
    assert record.event_name == EVENT and span_name.startswith("chat")
    attrs = {kv.key: kv.value for kv in record.attributes}
    inputs: AnyValue = attrs["gen_ai.input.messages"]
    first = {kv.key: kv.value for kv in inputs.array_value.values[0].kvlist_value.values}
    assert first["role"].string_value == "user"
