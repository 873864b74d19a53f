"""Shared fixtures: a real SDK TracerProvider on an in-memory exporter, never installed globally, and our handler on
it with ``raise_error=True`` so that a bug in a callback fails the test instead of being logged by LangChain."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_callbacks import OpenTelemetryCallbackHandler
from tests.support import SpanTree


@pytest.fixture(name="span_exporter")
def _span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(name="tracer_provider")
def _tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture(name="handler")
def _handler(tracer_provider: TracerProvider) -> OpenTelemetryCallbackHandler:
    handler = OpenTelemetryCallbackHandler(tracer_provider, capture_content=False)
    handler.raise_error = True
    return handler


@pytest.fixture(name="content_handler")
def _content_handler(tracer_provider: TracerProvider) -> OpenTelemetryCallbackHandler:
    handler = OpenTelemetryCallbackHandler(tracer_provider, capture_content=True)
    handler.raise_error = True
    return handler


@pytest.fixture(name="providers")
def _providers() -> Iterator[list[Any]]:
    """Tracer or meter providers a test made, shut down afterwards (stops their export threads)."""
    made: list[Any] = []
    yield made
    for provider in made:
        provider.shutdown()


@pytest.fixture(name="spans")
def _spans(span_exporter: InMemorySpanExporter) -> SpanTreeFactory:
    return SpanTreeFactory(span_exporter)


class SpanTreeFactory:
    """Call it to get the finished spans as a :class:`SpanTree`."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    def __call__(self) -> SpanTree:
        return SpanTree(self.exporter.get_finished_spans())

    def raw(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()
