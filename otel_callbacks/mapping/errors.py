"""How an exception becomes ``error.type``, a status description and the ``exception`` event, and which exceptions
are control flow.

Exception text is where secrets end up without anyone putting them there: a driver's error quotes its DSN, a
provider's HTTP 400 echoes the prompt, a payment tool's error names the card. So every string built here loses URL
credentials, passes through the user's ``redact`` hook once (cut to length first, so the hook's cost is bounded), and
is encodable by the OTLP encoder. Nothing here raises, whatever the exception's ``str()`` does.
"""

from __future__ import annotations

import traceback

from otel_callbacks import _semconv as sc
from otel_callbacks.mapping.content import (
    DEFAULT_MAX_VALUE_LENGTH,
    TRUNCATION_MARK,
    RedactionError,
    Redactor,
    apply_redact,
)
from otel_callbacks.mapping.secrets import REDACTED
from otel_callbacks.mapping.text import safe_text, strip_url_credentials


def error_type(error: BaseException) -> str:
    """``error.type``: the exception's class name, qualified when it is not a builtin."""
    try:
        cls = type(error)
        module, name = cls.__module__, cls.__qualname__
        text = f"{module}.{name}" if isinstance(module, str) and module and module != "builtins" else name
    except Exception:
        text = "<unknown>"
    return safe_text(text)


def error_description(error: BaseException, limit: int = 256, *, redact: Redactor | None = None) -> str:
    """A short status description: ``Class: message`` on one line, never a traceback.

    The message loses URL credentials and passes through ``redact`` (``[REDACTED]`` if the hook fails).
    """
    try:
        name = safe_text(type(error).__name__)
        message = strip_url_credentials(_message(error))
        # Whitespace is collapsed on a bounded prefix: a 50 MB message must not cost a 50 MB split.
        message = " ".join(message[: limit * 4].split())[:limit]
        if message and redact is not None:
            message = " ".join(_redacted(message, redact).split())
        text = f"{name}: {message}" if message else name
        text = text if len(text) <= limit else text[: limit - 1] + "…"
        return safe_text(text)
    except Exception:
        return "<unprintable exception>"


def exception_attributes(
    error: BaseException, *, redact: Redactor | None = None, max_length: int = DEFAULT_MAX_VALUE_LENGTH,
    escaped: bool = True,
) -> dict[str, str]:
    """The ``exception`` event's attributes, as the SDK's ``record_exception`` writes them, made safe to record.

    ``exception.message`` and ``exception.stacktrace`` (the message inside it too, and those of chained exceptions)
    lose URL credentials, are cut to ``max_length`` (the stacktrace keeps its end: the innermost frames and the
    exception line) and pass through ``redact`` once each; if the hook fails they are ``[REDACTED]``.
    """
    try:
        return {
            sc.EXCEPTION_TYPE: error_type(error),
            sc.EXCEPTION_MESSAGE: _finish(strip_url_credentials(_message(error)), max_length, redact),
            sc.EXCEPTION_STACKTRACE: _finish(_stacktrace(error, max_length), max_length, redact),
            sc.EXCEPTION_ESCAPED: str(escaped),
        }
    except Exception:  # nothing above should raise; whatever an exception does, a recordable event comes back
        return {sc.EXCEPTION_TYPE: error_type(error), sc.EXCEPTION_MESSAGE: "<unprintable exception>",
                sc.EXCEPTION_STACKTRACE: "", sc.EXCEPTION_ESCAPED: str(escaped)}


def _message(error: BaseException) -> str:
    try:
        message = str(error)
    except Exception:  # str() runs the exception's own code
        return ""
    return message if isinstance(message, str) else ""


def _redacted(text: str, redact: Redactor) -> str:
    try:
        return apply_redact(redact, text)
    except RedactionError:
        return REDACTED


def _finish(text: str, max_length: int, redact: Redactor | None) -> str:
    """Cut, redacted once, cut again if the hook lengthened it, encodable."""
    if len(text) > max_length:
        text = text[:max_length]
    if redact is not None and text:
        text = _redacted(text, redact)
        if len(text) > max_length:
            text = text[:max_length]
    return safe_text(text)


def _stacktrace(error: BaseException, max_length: int) -> str:
    """The formatted traceback, URL credentials out, no line longer than half the limit, cut to the limit from the
    start: the end (innermost frames, the exception line) is what a reader needs."""
    try:
        lines = traceback.format_exception(error)
    except Exception:  # a broken __traceback__ or __notes__; the type and message are recorded anyway
        return ""
    cap = max(max_length // 2, 1)
    parts = []
    for line in lines:
        line = strip_url_credentials(line)  # before the cut, which could part a password from its "@"
        parts.append(line if len(line) <= cap else line[:cap] + TRUNCATION_MARK + "\n")
    text = "".join(parts)
    if len(text) > max_length:
        head = TRUNCATION_MARK + "\n"
        keep = max(max_length - len(head), 0)
        text = head + text[len(text) - keep:]
    return text


def is_control_flow(error: BaseException) -> bool:
    """LangGraph interrupts and handoffs (``GraphBubbleUp`` and subclasses) pause or redirect a graph; not errors."""
    return any(cls.__name__ == "GraphBubbleUp" for cls in type(error).__mro__)
