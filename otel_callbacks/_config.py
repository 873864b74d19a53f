"""Reading the environment: the only place the handler looks at ``os.environ``; ``_settings`` reuses its helpers.

Precedence, as in the OpenTelemetry SDK: explicit argument > environment variable > default. A bad value logs one
warning naming the variable and the valid values, then the default is used.
"""

from __future__ import annotations

import logging
import os
from typing import Literal, cast

from otel_callbacks import _semconv as sc

_logger = logging.getLogger(__name__)

CaptureMode = Literal["NO_CONTENT", "SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT"]
"""Where content goes: nowhere, on spans, in ``gen_ai.client.inference.operation.details`` log records, or both."""

CAPTURE_MODES: tuple[CaptureMode, ...] = ("NO_CONTENT", "SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT")
EVENT_MODES: frozenset[CaptureMode] = frozenset({"EVENT_ONLY", "SPAN_AND_EVENT"})
_CAPTURE_VALUES: dict[str, CaptureMode] = {
    **dict.fromkeys(("", "false", "0", "no", "off", "no_content"), "NO_CONTENT"),
    # A boolean "on" predates the util-genai modes: it keeps meaning content on spans.
    **dict.fromkeys(("true", "1", "yes", "on", "span_only"), "SPAN_ONLY"),
    "event_only": "EVENT_ONLY",
    "span_and_event": "SPAN_AND_EVENT",
}


def capture_content(explicit: bool | None) -> bool:
    """Whether content is recorded: the argument, else ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.

    The util-genai values (``SPAN_ONLY``, ``SPAN_AND_EVENT``, ``EVENT_ONLY``, ``NO_CONTENT``) are accepted beside
    booleans; :func:`capture_mode` says where the content goes.
    """
    return capture_mode(explicit) != "NO_CONTENT"


def capture_mode(explicit: bool | str | None = None, *, warn: bool = True) -> CaptureMode:
    """Where content goes, as util-genai's ``ContentCapturingMode`` names it.

    ``explicit``: a mode name (any case; ``ValueError`` if unknown), ``False`` (``NO_CONTENT``), ``True`` (content
    on: the variable's mode when it names one where content goes, else ``SPAN_ONLY``), or ``None``: the variable
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (booleans mean ``NO_CONTENT`` / ``SPAN_ONLY``; a bad
    value warns once, unless ``warn`` is False, and means ``NO_CONTENT``).

    Example:
        >>> capture_mode("event_only"), capture_mode(False)
        ('EVENT_ONLY', 'NO_CONTENT')
    """
    if isinstance(explicit, str):
        name = explicit.strip().upper()
        if name not in CAPTURE_MODES:
            raise ValueError(f"capture mode must be one of {', '.join(CAPTURE_MODES)}, got {explicit!r}")
        return cast(CaptureMode, name)
    if explicit is False:
        return "NO_CONTENT"
    raw = (env_value(sc.ENV_CAPTURE_CONTENT) or "").lower()
    mode = _CAPTURE_VALUES.get(raw)
    if explicit:
        return mode if mode is not None and mode != "NO_CONTENT" else "SPAN_ONLY"
    if mode is None:
        if warn:
            warn_invalid(sc.ENV_CAPTURE_CONTENT, raw, "true, false, SPAN_ONLY, SPAN_AND_EVENT, EVENT_ONLY, NO_CONTENT",
                         "false (content capture stays off)")
        return "NO_CONTENT"
    return mode


def lean_spans() -> bool:
    """``OTEL_CALLBACKS_LEAN_SPANS`` (default true): false makes the handler use the SDK's own ``Span`` class."""
    raw = (env_value(sc.ENV_LEAN_SPANS) or "true").lower()
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw not in ("false", "0", "no", "off"):
        warn_invalid(sc.ENV_LEAN_SPANS, raw, "true, false", "true")
        return True
    return False


def positive_int(explicit: int | None, env_var: str, default: int, minimum: int = 1) -> int:
    """A positive integer setting: the argument (``ValueError`` if bad), else the variable, else ``default``."""
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, int) or explicit < minimum:
            raise ValueError(f"expected an integer >= {minimum}, got {explicit!r}")
        return explicit
    return env_int(env_var, default, minimum=minimum)


def env_value(name: str) -> str | None:
    """The variable's value, stripped; ``None`` when unset or blank."""
    value = os.environ.get(name)
    return value.strip() if value and value.strip() else None


def warn_invalid(name: str, value: str, valid: str, default: object) -> None:
    """The one warning a malformed variable gets: its name, its value, the valid values, the default used."""
    _logger.warning("Invalid value %s=%r; valid values: %s. Using the default: %s.", name, value, valid, default)


def env_int(name: str, default: int, *, minimum: int) -> int:
    """An integer variable ``>= minimum``; ``default`` (with a warning if malformed) otherwise."""
    raw = env_value(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        warn_invalid(name, raw, f"an integer >= {minimum}", default)
        return default
    return value


def latest_experimental() -> bool:
    """``OTEL_SEMCONV_STABILITY_OPT_IN`` contains ``gen_ai_latest_experimental``."""
    raw = os.environ.get(sc.ENV_SEMCONV_OPT_IN, "")
    return "gen_ai_latest_experimental" in {part.strip() for part in raw.split(",")}
