"""No run is lost to cancellation: runs LangChain never ends end with the run above them, on both emission paths.

langchain-core sends no end or error callback to a model call cancelled inside ``agenerate``'s gather (a
``wait_for`` timeout, a cancelled task, an SSE client that disconnects); an abandoned stream leaves its runs open
until the generator is closed. Those are the slow calls users most want to see.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import RunnableLambda
from opentelemetry.trace import StatusCode

from otel_callbacks import OpenTelemetryCallbackHandler
from tests.support import ai, fake_chat


class HangingChatModel(BaseChatModel):
    """Answers after an hour: the caller gives up first (sync calls are not used here)."""

    @property
    def _llm_type(self) -> str:
        return "hanging"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        raise NotImplementedError

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def hanging_chain() -> Any:
    return RunnableLambda(lambda x: x).with_config(run_name="prepare") | HangingChatModel()


def assert_orphan_ended(spans: Any, handler: OpenTelemetryCallbackHandler, error_suffix: str) -> None:
    tree = spans()
    (chat,) = [s for s in tree.spans if s.name.startswith("chat")]
    parent = tree.parent(chat)
    assert parent is not None and parent.name == "RunnableSequence"
    assert chat.status.status_code is StatusCode.ERROR
    assert chat.attributes["langchain.run.orphaned"] is True
    assert str(chat.attributes["error.type"]).endswith(error_suffix)
    assert chat.end_time <= parent.end_time  # ended when it stopped, before the run above it
    assert "gen_ai.usage.input_tokens" not in chat.attributes
    assert "langchain.usage.model_runs" not in parent.attributes  # nothing reported, nothing counted
    assert handler.open_runs == 0


class TestCancelledModelCalls:
    async def test_wait_for_timeout(self, handler: OpenTelemetryCallbackHandler, spans: Any) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(hanging_chain().ainvoke("q", config={"callbacks": [handler]}), 0.2)
        assert_orphan_ended(spans, handler, "CancelledError")

    async def test_cancelled_task(self, handler: OpenTelemetryCallbackHandler, spans: Any) -> None:
        task = asyncio.create_task(hanging_chain().ainvoke("q", config={"callbacks": [handler]}))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert_orphan_ended(spans, handler, "CancelledError")

    async def test_event_stream_client_disconnect(self, handler: OpenTelemetryCallbackHandler, spans: Any) -> None:
        """An SSE endpoint over astream_events whose client goes away: the server cancels the generator."""

        async def serve() -> None:
            async for _ in hanging_chain().astream_events("q", config={"callbacks": [handler]}, version="v2"):
                pass

        task = asyncio.create_task(serve())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert_orphan_ended(spans, handler, "CancelledError")


class TestAbandonedStreams:
    def test_break_out_of_a_stream(self, handler: OpenTelemetryCallbackHandler, spans: Any) -> None:
        chain = RunnableLambda(lambda x: x) | fake_chat(ai("one two three four"))
        for _ in chain.stream("q", config={"callbacks": [handler]}):
            break
        gc.collect()
        tree = spans()
        assert len(tree) == 3 and handler.open_runs == 0
        assert all(s.end_time is not None for s in tree.spans)

    def test_generator_closed_by_garbage_collection(self, handler: OpenTelemetryCallbackHandler, spans: Any) -> None:
        chain = RunnableLambda(lambda x: x) | fake_chat(ai("one two three four"))
        stream = chain.stream("q", config={"callbacks": [handler]})
        next(stream)
        del stream
        gc.collect()
        tree = spans()
        assert len(tree) == 3 and handler.open_runs == 0

    async def test_async_stream_left_mid_way(self, handler: OpenTelemetryCallbackHandler, spans: Any) -> None:
        chain = RunnableLambda(lambda x: x) | fake_chat(ai("one two three four"))
        stream = chain.astream("q", config={"callbacks": [handler]})
        async for _ in stream:
            break
        await stream.aclose()
        for _ in range(200):  # langchain-core delivers the GeneratorExit ends from tasks of their own
            if handler.open_runs == 0:
                break
            await asyncio.sleep(0.01)
        tree = spans()
        assert len(tree) == 3 and handler.open_runs == 0


class TestNothingElseChanges:
    def test_a_run_that_ends_well_ends_its_children_first_only_if_they_were_left_open(
        self, handler: OpenTelemetryCallbackHandler, spans: Any,
    ) -> None:
        """Ordinary runs are untouched: no orphan marks, status OK everywhere, usage summed once."""
        chain = RunnableLambda(lambda x: x) | fake_chat(ai("hi", input_tokens=3, output_tokens=2))
        chain.invoke("q", config={"callbacks": [handler]})
        tree = spans()
        assert all("langchain.run.orphaned" not in s.attributes for s in tree.spans)
        assert all(s.status.status_code is StatusCode.OK for s in tree.spans)
        root = tree.one("RunnableSequence")
        usage = (root.attributes["langchain.usage.input_tokens"], root.attributes["langchain.usage.model_runs"])
        assert usage == (3, 1)

    def test_a_child_left_open_when_its_parent_ends_well(self, handler: OpenTelemetryCallbackHandler,
                                                         spans: Any) -> None:
        """Direct callbacks: a parent's end ends a child it never saw end, marked, with the not-ended type."""
        from uuid import uuid4

        parent, child = uuid4(), uuid4()
        handler.on_chain_start({"name": "parent"}, {}, run_id=parent)
        handler.on_tool_start({"name": "slow"}, "x", run_id=child, parent_run_id=parent)
        handler.on_chain_end({}, run_id=parent)
        handler.on_tool_end("late", run_id=child)  # arrives after: ignored, the span ended once
        tree = spans()
        tool = tree.one("execute_tool slow")
        assert tool.attributes["error.type"] == "langchain.run.not_ended"
        assert tool.status.status_code is StatusCode.ERROR
        assert tree.one("parent").status.status_code is StatusCode.OK
        assert handler.open_runs == 0
