"""The newest GenAI conventions behind ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` (issue 14,
item 5): v1.41 names by default, the renamed ones with the opt-in, on spans and content."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from otel_callbacks import OpenTelemetryCallbackHandler
from tests.conftest import SpanTreeFactory
from tests.support import fake_chat


def _cached_answer() -> AIMessage:
    return AIMessage("ok", usage_metadata={"input_tokens": 40, "output_tokens": 2, "total_tokens": 42,
                                           "input_token_details": {"cache_read": 8, "cache_creation": 16}},
                     response_metadata={"model_name": "m", "finish_reason": "stop"})


@pytest.mark.parametrize("latest", [False, True])
def test_model_span_names_follow_the_opt_in(tracer_provider: Any, spans: SpanTreeFactory,
                                            monkeypatch: pytest.MonkeyPatch, latest: bool) -> None:
    if latest:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,gen_ai_latest_experimental")
    handler = OpenTelemetryCallbackHandler(tracer_provider, capture_content=True)
    fake_chat(_cached_answer(), ls_top_k=5.0).invoke("hi", config={"callbacks": [handler]})
    attrs = spans().one("chat").attributes
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 8
    written = "gen_ai.usage.cache_write.input_tokens" if latest else "gen_ai.usage.cache_creation.input_tokens"
    stale = "gen_ai.usage.cache_creation.input_tokens" if latest else "gen_ai.usage.cache_write.input_tokens"
    assert attrs[written] == 16 and stale not in attrs
    top_k = attrs["gen_ai.request.top_k"]
    assert (type(top_k), top_k) == ((int, 5) if latest else (float, 5.0))
    [message] = json.loads(attrs["gen_ai.output.messages"])
    assert ("finish_reason" in message) is not latest
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
