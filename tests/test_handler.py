"""The span contract, callback by callback, with real langchain-core runnables and fake models."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.documents import Document
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from opentelemetry.trace import SpanKind, StatusCode

from otel_callbacks import OpenTelemetryCallbackHandler
from tests.support import CharStreamLLM, ai, fake_chat

CONTENT_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                "gen_ai.tool.definitions", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
                "gen_ai.retrieval.query.text", "gen_ai.retrieval.documents", "langchain.chain.inputs",
                "langchain.chain.outputs")


class TinyRetriever(BaseRetriever):
    """Returns the documents whose text contains the query."""

    docs: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [d for d in self.docs if query in d.page_content]


def identity(x: Any) -> Any:
    return x


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@tool
def explode(x: str) -> str:
    """Always fails."""
    raise RuntimeError("tool broke")


class TestChatModelSpan:
    def test_name_kind_and_response_attributes(self, handler, spans) -> None:
        model = fake_chat(ai("hi", model="gpt-4o-2024", response_id="chatcmpl-1", input_tokens=12, output_tokens=3),
                          ls_provider="openai", ls_model_name="gpt-4o")
        model.invoke("hello", config={"callbacks": [handler]})
        span = spans().one("chat gpt-4o")
        assert span.kind == SpanKind.CLIENT
        attrs = span.attributes
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.request.model"] == "gpt-4o"
        assert attrs["gen_ai.response.model"] == "gpt-4o-2024"
        assert attrs["gen_ai.response.id"] == "chatcmpl-1"
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
        assert attrs["gen_ai.usage.input_tokens"] == 12
        assert attrs["gen_ai.usage.output_tokens"] == 3
        assert attrs["langchain.run.type"] == "llm"
        assert span.status.status_code == StatusCode.OK
        assert "gen_ai.request.stream" not in attrs

    def test_request_parameters_from_ls_metadata(self, handler, spans) -> None:
        model = fake_chat(ai("x"), ls_provider="anthropic", ls_model_name="claude-x", ls_temperature=0.5,
                          ls_max_tokens=100, ls_stop=["END"])
        model.invoke("q", config={"callbacks": [handler]})
        attrs = spans().one("chat claude-x").attributes
        assert attrs["gen_ai.provider.name"] == "anthropic"
        assert attrs["gen_ai.request.temperature"] == 0.5
        assert attrs["gen_ai.request.max_tokens"] == 100
        assert attrs["gen_ai.request.stop_sequences"] == ("END",)

    def test_langchain_generated_message_ids_are_not_response_ids(self, handler, spans) -> None:
        fake_chat(ai("x")).invoke("q", config={"callbacks": [handler]})
        assert "gen_ai.response.id" not in spans().one("chat").attributes

    def test_streaming_events_and_time_to_first_chunk(self, handler, spans) -> None:
        model = fake_chat(ai("one two three four"))
        chunks = list(model.stream("q", config={"callbacks": [handler]}))
        span = spans().one("chat")
        events = [e for e in span.events if e.name == "langchain.llm.new_token"]
        assert len(events) == len(chunks) >= 4
        assert all(not e.attributes for e in events)  # content off: no text, and nothing else to pay for
        assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
        attrs = span.attributes
        assert attrs["gen_ai.request.stream"] is True
        assert 0 < attrs["gen_ai.response.time_to_first_chunk"] < 5
        assert attrs["langchain.stream.chunk_count"] == len(chunks)

    def test_stream_event_callback_of_v3_streaming(self, handler, spans) -> None:
        model = fake_chat(ai("alpha beta"))
        stream = model.stream_events("q", config={"callbacks": [handler]}, version="v3")
        list(stream)
        span = spans().one("chat")
        types = [e.attributes["langchain.stream_event.type"] for e in span.events
                 if e.name == "langchain.llm.stream_event"]
        assert "content-block-delta" in types and "message-start" in types
        assert span.attributes["gen_ai.request.stream"] is True
        assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0

    def test_token_text_only_with_content_capture(self, content_handler, spans) -> None:
        list(fake_chat(ai("one two")).stream("q", config={"callbacks": [content_handler]}))
        texts = [e.attributes.get("langchain.chunk.text") for e in spans().one("chat").events]
        assert "".join(t for t in texts if t) == "one two"

    def test_error_status_exception_event_and_user_exception_unchanged(self, handler, spans) -> None:
        class Boom(ValueError):
            pass

        def fail(_: Any) -> Any:
            raise Boom("bad thing\nsecond line")

        chain = RunnableLambda(fail)
        with pytest.raises(Boom, match="bad thing"):
            chain.invoke(1, config={"callbacks": [handler]})
        span = spans().one("fail")
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description == "Boom: bad thing second line"
        assert span.attributes["error.type"].endswith("Boom")
        assert [e.name for e in span.events] == ["exception"]
        assert handler.open_runs == 0


class TestCompletionLLM:
    def test_text_completion_span(self, handler, spans) -> None:
        llm = FakeListLLM(responses=["pong"])
        assert llm.invoke("ping", config={"callbacks": [handler]}) == "pong"
        span = spans().one("text_completion")
        assert span.attributes["gen_ai.operation.name"] == "text_completion"
        assert span.kind == SpanKind.CLIENT

    def test_streaming_completion(self, handler, spans) -> None:
        llm = CharStreamLLM(response="abc")
        assert "".join(llm.stream("q", config={"callbacks": [handler]})) == "abc"
        span = spans().one("text_completion")
        assert len([e for e in span.events if e.name == "langchain.llm.new_token"]) == 3
        assert span.attributes["gen_ai.request.stream"] is True

    async def test_interleaved_streams_count_their_own_chunks(self, handler, spans) -> None:
        """Concurrent streams alternate chunk by chunk: each span gets exactly its own chunk events and count."""
        import asyncio

        async def consume(text: str) -> str:
            out = ""
            async for piece in CharStreamLLM(response=text).astream(text, config={"callbacks": [handler]}):
                out += piece
                await asyncio.sleep(0)  # let the other stream's chunk in between
            return out

        assert await asyncio.gather(consume("abcdef"), consume("xyz"), consume("pq")) == ["abcdef", "xyz", "pq"]
        counts = sorted((len([e for e in s.events if e.name == "langchain.llm.new_token"]),
                         s.attributes["langchain.stream.chunk_count"]) for s in spans().spans)
        assert counts == [(2, 2), (3, 3), (6, 6)]
        assert handler.open_runs == 0 and handler._runs.streaming[0] is None

    def test_chunks_after_the_end_change_nothing(self, handler, spans) -> None:
        run = uuid4()
        handler.raise_error = True
        handler.on_llm_start({}, ["q"], run_id=run)
        for token in "abc":
            handler.on_llm_new_token(token, run_id=run)
        assert handler._runs.streaming[0] is run  # the stream is on the fast path
        handler.on_llm_end(None, run_id=run)
        assert handler._runs.streaming[0] is None  # and off it once the run has ended
        for token in "late":
            handler.on_llm_new_token(token, run_id=run)
        span = spans().one("text_completion")
        assert len(span.events) == 3 and span.attributes["langchain.stream.chunk_count"] == 3

    def test_prompts_become_input_messages_with_capture(self, content_handler, spans) -> None:
        FakeListLLM(responses=["pong"]).invoke("ping", config={"callbacks": [content_handler]})
        attrs = spans().one("text_completion").attributes
        assert json.loads(attrs["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": "ping"}]}]
        out = json.loads(attrs["gen_ai.output.messages"])
        assert out[0]["parts"] == [{"type": "text", "content": "pong"}] and out[0]["role"] == "assistant"


class TestToolSpan:
    def test_tool_call_span(self, handler, spans) -> None:
        call = {"name": "multiply", "args": {"a": 6, "b": 7}, "id": "call_42", "type": "tool_call"}
        result = multiply.invoke(call, config={"callbacks": [handler]})
        assert result.content == "42"
        span = spans().one("execute_tool multiply")
        assert span.kind == SpanKind.INTERNAL
        assert span.attributes["gen_ai.tool.name"] == "multiply"
        assert span.attributes["gen_ai.tool.call.id"] == "call_42"
        assert span.attributes["gen_ai.tool.description"] == "Multiply two integers."
        assert span.attributes["gen_ai.tool.type"] == "function"
        assert "gen_ai.tool.call.arguments" not in span.attributes

    def test_arguments_and_result_as_json_with_capture(self, content_handler, spans) -> None:
        multiply.invoke({"a": 6, "b": 7}, config={"callbacks": [content_handler]})
        attrs = spans().one("execute_tool multiply").attributes
        assert json.loads(attrs["gen_ai.tool.call.arguments"]) == {"a": 6, "b": 7}
        assert json.loads(attrs["gen_ai.tool.call.result"]) == 42

    def test_tool_error(self, handler, spans) -> None:
        with pytest.raises(RuntimeError, match="tool broke"):
            explode.invoke({"x": "y"}, config={"callbacks": [handler]})
        span = spans().one("execute_tool explode")
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes["error.type"] == "RuntimeError"


class TestRetrieverSpan:
    def test_retrieval_span(self, handler, spans) -> None:
        retriever = TinyRetriever(docs=[Document("cats purr", id="d1"), Document("dogs bark", id="d2")])
        docs = retriever.invoke("cats", config={"callbacks": [handler]})
        assert len(docs) == 1
        span = spans().one("retrieval TinyRetriever")
        assert span.kind == SpanKind.CLIENT
        assert span.attributes["gen_ai.operation.name"] == "retrieval"
        assert span.attributes["gen_ai.data_source.id"] == "TinyRetriever"
        assert span.attributes["langchain.retrieval.document_count"] == 1
        assert "gen_ai.retrieval.query.text" not in span.attributes

    def test_query_and_documents_with_capture(self, content_handler, spans) -> None:
        retriever = TinyRetriever(docs=[Document("cats purr", id="d1", metadata={"score": 0.9})])
        retriever.invoke("cats", config={"callbacks": [content_handler]})
        attrs = spans().one("retrieval TinyRetriever").attributes
        assert attrs["gen_ai.retrieval.query.text"] == "cats"
        docs = json.loads(attrs["gen_ai.retrieval.documents"])
        assert docs == [{"id": "d1", "score": 0.9, "metadata": {"score": 0.9}, "content": "cats purr"}]


class TestAgentsAndGraphs:
    def test_create_agent_is_invoke_agent_with_token_totals(self, handler, spans) -> None:
        from langchain.agents import create_agent

        model = fake_chat(ai(tool_calls=[{"name": "multiply", "args": {"a": 2, "b": 3}, "id": "c1"}],
                             input_tokens=20, output_tokens=7), ai("6", input_tokens=30, output_tokens=2))
        agent = create_agent(model, tools=[multiply], name="math_agent")
        agent.invoke({"messages": [("human", "2*3?")]}, config={"callbacks": [handler],
                                                                "configurable": {"thread_id": "t-9"},
                                                                "metadata": {"thread_id": "t-9"}})
        tree = spans()
        root = tree.one("invoke_agent math_agent")
        assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert root.attributes["gen_ai.agent.name"] == "math_agent"
        assert root.attributes["langchain.usage.input_tokens"] == 50
        assert root.attributes["langchain.usage.output_tokens"] == 9
        assert root.attributes["langchain.usage.model_runs"] == 2
        assert root.attributes["gen_ai.conversation.id"] == "t-9"
        assert tree.one("execute_tool multiply").attributes["gen_ai.tool.call.id"] == "c1"
        assert {s.name for s in tree.spans} >= {"model", "tools", "chat"}
        assert all(not s.name.startswith("invoke_agent") for s in tree.spans if s is not root)

    def test_create_agent_without_a_name_is_still_an_agent(self, handler, spans) -> None:
        from langchain.agents import create_agent

        model = fake_chat(ai(tool_calls=[{"name": "multiply", "args": {"a": 2, "b": 3}, "id": "c1"}]), ai("6"))
        create_agent(model, tools=[multiply]).invoke({"messages": [("human", "2*3?")]},
                                                     config={"callbacks": [handler]})
        tree = spans()
        [root] = tree.roots()
        assert root.name == "invoke_agent"
        assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert "gen_ai.agent.name" not in root.attributes  # "LangGraph" is the graph's default name, not the agent's
        assert [s.name for s in tree.spans if s.name.startswith("invoke_")] == ["invoke_agent"]
        assert tree.parent(tree.one("execute_tool multiply")).name == "tools"

    def test_state_graph_root_is_invoke_workflow_nodes_keep_names(self, handler, spans) -> None:
        from typing import TypedDict

        from langgraph.graph import END, START, StateGraph

        class State(TypedDict):
            n: int

        graph = StateGraph(State)
        graph.add_node("double", lambda s: {"n": s["n"] * 2})
        graph.add_edge(START, "double")
        graph.add_edge("double", END)
        graph.compile(name="doubler").invoke({"n": 2}, config={"callbacks": [handler]})
        tree = spans()
        root = tree.one("invoke_workflow doubler")
        assert root.attributes["gen_ai.workflow.name"] == "doubler"
        assert tree.parent(tree.one("double")) is root

    def test_graph_interrupt_is_not_an_error(self, handler, spans) -> None:
        from typing import TypedDict

        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
        from langgraph.types import interrupt

        class State(TypedDict):
            answer: str

        def ask(state: State) -> State:
            return {"answer": interrupt("approve?")}

        graph = StateGraph(State)
        graph.add_node("ask", ask)
        graph.add_edge(START, "ask")
        graph.add_edge("ask", END)
        app = graph.compile(checkpointer=InMemorySaver(), name="approval")
        app.invoke({"answer": ""}, config={"callbacks": [handler], "configurable": {"thread_id": "1"}})
        tree = spans()
        node = tree.one("ask")
        assert node.status.status_code != StatusCode.ERROR
        assert "error.type" not in node.attributes
        assert [e.name for e in node.events] == ["langchain.graph.interrupt"]
        assert all(s.status.status_code != StatusCode.ERROR for s in tree.spans)


class TestEveryRun:
    def test_tags_metadata_and_conversation_id(self, handler, spans) -> None:
        cfg: RunnableConfig = {"callbacks": [handler], "tags": ["prod", "v2"],
                               "metadata": {"session_id": "s-1", "user": {"id": 7}, "n": 3, "flag": True}}
        RunnableLambda(identity).invoke(1, config=cfg)
        attrs = spans().one("identity").attributes
        assert attrs["langchain.tags"] == ("prod", "v2")
        assert attrs["langchain.metadata.session_id"] == "s-1"
        assert attrs["langchain.metadata.user"] == '{"id":7}'
        assert attrs["langchain.metadata.n"] == 3 and attrs["langchain.metadata.flag"] is True
        assert attrs["gen_ai.conversation.id"] == "s-1"
        assert attrs["langchain.run.type"] == "chain"
        assert len(attrs["langchain.run.id"]) == 36

    def test_metadata_attribute_count_is_bounded(self, tracer_provider, spans) -> None:
        handler = OpenTelemetryCallbackHandler(tracer_provider, max_metadata_attributes=5)
        handler.raise_error = True
        RunnableLambda(identity).invoke(1, config={"callbacks": [handler],
                                                   "metadata": {f"k{i}": i for i in range(200)}})
        attrs = spans().one("identity").attributes
        assert len([k for k in attrs if k.startswith("langchain.metadata.k")]) == 5
        assert attrs["langchain.metadata.dropped_count"] == 195

    def test_on_text_retry_and_custom_events(self, content_handler, spans) -> None:
        def emit(x: int, config: RunnableConfig) -> int:
            dispatch_custom_event("progress", {"done": 50}, config=config)
            return x

        RunnableLambda(emit).invoke(1, config={"callbacks": [content_handler]})
        run_id = uuid4()
        content_handler.on_chain_start(None, {}, run_id=run_id, name="manual")
        content_handler.on_text("some text", run_id=run_id)

        class Outcome:
            failed = True

            def exception(self) -> BaseException:
                return TimeoutError()

        class RetryState:
            attempt_number = 2
            outcome = Outcome()

        content_handler.on_retry(RetryState(), run_id=run_id)
        content_handler.on_chain_end({}, run_id=run_id)
        tree = spans()
        custom = tree.one("emit").events[0]
        assert custom.name == "langchain.custom_event"
        assert custom.attributes["langchain.custom_event.name"] == "progress"
        assert json.loads(custom.attributes["langchain.custom_event.data"]) == {"done": 50}
        manual = tree.one("manual").events
        assert [e.name for e in manual] == ["langchain.text", "langchain.retry"]
        assert manual[0].attributes["langchain.text"] == "some text"
        assert manual[1].attributes["langchain.retry.attempt"] == 2
        assert manual[1].attributes["langchain.retry.error"] == "TimeoutError"

    async def test_async_custom_event(self, handler, spans) -> None:
        async def emit(x: int, config: RunnableConfig) -> int:
            await adispatch_custom_event("step", {"i": 1}, config=config)
            return x

        await RunnableLambda(emit).ainvoke(1, config={"callbacks": [handler]})
        event = spans().one("emit").events[0]
        assert event.attributes["langchain.custom_event.name"] == "step"
        assert "langchain.custom_event.data" not in event.attributes

    def test_agent_action_and_finish_events(self, content_handler, spans) -> None:
        from types import SimpleNamespace

        run_id = uuid4()
        content_handler.on_chain_start({"id": ["langchain", "agents", "AgentExecutor"]}, {}, run_id=run_id)
        content_handler.on_agent_action(SimpleNamespace(tool="search", tool_input={"q": "x"}, log="thinking"),
                                        run_id=run_id)
        content_handler.on_agent_finish(SimpleNamespace(return_values={"output": "done"}, log=""), run_id=run_id)
        content_handler.on_chain_end({}, run_id=run_id)
        span = spans().one("invoke_agent AgentExecutor")
        action, finish = span.events
        assert action.attributes["langchain.agent.tool"] == "search"
        assert json.loads(action.attributes["langchain.agent.tool_input"]) == {"q": "x"}
        assert json.loads(finish.attributes["langchain.agent.output"]) == {"output": "done"}


class TestContentPolicy:
    def _run_everything(self, handler: OpenTelemetryCallbackHandler) -> None:
        from langchain.agents import create_agent

        model = fake_chat(ai(tool_calls=[{"name": "multiply", "args": {"a": 2, "b": 3}, "id": "c1"}]), ai("6"))
        create_agent(model, tools=[multiply], name="m", system_prompt="be exact").invoke(
            {"messages": [("human", "2*3?")]}, config={"callbacks": [handler]})
        TinyRetriever(docs=[Document("secret doc")]).invoke("secret", config={"callbacks": [handler]})
        list((ChatPromptTemplate.from_messages([("human", "{q}")]) | fake_chat(ai("streamed words"))).stream(
            {"q": "secret question"}, config={"callbacks": [handler]}))

    def test_nothing_recorded_by_default(self, handler, spans, monkeypatch) -> None:
        monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
        self._run_everything(handler)
        for span in spans().spans:
            assert not [k for k in span.attributes if k in CONTENT_KEYS], span.name
            for event in span.events:
                assert "langchain.chunk.text" not in event.attributes
            assert "secret" not in repr(dict(span.attributes))

    @pytest.mark.parametrize("value", ["true", "SPAN_ONLY", "span_and_event", "1"])
    def test_env_variable_turns_capture_on(self, tracer_provider, spans, monkeypatch, value: str) -> None:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
        handler = OpenTelemetryCallbackHandler(tracer_provider)
        handler.raise_error = True
        self._run_everything(handler)
        assert "gen_ai.input.messages" in spans().all("chat")[0].attributes

    def test_invalid_env_value_warns_and_stays_off(self, tracer_provider, monkeypatch, caplog) -> None:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "maybe")
        handler = OpenTelemetryCallbackHandler(tracer_provider)
        assert handler._capture is False
        assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" in caplog.text and "maybe" in caplog.text

    def test_semconv_message_shapes_when_on(self, content_handler, spans) -> None:
        self._run_everything(content_handler)
        tree = spans()
        first_chat = next(s for s in tree.all("chat") if "tool_call" in s.attributes["gen_ai.output.messages"])
        attrs = first_chat.attributes
        assert json.loads(attrs["gen_ai.system_instructions"]) == [{"type": "text", "content": "be exact"}]
        assert json.loads(attrs["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": "2*3?"}]}]
        assert json.loads(attrs["gen_ai.output.messages"]) == [{
            "role": "assistant", "finish_reason": "tool_call",
            "parts": [{"type": "tool_call", "id": "c1", "name": "multiply", "arguments": {"a": 2, "b": 3}}]}]
        second = next(s for s in tree.all("chat") if s is not first_chat and "tool_call_response"
                  in s.attributes["gen_ai.input.messages"])
        history = json.loads(second.attributes["gen_ai.input.messages"])
        assert history[-1] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "result": "6"}]}
        assert json.loads(tree.one("invoke_agent m").attributes["langchain.chain.inputs"])["messages"]

    def test_redaction_hook_applies_to_all_content_and_fails_closed(self, tracer_provider, spans) -> None:
        handler = OpenTelemetryCallbackHandler(tracer_provider, capture_content=True,
                                               redact=lambda s: s.replace("secret", "[redacted]"))
        handler.raise_error = True
        self._run_everything(handler)
        dump = "".join(repr(dict(s.attributes)) + repr([dict(e.attributes) for e in s.events]) for s in spans().spans)
        assert "secret" not in dump and "[redacted]" in dump

    def test_failing_redaction_drops_content(self, tracer_provider, spans) -> None:
        def bad(_: str) -> str:
            raise RuntimeError("hook bug")

        handler = OpenTelemetryCallbackHandler(tracer_provider, capture_content=True, redact=bad)
        handler.raise_error = True
        self._run_everything(handler)
        for span in spans().spans:
            assert not [k for k in span.attributes if k in CONTENT_KEYS]
            assert "secret" not in repr(dict(span.attributes))

    def test_long_values_truncated_and_json_kept_valid(self, tracer_provider, spans) -> None:
        handler = OpenTelemetryCallbackHandler(tracer_provider, capture_content=True, max_value_length=200)
        handler.raise_error = True
        RunnableLambda(identity).invoke({"text": "é" * 5000, "n": [1] * 500},
                                        config={"callbacks": [handler], "metadata": {"big": "m" * 1000}})
        attrs = spans().one("identity").attributes
        for key in ("langchain.chain.inputs", "langchain.chain.outputs"):
            assert len(attrs[key]) <= 200
            assert isinstance(json.loads(attrs[key]), dict)
        assert len(attrs["langchain.metadata.big"]) <= 200
