"""Turning content (messages, inputs, outputs, documents) into safe OpenTelemetry attribute values.

Everything here runs only when content capture is on. It is pure: it receives the policy and never reads the
environment. Whatever the input (cycles, bytes, NaN, objects whose ``repr`` raises, generators, 5 MB strings), the
result is a valid JSON string no longer than the policy's limit, or ``None`` when the redaction hook failed (fail
closed: content is dropped, never leaked). The hook runs once per string, on the string already cut to the limit, and
the result holds no code point the OTLP encoder rejects.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from otel_callbacks.mapping.text import safe_text

_logger = logging.getLogger(__name__)

Redactor = Callable[[str], str]
"""A hook applied to every string of content before it is recorded, e.g. to mask e-mail addresses."""

DEFAULT_MAX_VALUE_LENGTH = 16 * 1024
_MAX_DEPTH = 32
# One encoder for every call: json.dumps with any non-default option builds a new JSONEncoder each time (~2 µs).
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_MAX_ITEMS = 1000
TRUNCATION_MARK = "…[truncated]"


class RedactionError(Exception):
    """The user's redaction hook raised or returned a non-string; the content is dropped."""


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """What content may be recorded and how.

    Args:
        capture: record prompts, messages, outputs, tool arguments/results and documents. Off by default, as the
            GenAI semantic conventions require.
        max_length: upper bound, in characters, of any attribute value the handler writes (content or metadata).
        redact: called once on every string of content, run metadata and exception text before it is recorded,
            on the string already cut to ``max_length`` (a pattern that straddles the cut is seen in part); if it
            raises, that value is dropped.

    Example:
        >>> import re
        >>> policy = ContentPolicy(capture=True, redact=lambda s: re.sub(r"\\S+@\\S+", "<email>", s))
    """

    capture: bool = False
    max_length: int = DEFAULT_MAX_VALUE_LENGTH
    redact: Redactor | None = None


def apply_redact(redact: Redactor, s: str) -> str:
    """``redact(s)``, checked: :class:`RedactionError` if the hook raises or returns something else than a string."""
    try:
        out = redact(s)
    except Exception as exc:
        raise RedactionError(type(exc).__name__) from exc
    if not isinstance(out, str):
        raise RedactionError(f"redact returned {type(out).__name__}, not str")
    return out


def to_jsonable(obj: Any, redact: Redactor | None = None, budget: int = DEFAULT_MAX_VALUE_LENGTH) -> Any:
    """Convert ``obj`` to plain JSON data: strings cut to ``budget``, containers capped, cycles and oddities named."""
    return _Converter(redact, budget).convert(obj, 0)


class _Converter:
    __slots__ = ("budget", "redact", "seen")

    def __init__(self, redact: Redactor | None, budget: int) -> None:
        self.redact = redact
        self.budget = budget
        self.seen: set[int] = set()

    def text(self, s: str) -> str:
        # Cut before the hook runs, so its cost is bounded by the budget however long the input (a regex hook run
        # on a whole 1 MB output made the invoke ~200x slower); a hook that lengthens the string is cut again.
        budget = self.budget
        room = max(budget - len(TRUNCATION_MARK), 0)
        cut = len(s) > budget
        if cut:
            s = s[:room]
        if self.redact is not None:
            s = apply_redact(self.redact, s)
            if len(s) > (room if cut else budget):
                s, cut = s[:room], True
        if cut:
            s += TRUNCATION_MARK
        self.budget -= len(s)
        return s

    def convert(self, obj: Any, depth: int) -> Any:
        if obj is None or isinstance(obj, bool):
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, int):
            # JSON readers lose precision past 2**53; keep huge ints exact as strings.
            return obj if -(2**53) <= obj <= 2**53 else str(obj)
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else str(obj)
        if isinstance(obj, bytes | bytearray | memoryview):
            raw = bytes(obj[:3 * 1024])
            return self.text(base64.b64encode(raw).decode("ascii"))
        if depth >= _MAX_DEPTH or self.budget <= 0:
            return TRUNCATION_MARK
        key = id(obj)
        if key in self.seen:
            return "<cycle>"
        self.seen.add(key)
        try:
            return self._container(obj, depth)
        finally:
            self.seen.discard(key)

    def _container(self, obj: Any, depth: int) -> Any:
        if isinstance(obj, Mapping):
            out: dict[str, Any] = {}
            for i, (k, v) in enumerate(obj.items()):
                if i >= _MAX_ITEMS or self.budget <= 0:
                    out[TRUNCATION_MARK] = len(obj) - i
                    break
                # Keys can be content too (a dict keyed by user names): they pass through the redaction hook.
                key = self.text(k if isinstance(k, str) else safe_str(k))  # before the value spends the budget
                out[key] = self.convert(v, depth + 1)
            return out
        if isinstance(obj, list | tuple | set | frozenset):
            items: list[Any] = []
            for i, v in enumerate(obj):
                if i >= _MAX_ITEMS or self.budget <= 0:
                    items.append(TRUNCATION_MARK)
                    break
                items.append(self.convert(v, depth + 1))
            return items
        dumped = _model_dump(obj)
        if dumped is not None:
            return self.convert(dumped, depth + 1)
        # Generators, files, sockets and other iterables are described, never consumed.
        return self.text(safe_str(obj))


def _model_dump(obj: Any) -> Any:
    """Plain data of pydantic models, dataclasses and LangChain messages/documents; ``None`` for anything else."""
    dump = getattr(type(obj), "model_dump", None)
    if callable(dump):
        try:
            return dump(obj, mode="json", exclude_none=True)
        except Exception:
            try:
                return dump(obj)
            except Exception:
                return None
    fields = getattr(type(obj), "__dataclass_fields__", None)
    if isinstance(fields, dict):
        try:
            return {name: getattr(obj, name) for name in fields}
        except Exception:
            return None
    return None


def safe_str(obj: Any) -> str:
    try:
        return str(obj)
    except Exception:
        try:
            return repr(obj)
        except Exception:
            return f"<unprintable {type(obj).__name__}>"


def json_attribute(obj: Any, policy: ContentPolicy) -> str | None:
    """Compact JSON of ``obj`` within ``policy.max_length`` characters; ``None`` if redaction failed.

    Strings inside are cut (and marked) rather than the JSON text itself, so the result always parses.
    """
    limit = max(policy.max_length, 16)
    budget = limit - 2  # a string's quotes: a value that is one long string, cut, fits in one pass
    try:
        # The hook runs in the first pass only, once per string: later passes shrink what it returned.
        converter = _Converter(policy.redact, budget)
        data = converter.convert(obj, 0)
        for attempt in range(8):
            text = _COMPACT_JSON.encode(data)
            if len(text) <= limit:
                return safe_text(text)
            # Escaping and structure add characters the budget did not count. What the strings took, scaled by
            # limit / length, fits most values in a pass or two (halving the budget recorded a cut string at half
            # the limit); if that is not enough, halve.
            used = budget - converter.budget
            budget = used * limit // len(text) if attempt < 2 else budget * limit // len(text) // 2
            converter = _Converter(None, budget)
            data = converter.convert(data, 0)
    except RedactionError as exc:
        _logger.debug("redaction hook failed (%s); content dropped", exc)
        return None
    except (TypeError, ValueError, RecursionError):
        pass
    return json.dumps(TRUNCATION_MARK, ensure_ascii=False)


def text_attribute(value: str, policy: ContentPolicy) -> str | None:
    """A plain string value (not JSON) redacted and cut to the policy's limit; ``None`` if redaction failed."""
    try:
        return safe_text(_Converter(policy.redact, policy.max_length).text(value))
    except RedactionError:
        return None
