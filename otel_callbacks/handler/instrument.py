"""Tracing every LangChain run in the process without passing callbacks, via langchain-core's configure hooks."""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.tracers.context import register_configure_hook
from opentelemetry.trace import TracerProvider

from otel_callbacks.handler.handler import OpenTelemetryCallbackHandler


class _GlobalHandlerSlot:
    """What langchain-core's configure hook reads with ``.get()``.

    The hook API expects a ``ContextVar``; a real one set in the main thread is invisible in threads that start with
    a fresh context (worker pools, servers), so instrumentation would silently stop there. This slot is process-wide.
    """

    def __init__(self) -> None:
        self.handler: OpenTelemetryCallbackHandler | None = None

    def get(self) -> OpenTelemetryCallbackHandler | None:
        return self.handler


_SLOT = _GlobalHandlerSlot()
_LOCK = threading.Lock()
_registered = False


def instrument(tracer_provider: TracerProvider | None = None, **handler_options: Any) -> OpenTelemetryCallbackHandler:
    """Trace every LangChain run in this process; returns the handler used.

    Runs that already carry an :class:`OpenTelemetryCallbackHandler` (passed explicitly) are not traced twice.
    Calling it again replaces the handler (e.g. with other options).

    Example:
        >>> import otel_callbacks
        >>> handler = otel_callbacks.instrument()
        >>> # ... every chain.invoke(...) is traced ...
        >>> otel_callbacks.uninstrument()
    """
    global _registered
    handler = OpenTelemetryCallbackHandler(tracer_provider, **handler_options)
    with _LOCK:
        if not _registered:
            # handle_class makes langchain-core skip the hook when a handler of our class is already present.
            register_configure_hook(_SLOT, inheritable=True, handle_class=OpenTelemetryCallbackHandler)  # type: ignore[arg-type]
            _registered = True
        _SLOT.handler = handler
    return handler


def uninstrument() -> None:
    """Stop tracing runs that were not given a handler explicitly. Open runs still end normally."""
    with _LOCK:
        _SLOT.handler = None


def instrumented_handler() -> OpenTelemetryCallbackHandler | None:
    """The handler :func:`instrument` installed, if any."""
    return _SLOT.handler
