"""The guard around every callback: nothing the handler does may raise into the user's chain."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


def failed(handler: Any, callback: str, exc: Exception) -> None:
    """What the guard does with a callback's exception: re-raise it when the handler's ``raise_error`` is set
    (tests do), else report it (once per kind). Called directly by the callbacks that guard inline."""
    if handler.raise_error:
        raise exc
    handler._report_failure(callback, exc)


def guarded(func: _F) -> _F:
    """Catch any exception of a callback and hand it to :func:`failed`."""
    name = func.__name__

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(self, *args, **kwargs)
        except Exception as exc:
            failed(self, name, exc)
            return None

    return wrapper  # type: ignore[return-value]
