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

__all__ = ["Renewable", "renew_after_fork"]

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


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_all)
