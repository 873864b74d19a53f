"""OpenTelemetry tracing for LangChain and LangGraph.

Example:
    >>> from otel_callbacks import OpenTelemetryCallbackHandler
    >>> handler = OpenTelemetryCallbackHandler()
    >>> # chain.invoke(inputs, config={"callbacks": [handler]})
"""

from otel_callbacks._content import ContentPolicy
from otel_callbacks._handler import OpenTelemetryCallbackHandler
from otel_callbacks._instrument import instrument, uninstrument
from otel_callbacks._metrics_setup import setup_metrics
from otel_callbacks._setup import setup_tracing
from otel_callbacks._version import __version__

__all__ = [
    "ContentPolicy",
    "OpenTelemetryCallbackHandler",
    "__version__",
    "instrument",
    "setup_metrics",
    "setup_tracing",
    "uninstrument",
]
