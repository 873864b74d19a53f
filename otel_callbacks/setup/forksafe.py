"""Locks the set-up layer owns are made anew in a forked child.

A child process gets a copy of every lock as it was at the fork, but only the thread that forked. A lock another
thread held then (the batch processor's worker in the middle of a write, say) stays held in the child forever, and
whatever needs it hangs: the file exporter's lock made 1 to 20 of 40 forked children lose every span (issue 13).
Each object that owns a lock registers here; in the child, :func:`os.register_at_fork` calls its
``_renew_after_fork`` before anything else runs. Objects are held weakly: registering keeps nothing alive.

Example:
    >>> # class Exporter:
    >>> #     def __init__(self):
    >>> #         self._renew_after_fork()
    >>> #         renew_after_fork(self)
    >>> #     def _renew_after_fork(self):
    >>> #         self._lock = threading.Lock()
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Protocol

__all__ = ["Quiescent", "Renewable", "quiesce_at_fork", "renew_after_fork"]

logger = logging.getLogger(__name__)


class Renewable(Protocol):
    def _renew_after_fork(self) -> None:
        """Replace every lock (and any state that only made sense with the parent's threads)."""


_tracked: weakref.WeakSet[Renewable] = weakref.WeakSet()


def renew_after_fork(owner: Renewable) -> None:
    """Call ``owner._renew_after_fork()`` in every child forked from now on, for as long as ``owner`` lives."""
    _tracked.add(owner)


def _renew_all() -> None:
    for owner in list(_tracked):
        try:
            owner._renew_after_fork()
        except Exception:  # a fork hook that raises is reported by Python as unraisable; ours are logged instead
            logger.exception("Could not renew the locks of %s after fork", type(owner).__name__)


class Quiescent(Protocol):
    def _before_fork(self) -> None:
        """Wait (bounded) until no thread is inside this object's work, and keep it so until the fork is done."""

    def _after_fork_in_parent(self) -> None:
        """Let the parent's threads go on."""


# Exporters whose client libraries break in a child forked while another thread is inside them: gRPC skips its own
# fork handlers then ("Other threads are currently calling into gRPC"), and the child's exports time out (about
# half of 40 children lost their spans, issue 13). Holding their export lock across the fork keeps threads out.
_quiesced: weakref.WeakSet[Quiescent] = weakref.WeakSet()
_held: list[Quiescent] = []


def quiesce_at_fork(owner: Quiescent) -> None:
    """Call ``owner._before_fork()`` before every fork from now on and ``_after_fork_in_parent()`` after it."""
    _quiesced.add(owner)


def _before_fork() -> None:
    for owner in list(_quiesced):
        try:
            owner._before_fork()
        except Exception:
            logger.exception("Could not prepare %s for a fork", type(owner).__name__)
        else:
            _held.append(owner)


def _after_fork_in_parent() -> None:
    while _held:
        owner = _held.pop()
        try:
            owner._after_fork_in_parent()
        except Exception:
            logger.exception("Could not resume %s after a fork", type(owner).__name__)


def _after_fork_in_child() -> None:
    _held.clear()  # the child's owners renew their locks in _renew_all
    _renew_all()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
