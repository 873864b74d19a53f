"""Which run-metadata keys may be exported, and which name secrets whose values are exported as ``[REDACTED]``.

Run metadata is recorded on every span of a run tree with content capture off (it is how users label runs), and
applications put connection settings and credentials in it too. So the default is safe without any option: keys
that name secrets are redacted, wherever they appear inside a value as well, and URLs lose their credentials
(:func:`~otel_callbacks.mapping.text.strip_url_credentials`). Pure: no spans, no environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_callbacks.mapping.content import TRUNCATION_MARK, _model_dump, safe_str
from otel_callbacks.mapping.text import strip_url_credentials

REDACTED = "[REDACTED]"
"""The value exported in place of a secret."""

DEFAULT_SECRET_KEYS: frozenset[str] = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "token", "accesstoken", "authtoken", "refreshtoken",
    "idtoken", "bearer", "jwt", "apikey", "authorization", "auth", "cookie", "credential", "credentials",
    "privatekey", "dsn", "sessionkey", "accesskey", "connectionstring",
})
"""Names of secrets, lowercased without separators (``"api key"``, ``"api_key"`` and ``"API-Key"`` all give
``"apikey"``).

A metadata key names a secret when, split into words at separators, digits and camelCase and lowercased, one word
or a run of words spells one of these (``api_key``, ``apiKey``, ``X-Api-Key``, ``openai_api_key`` all spell
``apikey``; ``client_secret``, ``Set-Cookie``, ``db_password``, ``AWS_SECRET_ACCESS_KEY`` match too). Names of six
letters or more also match inside a word (``dbpassword``, ``mysecret``); shorter ones only as whole words, so
``auth_header`` is a secret but ``author`` is not, ``access_token`` is but ``max_tokens`` and ``tokenizer`` are not.
Extend it with ``MetadataPolicy(secret_keys=DEFAULT_SECRET_KEYS | {"ssn"})``.
"""

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Names shorter than this match whole words only: inside words they are too common ("auth" in "author").
_SUBSTRING_MIN = 6
_MAX_RUN = 4  # words joined when looking for a name spelled across words ("private_key_id" -> "privatekey")
_CACHE_SIZE = 4096  # keys repeat on every span; bounded, because keys can come from user input
_MAX_DEPTH = 32

# What MetadataPolicy.verdict says of a key: export its value, export "[REDACTED]", export nothing.
KEEP, REDACT, DROP = 0, 1, 2


def normalize_key(key: str) -> str:
    """``key`` as the secret names are spelled: its words lowercased and joined (``"X-Api-Key"`` -> ``"xapikey"``)."""
    return "".join(word.lower() for word in _WORD.findall(key))


@dataclass(frozen=True, slots=True)
class MetadataPolicy:
    """Which ``langchain.metadata.*`` keys are exported, and which are secrets.

    Args:
        allow: when given, only these metadata keys (exact names) become ``langchain.metadata.*`` attributes.
        deny: metadata keys (exact names) never recorded, neither as ``langchain.metadata.*`` nor as
            ``gen_ai.conversation.id``.
        secret_keys: names of secrets (see :data:`DEFAULT_SECRET_KEYS` for how keys are matched); a key that names
            one is exported as ``[REDACTED]``, at the top level and inside dict values. An allowed key is still
            checked: pass ``secret_keys=frozenset()`` to turn the check off.

    Example:
        >>> policy = MetadataPolicy(deny=frozenset({"user_email"}), secret_keys=DEFAULT_SECRET_KEYS | {"ssn"})
        >>> policy.verdict("user_ssn") == REDACT, policy.verdict("user_email") == DROP
        (True, True)
    """

    allow: frozenset[str] | None = None
    deny: frozenset[str] = frozenset()
    secret_keys: frozenset[str] = DEFAULT_SECRET_KEYS
    _long: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _short: frozenset[str] = field(init=False, repr=False, compare=False)
    _secret: dict[str, bool] = field(init=False, repr=False, compare=False, hash=False)
    _verdicts: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)
    # What each top-level key becomes on a span, filled by mapping.values (attribute name and verdict in one lookup).
    plans: dict[str, Any] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Accept any iterable of names (a set, a list) and spell the secret names as keys are normalized.
        if self.allow is not None and not isinstance(self.allow, frozenset):
            object.__setattr__(self, "allow", frozenset(_names(self.allow)))
        if not isinstance(self.deny, frozenset):
            object.__setattr__(self, "deny", frozenset(_names(self.deny)))
        names = frozenset(filter(None, (normalize_key(n) for n in _names(self.secret_keys))))
        object.__setattr__(self, "secret_keys", names)
        object.__setattr__(self, "_long", tuple(sorted(n for n in names if len(n) >= _SUBSTRING_MIN)))
        object.__setattr__(self, "_short", frozenset(n for n in names if len(n) < _SUBSTRING_MIN))
        object.__setattr__(self, "_secret", {})
        object.__setattr__(self, "_verdicts", {})
        object.__setattr__(self, "plans", {})

    def is_secret(self, key: str) -> bool:
        """Whether ``key`` names a secret (cached: the same keys come back on every span)."""
        cached = self._secret.get(key)
        if cached is None:
            cached = self._names_secret(key)
            if len(self._secret) < _CACHE_SIZE:
                self._secret[key] = cached
        return cached

    def _names_secret(self, key: str) -> bool:
        words = [word.lower() for word in _WORD.findall(key)]
        joined = "".join(words)
        if any(name in joined for name in self._long):
            return True
        short = self._short
        if not short:
            return False
        for i in range(len(words)):
            run = ""
            for word in words[i:i + _MAX_RUN]:
                run += word
                if run in short:
                    return True
        return False

    def verdict(self, key: str) -> int:
        """:data:`KEEP`, :data:`REDACT` (export ``[REDACTED]``) or :data:`DROP` (export nothing) for a top-level key."""
        cached = self._verdicts.get(key)
        if cached is not None:
            return cached
        if key in self.deny or (self.allow is not None and key not in self.allow):
            cached = DROP
        else:
            cached = REDACT if self.is_secret(key) else KEEP
        if len(self._verdicts) < _CACHE_SIZE:
            self._verdicts[key] = cached
        return cached


def _describe(obj: Any) -> str:
    try:
        return str(obj)
    except Exception:  # str() runs the object's own code
        return f"<{type(obj).__name__}>"


def _names(names: Iterable[str] | str) -> Iterable[str]:
    # A lone string is one name, not a set of letters.
    return (names,) if isinstance(names, str) else names


DEFAULT_METADATA_POLICY = MetadataPolicy()
"""What the handler applies when given no policy: no allow or deny list, :data:`DEFAULT_SECRET_KEYS`."""


def scrub(value: Any, policy: MetadataPolicy = DEFAULT_METADATA_POLICY) -> Any:
    """``value`` with secrets taken out: values under secret keys replaced, URL credentials stripped from strings.

    Models and dataclasses become dicts first (their fields are keys too); other objects become their ``str()``.
    The result is plain data for :func:`~otel_callbacks.mapping.content.json_attribute`; never raises.
    """
    return _scrub(value, policy, 0, set())


def _scrub(value: Any, policy: MetadataPolicy, depth: int, path: set[int]) -> Any:
    if isinstance(value, str):
        return strip_url_credentials(value)
    if value is None or isinstance(value, bool | int | float | bytes | bytearray | memoryview):
        return value
    if depth >= _MAX_DEPTH:
        return TRUNCATION_MARK
    key = id(value)
    if key in path:
        return "<cycle>"
    path.add(key)
    try:
        if isinstance(value, Mapping):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                name = k if isinstance(k, str) else safe_str(k)
                out[strip_url_credentials(name)] = (
                    REDACTED if policy.is_secret(name) else _scrub(v, policy, depth + 1, path))
            return out
        if isinstance(value, list | tuple | set | frozenset):
            return [_scrub(v, policy, depth + 1, path) for v in value]
        dumped = _model_dump(value)
        if dumped is not None:
            return _scrub(dumped, policy, depth + 1, path)
        return strip_url_credentials(_describe(value))
    except Exception:  # a mapping whose items() raises, a set that changes size: described, not leaked
        return f"<{type(value).__name__}>"
    finally:
        path.discard(key)
