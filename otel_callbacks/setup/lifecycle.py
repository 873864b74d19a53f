"""What the set-up of each signal shares about a provider's life: its resource, a bounded shutdown, the exit flush.

An unreachable OTLP endpoint can hold ``shutdown()`` for the exporter's whole retry budget, so every shutdown we run
happens on a daemon thread that we wait for at most a bound, after which the interpreter may exit regardless. At
interpreter exit that thread cannot be started any more: Python 3.12 refuses new threads once finalization has begun,
which includes atexit hooks. So each provider gets its exit flusher when it is built; the thread sleeps until the one
exit hook wakes every flusher at once and waits for each up to its own bound.

Example:
    >>> # provider = TracerProvider(resource=make_resource("my-app", None))
    >>> # flush_at_exit(provider, 5000, "spans")
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol, TypeVar

from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import AttributeValue

logger = logging.getLogger(__name__)

__all__ = ["ShutsDown", "flush_and_shutdown", "flush_at_exit", "log_gave_up", "make_resource", "run_bounded",
           "shutdown_bounded", "without_messages"]


class ShutsDown(Protocol):
    """A tracer, meter or logger provider, as far as its shutdown goes."""

    def shutdown(self) -> object: ...


def make_resource(
    service_name: str | None, resource_attributes: Mapping[str, AttributeValue] | None,
    default_service_name: str | None = None,
) -> Resource:
    """Arguments over ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``; ``default_service_name`` over
    the SDK's ``unknown_service``. Shared by every signal so all carry the same resource."""
    attributes: dict[str, AttributeValue] = dict(resource_attributes or {})
    if service_name:
        attributes["service.name"] = service_name
    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME; the settings layer has already warned
    # about malformed pairs there, so the SDK's duplicate warning is filtered out for this one call.
    with without_messages("opentelemetry.sdk.resources", "Invalid key value resource attribute pair"):
        resource = Resource.create(attributes)
    if default_service_name and str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": default_service_name}))
    return resource


@contextlib.contextmanager
def without_messages(logger_name: str, prefix: str) -> Iterator[None]:
    """Drop the records of ``logger_name`` that start with ``prefix`` while the block runs (an SDK warning that would
    repeat ours, or be about us rather than the application)."""
    target = logging.getLogger(logger_name)
    dropping = _DropMessages(prefix)
    target.addFilter(dropping)
    try:
        yield
    finally:
        target.removeFilter(dropping)


class _DropMessages(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._prefix)


def shutdown_bounded(provider: ShutsDown, timeout_millis: int, *, what: str = "spans") -> bool:
    """Shut a tracer or meter ``provider`` down, flushing pending ``what``, but wait at most ``timeout_millis``.

    Returns True if shutdown finished in time. For use while the interpreter runs (the CLI's explicit shutdown);
    at exit the flusher that :func:`flush_at_exit` started beforehand does this job.

    Example:
        >>> # shutdown_bounded(provider, 2000)
    """
    done = threading.Event()
    try:
        threading.Thread(target=_shut_down, args=(provider, done), name="otel-callbacks-shutdown", daemon=True).start()
    except RuntimeError:  # called from the user's own atexit hook on 3.12+: no thread, so no bound either
        _shut_down(provider, done)
    return _waited(done, time.monotonic() + max(timeout_millis, 0) / 1000, timeout_millis, what)


def run_bounded(target: Callable[[], object], timeout_millis: int, *, name: str = "otel-callbacks-shutdown") -> bool:
    """Run ``target`` on a daemon thread and wait for it at most ``timeout_millis``; True if it finished in time.

    An exception from ``target`` is logged, never raised. Where no thread can start (an atexit hook on 3.12+),
    ``target`` runs here, unbounded: lifecycle's exit flusher, started beforehand, bounds that case.
    """
    done = threading.Event()

    def run() -> None:
        try:
            target()
        except Exception:  # telemetry failures are logged, never raised into the host
            logger.exception("Error in %s", name)
        finally:
            done.set()

    try:
        threading.Thread(target=run, name=name, daemon=True).start()
    except RuntimeError:
        run()
    return done.wait(max(timeout_millis, 0) / 1000)


def flush_at_exit(provider: ShutsDown, timeout_millis: int, what: str) -> None:
    """At interpreter exit, shut ``provider`` down (flushing pending ``what``) for at most ``timeout_millis``.

    Only a weak reference to the provider is kept: a provider the program dropped is not kept alive for this, and its
    flusher thread ends with it.
    """
    global _hook_registered
    flusher = _ExitFlusher(provider, timeout_millis, what)
    with _registry_lock:
        if not _hook_registered:
            # Registered with the first provider, not at import: atexit runs hooks last-in first-out, so hooks the
            # program registers after its set-up (which may still end spans) run before this flush.
            atexit.register(_flush_all_at_exit)
            _hook_registered = True
        _flushers.add(flusher)


def _shut_down(provider: ShutsDown, done: threading.Event) -> None:
    try:
        provider.shutdown()
    except Exception:  # telemetry failures are logged, never raised into the host
        logger.exception("Error while shutting down the %s provider", type(provider).__name__)
    finally:
        done.set()


def _waited(done: threading.Event, deadline: float, timeout_millis: int, what: str) -> bool:
    if done.wait(max(deadline - time.monotonic(), 0)):
        return True
    log_gave_up(what, timeout_millis)
    return False


def log_gave_up(what: str, timeout_millis: int) -> None:
    """The one warning a shutdown that ran out of time gives (whichever of the bounds on it passed first)."""
    logger.warning(
        "Gave up flushing %s after %d ms at shutdown; some %s may be lost "
        "(raise OTEL_CALLBACKS_EXIT_TIMEOUT to wait longer).",
        what, timeout_millis, what,
    )


class _ExitFlusher:
    """One provider's exit flush: a daemon thread, started now, that sleeps until ``wake`` and then shuts down."""

    def __init__(self, provider: ShutsDown, timeout_millis: int, what: str) -> None:
        self.timeout_millis = timeout_millis
        self.what = what
        self._ref = weakref.ref(provider, self._provider_gone)
        self._start()

    def _start(self) -> None:
        self._wake = threading.Event()
        self.done = threading.Event()
        try:
            threading.Thread(target=self._run, name="otel-callbacks-exit-flush", daemon=True).start()
            self._threaded = True
        except RuntimeError:  # set up from inside an atexit hook (3.12+); the exit flush then runs unbounded
            self._threaded = False
            _unthreaded.append(self)  # no thread holds it, and the registry holds it only weakly

    def _provider_gone(self, _ref: object) -> None:
        self._wake.set()  # nothing left to flush: let the thread end

    def _run(self) -> None:
        self._wake.wait()
        provider = self._ref()
        if provider is None:
            self.done.set()
            return
        _shut_down(provider, self.done)

    def wake(self) -> bool:
        """Start the flush; False when the provider is gone and there is nothing to wait for."""
        provider = self._ref()
        if provider is None:
            return False
        if self._threaded:
            self._wake.set()
        else:
            _shut_down(provider, self.done)
        return True

    def gave_up(self) -> None:
        # A provider that counts its losses (setup_tracing's) counts what is still pending and reports it; the
        # "Gave up" warning has been given by the waiter.
        provider = self._ref()
        hook = getattr(provider, "gave_up", None)
        if callable(hook):
            hook()

    def after_fork(self) -> None:
        # The child inherits the flusher but not its thread (nor safely its events): start both anew.
        if self._ref() is not None:
            self._start()


_registry_lock = threading.Lock()
_flushers: weakref.WeakSet[_ExitFlusher] = weakref.WeakSet()  # the running thread keeps its flusher alive
_unthreaded: list[_ExitFlusher] = []
_hook_registered = False


def flush_and_shutdown(timeout_millis: int | None = None) -> bool:
    """Flush the pending spans, metrics and log records of every provider ``setup_tracing`` / ``setup_metrics``
    built, and shut them down, waiting at most ``timeout_millis`` (default: each provider's exit timeout,
    ``OTEL_CALLBACKS_EXIT_TIMEOUT`` or 5000 ms). True if all finished in time.

    What the exit hook and the SIGTERM handler run. Call it yourself when your application owns its signal handling
    (your SIGTERM handler, or the end of your server's graceful shutdown) or ends the process with ``os._exit``.
    Tracing, metrics and log records stop: it is for the end of the process. Safe to call more than once; callable
    from any thread.

    Example:
        >>> # signal.signal(signal.SIGTERM, lambda *_: (flush_and_shutdown(), sys.exit(0)))
    """
    # From a SIGTERM handler this runs on the main thread wherever it was interrupted, possibly inside
    # flush_at_exit holding the registry lock: never wait for it unboundedly (the copy is safe under the GIL).
    locked = _registry_lock.acquire(timeout=0.2)
    try:
        flushers = list(_flushers)
    finally:
        if locked:
            _registry_lock.release()
    start = time.monotonic()
    woken = [f for f in flushers if f.wake()]  # all at once, so that every signal flushes side by side
    finished = True
    for flusher in woken:
        bound = flusher.timeout_millis if timeout_millis is None else timeout_millis
        if not _waited(flusher.done, start + max(bound, 0) / 1000, bound, flusher.what):
            flusher.gave_up()
            finished = False
    return finished


def _flush_all_at_exit() -> None:
    flush_and_shutdown()


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()  # another thread may have held it at the fork
    for flusher in list(_flushers):
        flusher.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_E = TypeVar("_E")


def build_exporter(name: str, what: str, builders: Mapping[str, Callable[[], _E]], log: logging.Logger) -> _E | None:
    """The ``what`` (e.g. "span exporter") that ``builders[name]`` makes; ``None`` and one warning if it raises, and
    set-up goes on without it. Malformed variables are replaced before (``sdk_env``); this is for what no check
    foresaw. An unknown ``name`` is our bug (names are validated with the settings), so it raises."""
    build = builders.get(name)
    if build is None:
        raise AssertionError(f"unreachable {what} name {name!r}")
    try:
        return build()
    except Exception as exc:
        hint = " (check the OTEL_EXPORTER_OTLP_* variables it reads)" if name == "otlp" else ""
        log.warning("Could not create the %s %s, continuing without it: %s%s", name, what, exc, hint)
        return None
