"""The guard around every callback: nothing the handler does may raise into the user's chain."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


def guarded(func: _F) -> _F:
    """Catch any exception of a callback; re-raise only when the handler's ``raise_error`` is set (tests do)."""
    name = func.__name__

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(self, *args, **kwargs)
        except Exception as exc:
            if self.raise_error:
                raise
            self._report_failure(name, exc)
            return None

    return wrapper  # type: ignore[return-value]
