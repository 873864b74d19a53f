"""The callbacks: each ``on_*`` maps the run (``mapping``), books it (``runs``), then emits it (``emit``).

Nothing else lives here: no attribute building, no context handling, no span class.
"""

from otel_callbacks.handler.handler import OpenTelemetryCallbackHandler

__all__ = ["OpenTelemetryCallbackHandler"]
