"""What tracing and metrics set-up share about a provider's life: its resource, a bounded shutdown, the exit flush.

An unreachable OTLP endpoint can hold ``shutdown()`` for the exporter's whole retry budget, so every shutdown we run
happens on a daemon thread that we wait for at most a bound, after which the interpreter may exit regardless.

Example:
    >>> # provider = TracerProvider(resource=make_resource("my-app", None))
    >>> # atexit.register(shutdown_at_exit, weakref.ref(provider), 5000, "spans")
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Protocol

from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import AttributeValue

logger = logging.getLogger(__name__)

__all__ = ["ShutsDown", "make_resource", "shutdown_at_exit", "shutdown_bounded"]


class ShutsDown(Protocol):
    """A tracer or meter provider, as far as its shutdown goes."""

    def shutdown(self) -> object: ...


def make_resource(
    service_name: str | None, resource_attributes: Mapping[str, AttributeValue] | None,
    default_service_name: str | None = None,
) -> Resource:
    """Arguments over ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``; ``default_service_name`` over
    the SDK's ``unknown_service``. Shared by traces and metrics so both carry the same resource."""
    attributes: dict[str, AttributeValue] = dict(resource_attributes or {})
    if service_name:
        attributes["service.name"] = service_name
    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME; the settings layer has already warned
    # about malformed pairs there, so the SDK's duplicate warning is filtered out for this one call.
    sdk_logger = logging.getLogger("opentelemetry.sdk.resources")
    duplicate = _DropMessages("Invalid key value resource attribute pair")
    sdk_logger.addFilter(duplicate)
    try:
        resource = Resource.create(attributes)
    finally:
        sdk_logger.removeFilter(duplicate)
    if default_service_name and str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": default_service_name}))
    return resource


class _DropMessages(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._prefix)


def shutdown_bounded(provider: ShutsDown, timeout_millis: int, *, what: str = "spans") -> bool:
    """Shut a tracer or meter ``provider`` down, flushing pending ``what``, but wait at most ``timeout_millis``.

    Returns True if shutdown finished in time. An unreachable OTLP endpoint can otherwise hold a process for the
    exporter's full retry budget; the shutdown runs in a daemon thread so the interpreter may exit regardless.

    Example:
        >>> # shutdown_bounded(provider, 2000)
    """
    done = threading.Event()

    def run() -> None:
        try:
            provider.shutdown()
        except Exception:  # telemetry failures are logged, never raised into the host
            logger.exception("Error while shutting down the %s provider", type(provider).__name__)
        finally:
            done.set()

    try:
        threading.Thread(target=run, name="otel-callbacks-shutdown", daemon=True).start()
    except RuntimeError:  # threads can no longer be started very late in interpreter shutdown
        run()
    if done.wait(max(timeout_millis, 0) / 1000):
        return True
    logger.warning(
        "Gave up flushing %s after %d ms at shutdown; some %s may be lost "
        "(raise OTEL_CALLBACKS_EXIT_TIMEOUT to wait longer).",
        what, timeout_millis, what,
    )
    return False


def shutdown_at_exit(ref: weakref.ref[ShutsDown], timeout_millis: int, what: str = "spans") -> None:
    """The atexit hook: a weak reference, so that registering it does not keep a discarded provider alive."""
    provider = ref()
    if provider is not None:
        shutdown_bounded(provider, timeout_millis, what=what)
