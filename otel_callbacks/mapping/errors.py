"""How an exception becomes ``error.type`` and a status description, and which exceptions are control flow."""

from __future__ import annotations


def error_type(error: BaseException) -> str:
    """``error.type``: the exception's class name, qualified when it is not a builtin."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def error_description(error: BaseException, limit: int = 256) -> str:
    """A short status description: ``Class: message`` on one line, never a traceback."""
    try:
        message = str(error)
    except Exception:
        message = ""
    message = " ".join(message.split())
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_control_flow(error: BaseException) -> bool:
    """LangGraph interrupts and handoffs (``GraphBubbleUp`` and subclasses) pause or redirect a graph; not errors."""
    return any(cls.__name__ == "GraphBubbleUp" for cls in type(error).__mro__)
