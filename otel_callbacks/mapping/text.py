"""Strings made safe to record: encodable by every exporter, and URLs without the credentials they carry.

Both run on every string the mapping produces, so both return their argument unchanged, at the cost of one C-level
scan, when there is nothing to do. Pure: no spans, no environment.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
"""What an unencodable code point becomes (U+FFFD REPLACEMENT CHARACTER, as UTF-8 decoders write it)."""

# userinfo ends at the last "@" before the host; it cannot hold "/", "?", "#", whitespace, quotes or backslashes,
# which also keeps a match from running across the end of a JSON string into the next one.
_USERINFO = re.compile(r"://[^/?#\s\"'\\<>]*@")


def safe_text(s: str) -> str:
    """``s`` as the OTLP encoder (protobuf, UTF-8) accepts it: lone surrogates become U+FFFD.

    Python strings may hold surrogate code points (U+D800-U+DFFF: a broken emoji from a web client, ``\\udcxx`` from
    ``surrogateescape`` decoding), which UTF-8 cannot encode; one of them in a span name made the encoder raise and
    the whole batch (up to 512 spans) was lost. A surrogate *pair* is joined into the character it stands for; every
    other code point Python can hold is encodable. ASCII strings, the common case, cost one ``isascii`` scan.
    """
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return s


def strip_url_credentials(s: str) -> str:
    """``s`` with the userinfo of every URL in it removed: ``postgresql://user:pw@host/db`` -> ``postgresql://host/db``.

    The user name goes too (it is half of a credential, and often an account name). Nothing is scanned beyond two
    substring checks unless ``s`` has both ``://`` and ``@``. Run it on the whole string, before any cut: a cut can
    separate a password from the ``@`` that marks it.
    """
    if "://" not in s or "@" not in s:
        return s
    return _USERINFO.sub("://", s)
