"""OpenTelemetry tracing for LangChain and LangGraph.

``import otel_callbacks`` loads only what the handler needs; ``setup_tracing``, ``setup_metrics`` (exporters, OTLP,
the metrics SDK) and ``instrument`` load on first use.

Example:
    >>> from otel_callbacks import OpenTelemetryCallbackHandler
    >>> handler = OpenTelemetryCallbackHandler()
    >>> # chain.invoke(inputs, config={"callbacks": [handler]})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_callbacks._version import __version__
from otel_callbacks.handler import OpenTelemetryCallbackHandler
from otel_callbacks.mapping.content import ContentPolicy
from otel_callbacks.mapping.secrets import DEFAULT_SECRET_KEYS, MetadataPolicy

if TYPE_CHECKING:
    from otel_callbacks.handler.instrument import instrument, uninstrument
    from otel_callbacks.setup.lifecycle import flush_and_shutdown
    from otel_callbacks.setup.metrics import setup_metrics
    from otel_callbacks.setup.tracing import BoundedTracerProvider, setup_tracing

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "BoundedTracerProvider",
    "ContentPolicy",
    "MetadataPolicy",
    "OpenTelemetryCallbackHandler",
    "__version__",
    "flush_and_shutdown",
    "instrument",
    "setup_metrics",
    "setup_tracing",
    "uninstrument",
]

# Loaded on first use: setup pulls in exporters and the metrics SDK; instrument pulls in langchain-core's tracers
# (and through them langsmith and the OpenTelemetry SDK, which raises at import on a malformed span-limit variable).
_LAZY = {
    "setup_tracing": "otel_callbacks.setup.tracing",
    "setup_metrics": "otel_callbacks.setup.metrics",
    "instrument": "otel_callbacks.handler.instrument",
    "uninstrument": "otel_callbacks.handler.instrument",
    "flush_and_shutdown": "otel_callbacks.setup.lifecycle",
    "BoundedTracerProvider": "otel_callbacks.setup.tracing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
