"""What a malformed OTLP/JSON line is reported as, shared by ``view`` (cli.reader) and ``send`` (parse_lines).

Example:
    >>> try:
    ...     load_line("{not json")
    ... except LineError as exc:
    ...     print(exc)
    invalid JSON: Expecting property name enclosed in double quotes at column 2
"""

from __future__ import annotations

import json
from typing import Any


class LineError(ValueError):
    """One line is malformed; the message is what the CLI prints after ``FILE:LINE:``."""


def load_line(line: str) -> Any:
    """``json.loads`` one line.

    Raises:
        LineError: not JSON (``invalid JSON: ...``).
    """
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise LineError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise LineError("invalid JSON: nested too deeply") from None


def request_error(exc: BaseException) -> LineError:
    """The problem reported for a JSON line that is not a valid OTLP/JSON trace request."""
    return LineError(f"not an OTLP/JSON trace request: {exc}")
