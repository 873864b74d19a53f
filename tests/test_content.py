"""Content to attribute values: valid JSON within the limit, whatever the input; redaction fails closed."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import BaseModel

from otel_callbacks import ContentPolicy
from otel_callbacks.mapping.content import TRUNCATION_MARK, json_attribute, text_attribute, to_jsonable


class Model(BaseModel):
    name: str
    score: float


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")

    def __repr__(self) -> str:
        raise RuntimeError("no")


def _cycle() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def _gen() -> Any:
    yield 1
    raise AssertionError("the generator must not be consumed")


@pytest.mark.parametrize(("value", "expected"), [
    ({"a": [1, "b", None, True]}, {"a": [1, "b", None, True]}),
    (float("nan"), "nan"),
    (float("inf"), "inf"),
    (2**80, str(2**80)),
    (b"\x00\x01", "AAE="),
    (Model(name="n", score=0.5), {"name": "n", "score": 0.5}),
    ({1: "int key"}, {"1": "int key"}),
    ((1, 2), [1, 2]),
])
def test_to_jsonable(value: Any, expected: Any) -> None:
    assert to_jsonable(value) == expected


def test_cycles_unprintables_and_generators_are_described() -> None:
    out = to_jsonable({"c": _cycle(), "u": Unprintable(), "g": _gen()})
    assert out["c"]["self"] == "<cycle>"
    assert out["u"] == "<unprintable Unprintable>"
    assert out["g"].startswith("<generator object")


@pytest.mark.parametrize("limit", [64, 100, 1000, 16 * 1024])
@pytest.mark.parametrize("value", [
    "x" * 5_000_000,
    {"text": "é\n\"" * 10_000, "list": list(range(5000))},
    [{"k": "v" * 100}] * 2000,
    "plain",
])
def test_json_attribute_is_valid_json_within_limit(value: Any, limit: int) -> None:
    text = json_attribute(value, ContentPolicy(capture=True, max_length=limit))
    assert text is not None
    assert len(text) <= limit
    json.loads(text)


def test_truncation_is_marked_inside_strings() -> None:
    text = json_attribute({"t": "a" * 1000}, ContentPolicy(capture=True, max_length=200))
    assert text is not None
    assert json.loads(text)["t"].endswith(TRUNCATION_MARK)


def test_redaction_applies_to_strings_and_keys() -> None:
    policy = ContentPolicy(capture=True, redact=lambda s: s.replace("alice@example.com", "<email>"))
    text = json_attribute({"alice@example.com": ["mail alice@example.com"]}, policy)
    assert text == '{"<email>":["mail <email>"]}'


@pytest.mark.parametrize("hook", [lambda s: 1 / 0, lambda s: None, lambda s: b"bytes"])
def test_failing_redaction_drops_the_value(hook: Any) -> None:
    policy = ContentPolicy(capture=True, redact=hook)
    assert json_attribute({"a": "secret"}, policy) is None
    assert text_attribute("secret", policy) is None


def test_text_attribute_cut_to_limit() -> None:
    out = text_attribute("z" * 10_000, ContentPolicy(capture=True, max_length=100))
    assert out is not None and len(out) == 100 and out.endswith(TRUNCATION_MARK)


def test_nan_never_reaches_json() -> None:
    text = json_attribute([math.nan, -math.inf], ContentPolicy(capture=True))
    assert text == '["nan","-inf"]'


def test_stream_event_types_outside_the_protocol_are_not_recorded_without_capture(handler, spans) -> None:
    """An event type is free text a caller controls (the fuzz suite planted content there); only the protocol's
    own types are recorded with capture off."""
    from uuid import uuid4

    from langchain_core.outputs import LLMResult

    run = uuid4()
    handler.on_chat_model_start({}, [["hi"]], run_id=run)
    handler.on_stream_event({"event": "sk-secret-123"}, run_id=run)
    handler.on_stream_event({"event": "content-block-delta", "delta": {"type": "text", "text": "x"}}, run_id=run)
    handler.on_llm_end(LLMResult(generations=[[]]), run_id=run)
    (span,) = spans.raw()
    assert [e.attributes["langchain.stream_event.type"] for e in span.events] == ["other", "content-block-delta"]


def test_a_cut_string_is_recorded_at_the_full_limit() -> None:
    """A value cut to the limit overflowed by its two quotes, and the retry halved it: 8,193 of 16,384 kept."""
    from otel_callbacks.mapping.content import ContentPolicy, json_attribute

    text = json_attribute("x" * 1_000_000, ContentPolicy(capture=True, max_length=16384))
    assert text is not None and len(text) == 16384
