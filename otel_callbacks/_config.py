"""Reading the environment: the only place the handler looks at ``os.environ``; ``_settings`` reuses its helpers.

Precedence, as in the OpenTelemetry SDK: explicit argument > environment variable > default. A bad value logs one
warning naming the variable and the valid values, then the default is used.
"""

from __future__ import annotations

import logging
import os

from otel_callbacks import _semconv as sc

_logger = logging.getLogger(__name__)

_CAPTURE_ON = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event", "event_only"})
_CAPTURE_OFF = frozenset({"", "false", "0", "no", "off", "no_content"})


def capture_content(explicit: bool | None) -> bool:
    """Whether content is recorded: the argument, else ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.

    The util-genai values (``SPAN_ONLY``, ``SPAN_AND_EVENT``, ``EVENT_ONLY``, ``NO_CONTENT``) are accepted beside
    booleans; content lands on spans in every "on" mode.
    """
    if explicit is not None:
        return bool(explicit)
    raw = (env_value(sc.ENV_CAPTURE_CONTENT) or "").lower()
    if raw in _CAPTURE_ON:
        return True
    if raw not in _CAPTURE_OFF:
        warn_invalid(sc.ENV_CAPTURE_CONTENT, raw, "true, false, SPAN_ONLY, SPAN_AND_EVENT, EVENT_ONLY, NO_CONTENT",
                     "false (content capture stays off)")
    return False


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
