"""Shared fixtures: a real SDK TracerProvider on an in-memory exporter, never installed globally, and our handler on
it with ``raise_error=True`` so that a bug in a callback fails the test instead of being logged by LangChain."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.emit import compat
from tests.support import SpanTree

# Test modules whose every test runs on both emission paths: lean spans ("fast") and the SDK's own ("sdk").
BOTH_PATHS = frozenset({
    "test_handler", "test_parenting", "test_content", "test_metrics", "test_instrument", "test_openai_loopback",
    "test_sampling", "test_contract", "test_examples", "test_cancellation",
})
# The fast path exists only on SDK versions it is proven on; test_compat fails when CI's SDK is outside them.
PATHS = ("fast", "sdk") if compat.fast_path_proven() else ("sdk",)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.module.__name__.rsplit(".", 1)[-1] in BOTH_PATHS:
        metafunc.parametrize("emission", PATHS, indirect=True)


@pytest.fixture(autouse=True, name="emission")
def _emission(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """The emission path of the handlers a test makes (through the environment, so subprocesses follow)."""
    path = getattr(request, "param", None)
    if path is not None:
        monkeypatch.setenv("OTEL_CALLBACKS_LEAN_SPANS", "true" if path == "fast" else "false")
    yield path


@pytest.fixture(autouse=True)
def _no_span_left_current(request: pytest.FixtureRequest) -> Iterator[None]:
    """A span left current in the test's own context would parent every later test's spans (a leak).

    test_robustness breaks the handler's internals on purpose (context restoring included) and checks its own.
    """
    yield
    if not request.module.__name__.endswith("test_robustness"):
        assert trace.get_current_span() is trace.INVALID_SPAN, "a span was left current in the caller's context"


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
def _handler(tracer_provider: TracerProvider, emission: str | None) -> OpenTelemetryCallbackHandler:
    handler = OpenTelemetryCallbackHandler(tracer_provider, capture_content=False)
    handler.raise_error = True
    assert emission is None or handler.emission_path == emission, "the parametrised emission path is not taken"
    return handler


@pytest.fixture(name="content_handler")
def _content_handler(tracer_provider: TracerProvider, emission: str | None) -> OpenTelemetryCallbackHandler:
    handler = OpenTelemetryCallbackHandler(tracer_provider, capture_content=True)
    handler.raise_error = True
    assert emission is None or handler.emission_path == emission, "the parametrised emission path is not taken"
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
