"""SIGTERM flushes: a bounded flush of pending spans, metrics and log records, then the process ends as SIGTERM would.

SIGTERM (what Kubernetes and systemd send) kills a Python process by default without running atexit, so every batched
span was lost (90 of 90 for a worker at 10 runs/s killed after 3 s). Servers that catch it do no better: uvicorn (so
``langgraph dev`` too) installs its own handler, shuts down gracefully, puts back the handler it replaced and
re-raises the signal, which then kills the process, again without atexit.

At set-up (from the main thread, where Python allows it) :func:`install` puts :func:`_on_sigterm` in place when the
current disposition is the default or a Python handler; an ignored signal or one handled outside Python is left alone.

* Replacing the default: on SIGTERM the handler flushes (bounded by ``OTEL_CALLBACKS_EXIT_TIMEOUT``), puts the
  default back and re-raises: the exit status is -15 (128 + 15 in a shell), as without us. A server started *after*
  set-up (``setup_tracing(); uvicorn.run(app)``) saves our handler and handles SIGTERM itself; after its graceful
  shutdown it puts ours back and re-raises, so the flush runs after the server drained its requests.
* Replacing a Python handler (set-up ran inside a server that was already started: ``uvicorn app:app`` imports the
  app after installing its handler; an application's own handler): on SIGTERM that handler is called, as before, so
  the server shuts down gracefully. It will put back *its* predecessor (the default) and re-raise, which would kill
  the process before any flush: so the main thread blocks SIGTERM first. The re-raised signal then waits, pending,
  until the flush is done: at interpreter exit (where the server's return leads), or, on Linux, as soon as a watcher
  thread sees it pending. Then the default is put back and the signal delivered: the exit status is still -15. If
  the handler does not re-raise (an application that stops its own loop), the process exits normally, after the exit
  flush.

Off the main thread (``langgraph dev`` imports graph modules in a worker thread, after uvicorn installed its
handler) Python refuses ``signal.signal``. There, and only there, :func:`install` wraps ``signal.raise_signal``
instead, the call with which uvicorn ends its graceful shutdown: a ``raise_signal(SIGTERM)`` that would kill the
process (the disposition is the default again) first flushes (bounded), then puts the original function back and
calls it, so the status is still -15. Every other call passes straight through. This is logged at info level. With
nothing but the default disposition in place, no server is there to re-raise, so a SIGTERM will lose what is pending:
that is a warning (once), naming what to do instead. A later set-up on the main thread installs the handler and
removes the wrapper.

Applications that own their signal handling install their handler after set-up (it replaces ours) and call
:func:`otel_callbacks.flush_and_shutdown` from it (or from their server's shutdown hook).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from otel_callbacks.setup.lifecycle import flush_and_shutdown

logger = logging.getLogger(__name__)

__all__ = ["install", "installed", "raise_signal_wrapped"]

_Handler = Callable[[int, FrameType | None], Any]
_POLL_S = 0.01  # how often the watcher looks for the re-raised signal; a file read each time

_previous: _Handler | int | None = None  # the disposition ours replaced
_installed = False
_deferred = False  # SIGTERM is blocked on the main thread, waiting for the flush
_watcher: threading.Thread | None = None
_at_exit_registered = False
_signal_raise_signal = signal.raise_signal  # as it was when this module loaded
_original_raise_signal: Callable[[int], None] | None = None  # what ours wrapped, kept once wrapped
_wrapping = False  # our wrapper is armed: it flushes once, then passes every call through
_warned_off_main = False


def installed() -> bool:
    """Whether our SIGTERM handler is the current one."""
    return signal.getsignal(signal.SIGTERM) is _on_sigterm


def raise_signal_wrapped() -> bool:
    """Whether ``signal.raise_signal`` is our flushing wrapper (set-up ran off the main thread)."""
    return _wrapping and signal.raise_signal is _flushing_raise_signal


def install() -> bool:
    """Install the SIGTERM flush if this thread may and the current disposition allows it; True if ours is in place.

    Called by every set-up; idempotent. Off the main thread Python refuses ``signal.signal``: there
    ``signal.raise_signal`` is wrapped instead (see the module's docstring) and False is returned."""
    global _previous, _installed, _at_exit_registered
    if os.name != "posix":
        return False  # no SIGTERM worth the name elsewhere
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return True
    if current is signal.SIG_IGN or current is None:
        return False  # ignored on purpose, or handled outside Python: not ours to change
    if threading.current_thread() is not threading.main_thread():
        _off_main_thread(current)
        return False
    _unwrap_raise_signal()  # our handler covers it from now on
    _previous = current
    signal.signal(signal.SIGTERM, _on_sigterm)
    _installed = True
    if not _at_exit_registered:
        # After lifecycle's exit hook, so it runs before it (atexit is last in, first out): it must deliver a
        # deferred SIGTERM only once the flush is done, and it does the flush itself.
        atexit.register(_deliver_deferred_at_exit)
        _at_exit_registered = True
    return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    previous = _previous
    if previous is None or previous == signal.SIG_DFL or not callable(previous):
        _flush_then_die(signum)
        return
    # Someone handled SIGTERM before us: let them, and keep the re-raise they may end with waiting for our flush.
    _defer(signum)
    previous(signum, frame)


def _flush_then_die(signum: int) -> None:
    try:
        flush_and_shutdown()
    except Exception:  # a failing flush must not keep the process alive
        logger.exception("Error while flushing at SIGTERM")
    signal.signal(signum, signal.SIG_DFL)
    _unblock(signum)
    _unwrap_raise_signal()  # a later set-up off the main thread may have wrapped it: flushed already
    signal.raise_signal(signum)  # the default action: the process ends here, with the status SIGTERM gives


def _off_main_thread(current: _Handler | int) -> None:
    """Set-up off the main thread: wrap ``signal.raise_signal``, and say what that does and does not cover."""
    global _original_raise_signal, _wrapping, _warned_off_main
    if not _wrapping:
        _wrapping = True
        if signal.raise_signal is not _flushing_raise_signal:
            _original_raise_signal = signal.raise_signal
            signal.raise_signal = _flushing_raise_signal
        if current != signal.SIG_DFL:
            logger.info("SIGTERM is handled by %r and set-up ran outside the main thread (%s), where no handler can "
                        "be installed: pending spans are flushed when that handler re-raises SIGTERM with "
                        "signal.raise_signal (uvicorn does, after its graceful shutdown; signal.raise_signal is "
                        "wrapped for that), or at interpreter exit. If it ends the process otherwise, call "
                        "otel_callbacks.flush_and_shutdown() from the application's shutdown.",
                        current, threading.current_thread().name)
    if current == signal.SIG_DFL and not _warned_off_main:
        _warned_off_main = True
        logger.warning("Tracing was set up outside the main thread (%s), where Python cannot install a SIGTERM "
                       "handler, and nothing handles SIGTERM yet: unless a server that re-raises it with "
                       "signal.raise_signal (uvicorn) takes it over, a SIGTERM will end the process without flushing "
                       "pending spans. Set tracing up in the main thread (for a LangGraph server: in the module of "
                       "its http.app), or call otel_callbacks.flush_and_shutdown() from the application's shutdown.",
                       threading.current_thread().name)


def _flushing_raise_signal(signum: int, /) -> None:
    """``signal.raise_signal``, wrapped by otel-callbacks because tracing was set up off the main thread: a SIGTERM
    raised with the default disposition (which would end the process without atexit) first flushes pending spans,
    metrics and log records, bounded, then the original function is put back and called. Other calls pass through."""
    original = _original_raise_signal or _signal_raise_signal
    if _wrapping and signum == signal.SIGTERM and signal.getsignal(signum) == signal.SIG_DFL:
        _unwrap_raise_signal()
        try:
            flush_and_shutdown()
        except Exception:  # a failing flush must not keep the process alive
            logger.exception("Error while flushing at SIGTERM")
    original(signum)


def _unwrap_raise_signal() -> None:
    global _wrapping
    _wrapping = False
    # Someone may have wrapped it after us: then theirs stays, and ours, still inside it, passes calls through.
    if _original_raise_signal is not None and signal.raise_signal is _flushing_raise_signal:
        signal.raise_signal = _original_raise_signal


def _defer(signum: int) -> None:
    global _deferred, _watcher
    if not _deferred:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signum})  # this (the main) thread only
        _deferred = True
    if _watcher is None and _pending_reader() is not None:
        # Created after the block, so it inherits it; it unblocks itself: the final kill must reach it.
        _watcher = threading.Thread(target=_watch, args=(signum,), name="otel-callbacks-sigterm", daemon=True)
        _watcher.start()


def _watch(signum: int) -> None:
    """Linux: as soon as the main thread has the signal pending (the server re-raised it), flush, then deliver it."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    read = _pending_reader()
    while read is not None and _deferred:
        if read(signum):
            break
        time.sleep(_POLL_S)
    else:
        return
    try:
        flush_and_shutdown()
    except Exception:
        logger.exception("Error while flushing at SIGTERM")
    # Off the main thread the disposition cannot be changed: deliver only if the server put the default back, which
    # is what its re-raise relied on. Process-directed, so it reaches a thread that does not block it (this one).
    if signal.getsignal(signum) == signal.SIG_DFL:
        os.kill(os.getpid(), signum)


def _deliver_deferred_at_exit() -> None:
    """At interpreter exit, after a deferred SIGTERM: flush, then deliver the signal if it is pending."""
    global _deferred
    if not _deferred or threading.current_thread() is not threading.main_thread():
        return
    flush_and_shutdown()
    _deferred = False
    if signal.SIGTERM in signal.sigpending():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _unblock(signal.SIGTERM)  # a pending SIGTERM is delivered now: the process ends with its status


def _unblock(signum: int) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})


def _pending_reader() -> Callable[[int], bool] | None:
    """A function telling whether the main thread has a signal pending, where the OS shows it (Linux ``/proc``)."""
    main = threading.main_thread().native_id
    path = f"/proc/self/task/{main}/status"
    if not os.path.exists(path):
        return None

    def pending(signum: int) -> bool:
        try:
            with open(path) as status:
                for line in status:
                    if line.startswith("SigPnd:"):
                        return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
        except (OSError, ValueError):
            return False
        return False

    return pending


def _after_fork_in_child() -> None:
    global _deferred, _watcher
    # The child is a process of its own: nothing is deferred there, and the parent's watcher does not exist. A fork
    # from the main thread while deferred passed its blocked mask on: the child's SIGTERM must work again.
    if _deferred:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    _deferred = False
    _watcher = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
