"""Zero-code tracing: ``opentelemetry-instrument python app.py`` finds this through the entry point."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from otel_callbacks.handler.instrument import instrument, uninstrument


class LangChainInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """An OpenTelemetry instrumentor that traces every LangChain run with :class:`OpenTelemetryCallbackHandler`.

    Example:
        >>> from otel_callbacks.handler.instrumentor import LangChainInstrumentor
        >>> LangChainInstrumentor().instrument(capture_content=False)
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("langchain-core >= 1.8",)

    def _instrument(self, **kwargs: Any) -> None:
        options = {k: v for k, v in kwargs.items() if k in _HANDLER_OPTIONS}
        instrument(kwargs.get("tracer_provider"), **options)

    def _uninstrument(self, **kwargs: Any) -> None:
        uninstrument()


_HANDLER_OPTIONS = frozenset(
    {"capture_content", "redact", "max_value_length", "max_open_runs", "max_metadata_attributes", "stream_events"}
)
