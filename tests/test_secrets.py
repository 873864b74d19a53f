"""Secrets stay out of every exported byte by default, and ``redact`` reaches metadata and exception text at a cost
bounded by ``max_value_length`` (issue 13, items 1 and 7).

Secrets are planted in run metadata and exception messages; the spans are written by the project's file exporter and
encoded by the OTLP protobuf encoder, and both outputs are searched byte for byte, with content capture off and on.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.mapping import errors, spans, values
from otel_callbacks.mapping.content import TRUNCATION_MARK, ContentPolicy, json_attribute, text_attribute
from otel_callbacks.mapping.secrets import (
    DEFAULT_METADATA_POLICY,
    DEFAULT_SECRET_KEYS,
    DROP,
    KEEP,
    REDACT,
    REDACTED,
    MetadataPolicy,
)
from otel_callbacks.mapping.text import strip_url_credentials
from otel_callbacks.setup.exporters import OtlpJsonFileSpanExporter
from tests.support import ai, available_emission_paths, fake_chat, use_emission_path

PASSWORD = "hunter2-Tr0ub4dor"
DSN_PASSWORD = "pg-s3cret-Pw"
DSN = f"postgresql://app_user:{DSN_PASSWORD}@db.internal:5432/orders"
API_KEY = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e"
CARD = "4111 1111 1111 1111"

# What an application's hook masks: card numbers, "password=..." pairs, provider keys. It knows no planted value.
_MASKS = (re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), re.compile(r"(?i)(?<=password=)[^\s;,]+"),
          re.compile(r"\bsk-[\w-]{16,}"))


def mask(text: str) -> str:
    for pattern in _MASKS:
        text = pattern.sub("<masked>", text)
    return text


def leaked(data: bytes, secrets: Sequence[str] = (PASSWORD, DSN_PASSWORD, API_KEY, CARD)) -> list[str]:
    return [secret for secret in secrets if secret.encode() in data]


def exported_bytes(finished: Sequence[ReadableSpan], tmp_path: Any) -> bytes:
    """Every byte the project's file exporter writes for ``finished`` and the OTLP protobuf request for them."""
    path = tmp_path / "traces.jsonl"
    exporter = OtlpJsonFileSpanExporter(path)
    assert exporter.export(finished) is SpanExportResult.SUCCESS
    exporter.shutdown()
    return path.read_bytes() + b"\n" + encode_spans(finished).SerializeToString()


@pytest.fixture(name="path", params=available_emission_paths())
def _path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Handler tests run on both emission paths (lean spans record exceptions with their own code)."""
    use_emission_path(monkeypatch, request.param)
    return str(request.param)


@pytest.fixture(name="make_handler")
def _make_handler(tracer_provider: TracerProvider, path: str) -> Callable[..., OpenTelemetryCallbackHandler]:
    def make(**options: Any) -> OpenTelemetryCallbackHandler:
        handler = OpenTelemetryCallbackHandler(tracer_provider, **options)
        handler.raise_error = True
        assert handler.emission_path == path
        return handler

    return make


@tool
def lookup(order: str) -> str:
    """Look an order up."""
    return f"order {order}: shipped"


@tool
def charge(order: str) -> str:
    """Charge the card on file for an order."""
    raise ValueError(f"charge declined for card {CARD}; ledger {DSN}; password={PASSWORD}; key {API_KEY}")


def agent_chain(tool_to_call: Any) -> Any:
    """A lambda, a chat model that asks for a tool, and the tool: chain, chat and tool spans with the run metadata."""
    model = fake_chat(ai("", tool_calls=[{"name": tool_to_call.name, "args": {"order": "42"}, "id": "call-1"}]))
    return (RunnableLambda(lambda q: [HumanMessage(q["question"])]).with_config(run_name="prompt")
            | model
            | RunnableLambda(lambda m, config: tool_to_call.invoke(m.tool_calls[0]["args"], config=config))
            .with_config(run_name="act"))


class TestSecretNames:
    @pytest.mark.parametrize("key", [
        "password", "db_password", "dbpassword", "PASSWD", "api_key", "apiKey", "X-Api-Key", "openai_api_key",
        "Authorization", "auth", "auth_header", "Set-Cookie", "cookie", "credentials", "private_key", "privateKeyId",
        "DSN", "sentry_dsn", "session_key", "AWS_SECRET_ACCESS_KEY", "client_secret", "access_token", "refreshToken",
    ])
    def test_secret_names_match_in_any_spelling(self, key: str) -> None:
        """Case, separators and camelCase do not matter; names of six letters or more match inside a word too."""
        assert DEFAULT_METADATA_POLICY.is_secret(key)

    @pytest.mark.parametrize("key", [
        "max_tokens", "tokenizer", "author", "authority", "thread_id", "session_id", "user_id", "langgraph_node",
        "checkpoint_ns", "cache_key", "cwd",
    ])
    def test_ordinary_keys_are_kept(self, key: str) -> None:
        """Short names match whole words only, so counts, authors and LangGraph's keys are not taken for secrets."""
        assert not DEFAULT_METADATA_POLICY.is_secret(key)

    def test_the_list_can_be_extended_or_replaced(self) -> None:
        """``secret_keys`` takes names in any spelling; an empty set turns the check off."""
        extended = MetadataPolicy(secret_keys=DEFAULT_SECRET_KEYS | {"Social Security"})
        assert extended.is_secret("user_social_security") and extended.is_secret("password")
        assert not MetadataPolicy(secret_keys=frozenset()).is_secret("password")


class TestUrlCredentials:
    @pytest.mark.parametrize(("text", "expected"), [
        (DSN, "postgresql://db.internal:5432/orders"),
        ("redis://:hunter2@cache:6379/0", "redis://cache:6379/0"),
        ("https://user@host/p", "https://host/p"),
        ("mongodb://u:p@ss@h1,h2/db?authSource=admin", "mongodb://h1,h2/db?authSource=admin"),
        (f"connect failed: {DSN} (timeout)", "connect failed: postgresql://db.internal:5432/orders (timeout)"),
        ('["http://a:b@x","c@d"]', '["http://x","c@d"]'),
        ("see https://example.com/a?to=me@example.com", "see https://example.com/a?to=me@example.com"),
        ("mail me@example.com", "mail me@example.com"),
    ])
    def test_userinfo_is_removed_and_nothing_else(self, text: str, expected: str) -> None:
        """User and password both go; an "@" in a path, a query or plain text stays."""
        assert strip_url_credentials(text) == expected

    def test_server_address_never_carries_credentials(self) -> None:
        """The model endpoint is recorded as host and port only."""
        name, attrs = spans.llm_span(None, {"model": "m", "base_url": f"https://key:{API_KEY}@llm.example:8443/v1"},
                                     {}, chat=True)
        assert (attrs["server.address"], attrs["server.port"]) == ("llm.example", 8443)
        assert API_KEY not in repr((name, attrs))


@dataclasses.dataclass
class Settings:
    region: str
    api_key: str


class TestMetadata:
    def test_secret_keys_and_url_credentials_are_out_by_default(self) -> None:
        """With no option at all (as the handler calls it): secret names exported as ``[REDACTED]``, URLs cleaned."""
        attrs = values.run_attributes("r", "chain", None, {
            "password": PASSWORD, "openai_api_key": API_KEY, "db_url": DSN, "mirrors": (DSN, "https://ok.example/"),
            "settings": {"api_key": API_KEY, "region": "eu"}, "cfg": Settings("eu", API_KEY), "user": "bob",
        }, 1000, 32)
        assert leaked(repr(attrs).encode()) == []
        assert attrs["langchain.metadata.password"] == attrs["langchain.metadata.openai_api_key"] == REDACTED
        assert attrs["langchain.metadata.db_url"] == "postgresql://db.internal:5432/orders"
        assert json.loads(attrs["langchain.metadata.mirrors"]) == ["postgresql://db.internal:5432/orders",
                                                                  "https://ok.example/"]
        assert json.loads(attrs["langchain.metadata.settings"]) == {"api_key": REDACTED, "region": "eu"}
        assert json.loads(attrs["langchain.metadata.cfg"]) == {"api_key": REDACTED, "region": "eu"}
        assert attrs["langchain.metadata.user"] == "bob"

    def test_allow_and_deny_lists(self) -> None:
        """``allow`` keeps only the keys named; ``deny`` drops keys, the conversation id's source included."""
        metadata = {"user": "bob", "team": "a", "thread_id": "t-1", "token": "x"}
        allowed = values.run_attributes("r", "chain", None, metadata, 100, 32,
                                        metadata_policy=MetadataPolicy(allow=frozenset({"team", "token"})))
        assert {k for k in allowed if k.startswith("langchain.metadata.")} == {
            "langchain.metadata.team", "langchain.metadata.token"}
        assert allowed["langchain.metadata.token"] == REDACTED  # allowed, still a secret
        denied = values.run_attributes("r", "chain", None, metadata, 100, 32,
                                       metadata_policy=MetadataPolicy(deny=frozenset({"user", "thread_id"})))
        assert "langchain.metadata.user" not in denied and "langchain.metadata.thread_id" not in denied
        assert "gen_ai.conversation.id" not in denied and denied["langchain.metadata.team"] == "a"
        policy = MetadataPolicy(deny=frozenset({"user"}))
        assert (policy.verdict("user"), policy.verdict("team"), policy.verdict("token")) == (DROP, KEEP, REDACT)

    def test_redact_sees_every_metadata_string_once(self) -> None:
        """Top-level strings, strings inside values and the conversation id pass through the hook, one call each."""
        seen: list[str] = []

        def hook(text: str) -> str:
            seen.append(text)
            return mask(text)

        attrs = values.run_attributes("r", "chain", ["t"], {
            "note": f"paid with {CARD}", "history": [f"card {CARD}", {"memo": f"card {CARD}"}],
            "thread_id": "t-1",
        }, 1000, 32, redact=hook)
        assert leaked(repr(attrs).encode()) == []
        assert attrs["langchain.metadata.note"] == "paid with <masked>"
        assert sorted(seen) == sorted(["t-1", "t-1", f"paid with {CARD}", f"card {CARD}", "memo", f"card {CARD}"])

    def test_redact_failure_leaves_the_value_out(self) -> None:
        """Fail closed: a value the hook raises on is not recorded, the others are."""
        def hook(text: str) -> str:
            if "secret" in text:
                raise RuntimeError("no")
            return text

        attrs = values.run_attributes("r", "chain", None, {"a": "secret stuff", "b": "fine", "c": {"d": "secret"}},
                                      100, 32, redact=hook)
        assert "langchain.metadata.a" not in attrs and "langchain.metadata.c" not in attrs
        assert attrs["langchain.metadata.b"] == "fine"

    def test_the_hook_sees_cut_metadata(self) -> None:
        """A 1 MB metadata value reaches the hook cut to the limit, credentials already out of its URLs."""
        seen: list[str] = []
        attrs = values.run_attributes("r", "chain", None, {"blob": DSN + "x" * 1_000_000}, 200, 32,
                                      redact=lambda s: seen.append(s) or s)
        assert [len(s) for s in seen] == [200] and DSN_PASSWORD not in seen[0]
        assert attrs["langchain.metadata.blob"] == seen[0]


class _Failing(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception raises")


def _raised(error: BaseException) -> BaseException:
    """``error`` with a real traceback, raised from inside a chain of calls, chained to a cause with a secret."""
    def inner() -> None:
        try:
            raise ConnectionError(f"cannot reach {DSN}")
        except ConnectionError as cause:
            raise error from cause

    try:
        inner()
    except BaseException as exc:
        return exc
    raise AssertionError("not raised")


class TestExceptionText:
    def test_event_attributes_are_redacted_message_and_stacktrace(self) -> None:
        """Message, the message inside the stacktrace and the chained cause's: credentials out, hook applied."""
        error = _raised(ValueError(f"charge declined for card {CARD}; password={PASSWORD}; key {API_KEY}"))
        attrs = errors.exception_attributes(error, redact=mask, max_length=4096)
        assert leaked(json.dumps(attrs).encode()) == []
        assert attrs["exception.type"] == "ValueError" and attrs["exception.escaped"] == "True"
        assert attrs["exception.message"] == "charge declined for card <masked>; password=<masked>; key <masked>"
        stack = attrs["exception.stacktrace"]
        assert stack.startswith("Traceback") and "in inner" in stack
        assert "cannot reach postgresql://db.internal:5432/orders" in stack
        assert stack.rstrip().endswith(attrs["exception.message"])

    def test_status_description_is_redacted_and_one_line(self) -> None:
        """``Class: message``, credentials out of URLs even without a hook, masked with one."""
        error = ValueError(f"bad\n  card {CARD}\n  db {DSN}")
        assert errors.error_description(error) == f"ValueError: bad card {CARD} db postgresql://db.internal:5432/orders"
        assert errors.error_description(error, redact=mask) == (
            "ValueError: bad card <masked> db postgresql://db.internal:5432/orders")

    def test_the_hook_runs_once_per_string_on_cut_text(self) -> None:
        """Once for the message, once for the stacktrace, once for the status: each cut to its limit first."""
        seen: list[str] = []
        error = _raised(ValueError("x" * 1_000_000))
        attrs = errors.exception_attributes(error, redact=lambda s: seen.append(s) or s, max_length=1000)
        errors.error_description(error, redact=lambda s: seen.append(s) or s)
        assert len(seen) == 3 and max(len(s) for s in seen[:2]) <= 1000 and len(seen[2]) <= 256
        stack = attrs["exception.stacktrace"]
        # The message line is capped so the frames keep their place within the limit.
        assert "in inner" in stack and f"xxx{TRUNCATION_MARK}" in stack and len(stack) <= 1000

    @pytest.mark.parametrize("error", [_Failing(), _raised(_Failing()), ValueError("\ud83d")])
    def test_never_raises_and_always_encodes(self, error: BaseException) -> None:
        """``str()`` that raises, lone surrogates: every value comes back a string UTF-8 can encode."""
        attrs = errors.exception_attributes(error, redact=mask)
        for text in (*attrs.values(), errors.error_description(error, redact=mask), errors.error_type(error)):
            assert isinstance(text, str)
            text.encode("utf-8")

    def test_a_failing_hook_hides_the_text(self) -> None:
        """Fail closed: the message is replaced, the type is kept."""
        error = ValueError(f"password={PASSWORD}")
        attrs = errors.exception_attributes(error, redact=lambda s: 1 / 0)  # type: ignore[arg-type,return-value]
        assert attrs["exception.message"] == attrs["exception.stacktrace"] == REDACTED
        assert errors.error_description(error, redact=lambda s: None) == f"ValueError: {REDACTED}"  # type: ignore


CAPTURE = pytest.mark.parametrize("capture", [False, True], ids=["capture-off", "capture-on"])


class TestExported:
    @CAPTURE
    def test_metadata_secrets_never_reach_an_exporter(self, make_handler, span_exporter: InMemorySpanExporter,
                                                      tmp_path, capture: bool) -> None:
        """The default handler: secret-named metadata and URL credentials are in no exported byte, on any span."""
        handler = make_handler(capture_content=capture)
        metadata = {"password": PASSWORD, "db_url": DSN, "openai_api_key": API_KEY, "user": "bob",
                    "Authorization": f"Bearer {API_KEY}", "settings": {"api_key": API_KEY, "region": "eu"}}
        agent_chain(lookup).invoke({"question": "where is order 42?"},
                                   config={"callbacks": [handler], "metadata": metadata})
        finished = span_exporter.get_finished_spans()
        assert sorted(s.name for s in finished) == ["RunnableSequence", "act", "chat", "execute_tool lookup", "prompt"]
        for span in finished:
            attrs = span.attributes or {}
            assert attrs["langchain.metadata.password"] == attrs["langchain.metadata.Authorization"] == REDACTED
            assert attrs["langchain.metadata.db_url"] == "postgresql://db.internal:5432/orders"
        assert leaked(exported_bytes(finished, tmp_path)) == []

    @CAPTURE
    def test_redact_reaches_metadata(self, make_handler, span_exporter: InMemorySpanExporter, tmp_path,
                                     capture: bool) -> None:
        """What the hook masks in metadata values (a card number under an ordinary key) is in no exported byte."""
        handler = make_handler(capture_content=capture, redact=mask)
        agent_chain(lookup).invoke({"question": "where is order 42?"},
                                   config={"callbacks": [handler], "metadata": {"note": f"paid with {CARD}"}})
        finished = span_exporter.get_finished_spans()
        assert all((s.attributes or {})["langchain.metadata.note"] == "paid with <masked>" for s in finished)
        assert leaked(exported_bytes(finished, tmp_path)) == []

    @CAPTURE
    def test_exception_text_never_reaches_an_exporter(self, make_handler, span_exporter: InMemorySpanExporter,
                                                      tmp_path, capture: bool) -> None:
        """A tool's error quoting a card, a DSN, a password and a key: status, ``exception.message`` and
        ``exception.stacktrace`` of every failed span are masked and free of URL credentials."""
        handler = make_handler(capture_content=capture, redact=mask)
        with pytest.raises(ValueError, match="charge declined"):
            agent_chain(charge).invoke({"question": "charge order 42"}, config={"callbacks": [handler]})
        finished = span_exporter.get_finished_spans()
        failed = [s for s in finished if s.events and s.events[0].name == "exception"]
        assert {s.name for s in failed} == {"execute_tool charge", "act", "RunnableSequence"}
        assert leaked(exported_bytes(finished, tmp_path)) == []


def _strings(data: Any) -> Iterator[str]:
    """Every string recorded in parsed JSON content: keys and values."""
    if isinstance(data, str):
        if data != TRUNCATION_MARK:
            yield data
    elif isinstance(data, dict):
        for key, value in data.items():
            if key != TRUNCATION_MARK:  # the count of items left out, our mark: not a string of the input
                yield key
            yield from _strings(value)
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item)


_CONTENT_KEYS = ("langchain.chain.inputs", "langchain.chain.outputs")
BIG = ("lorem ipsum dolor sit amet, card 4111 1111 1111 1111 on file " * 20_000)[:1_000_000]


class TestRedactionCost:
    def test_json_content_is_redacted_once_per_string(self) -> None:
        """Even when escaping makes the JSON overflow and it is cut again, the hook ran once per recorded string."""
        seen: list[str] = []
        value = {"quotes": '"' * 5000, "items": ["\n" * 3000, "tail"], "big": "y" * 50_000}
        text = json_attribute(value, ContentPolicy(capture=True, max_length=2048, redact=lambda s: seen.append(s) or s))
        assert text is not None and len(text) <= 2048
        assert len(seen) == len(list(_strings(json.loads(text))))
        assert max(len(s) for s in seen) <= 2048

    def test_a_lengthening_hook_is_cut_again(self) -> None:
        """A hook that returns more than it was given cannot push a value past the limit."""
        policy = ContentPolicy(capture=True, max_length=300, redact=lambda s: s + "!" * 1000)
        text = json_attribute({"a": "b" * 10_000}, policy)
        assert text is not None and len(text) <= 300
        assert all(s.endswith(TRUNCATION_MARK) for s in _strings(json.loads(text)))
        plain = text_attribute("c" * 10_000, policy)
        assert plain is not None and len(plain) == 300

    def test_a_1mb_output_costs_one_hook_call_per_recorded_string(self, make_handler, span_exporter, capsys) -> None:
        """Content capture on, a chain returning 1 MB: one call per recorded string, none longer than the limit.
        Prints the invoke cost with and without the hook (a measurement, not an assertion)."""
        seen: list[str] = []

        def counting(text: str) -> str:
            seen.append(text)
            return mask(text)

        chain = RunnableLambda(lambda q: BIG).with_config(run_name="big")
        handler = make_handler(capture_content=True, redact=counting, max_value_length=16384)
        chain.invoke({"question": "q" * 100_000}, config={"callbacks": [handler]})
        recorded = [s for span in span_exporter.get_finished_spans() for key in _CONTENT_KEYS
                    for s in _strings(json.loads((span.attributes or {})[key]))]
        assert len(seen) == len(recorded) == 3  # the input's key and value, the output
        assert max(len(s) for s in seen) <= 16384
        assert CARD not in "".join(recorded)
        with capsys.disabled():
            plain, hooked = _invoke_ms(chain, None), _invoke_ms(chain, mask)
            print(f"\n1 MB chain output, content capture on: {plain:.2f} ms/invoke without redact, "
                  f"{hooked:.2f} ms with ({hooked / plain:.1f}x)")


def _invoke_ms(chain: Any, redact: Any, n: int = 20) -> float:
    """Median invoke time in ms on a handler of its own (the in-memory exporter cleared each time)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler = OpenTelemetryCallbackHandler(provider, capture_content=True, redact=redact)
    times = []
    for _ in range(n + 3):
        start = time.perf_counter()
        chain.invoke("q", config={"callbacks": [handler]})
        times.append(time.perf_counter() - start)
        exporter.clear()
    provider.shutdown()
    return sorted(times[3:])[n // 2] * 1000

