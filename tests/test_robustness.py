"""Never break the application: whatever LangChain passes, in whatever order, from whatever thread, no exception
from the handler reaches the caller, every span it starts is ended exactly once, and internal failures are logged
once per kind.

Most tests run the handler with ``raise_error=True`` (the guard re-raises), so they prove the handler's own code does
not raise, not merely that the guard swallows it. The tests about broken internals run with the default
``raise_error=False`` and check the guard: nothing raises, spans still end, one warning per kind.

Bugs found by fuzzing are pinned by the ``test_bug_*`` tests at the end of this file: each failed before its fix.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import RunnableLambda
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import StatusCode

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.runs import registry as _runs

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Ledger(SpanProcessor):
    """Counts span starts and ends by span id (thread-safe); keeps the finished spans."""

    def __init__(self) -> None:
        self.started: dict[int, str] = {}
        self.ended: Counter[int] = Counter()
        self.finished: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            self.started[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended[span.context.span_id] += 1
            self.finished.append(span)

    def unended(self) -> list[str]:
        with self._lock:
            return [name for sid, name in self.started.items() if sid not in self.ended]

    def ended_twice(self) -> list[int]:
        with self._lock:
            return [sid for sid, n in self.ended.items() if n != 1]

    def one(self, name: str) -> ReadableSpan:
        found = [s for s in self.finished if s.name == name]
        assert len(found) == 1, f"expected one {name!r}, got {[s.name for s in self.finished]}"
        return found[0]

    def assert_balanced(self) -> None:
        assert self.unended() == [], "spans started but never ended"
        assert self.ended_twice() == [], "spans ended more than once"

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class SdkWarnings(logging.Handler):
    """SDK warnings that mean we misused a span: ended twice, written after end, invalid attribute."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def invalid_attribute(value: Any) -> str | None:
    """Why ``value`` is not a valid OpenTelemetry attribute value (primitive or homogeneous sequence), else None."""
    if isinstance(value, bool | str):
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else f"int out of int64 range ({len(str(value))} digits)"
    if isinstance(value, float):
        return None
    if isinstance(value, tuple | list):
        kinds = {bool if isinstance(v, bool) else type(v) for v in value}
        if len(kinds) > 1:
            return f"heterogeneous sequence {sorted(k.__name__ for k in kinds)}"
        for item in value:
            if isinstance(item, tuple | list):
                return "nested sequence"
            why = invalid_attribute(item)
            if why:
                return why
        return None
    return f"type {type(value).__name__}"


def attribute_problems(spans: list[ReadableSpan], max_len: int, *, skip_exception_events: bool = True) -> list[str]:
    """Invalid types and over-long strings among span and span-event attributes.

    The SDK's own ``exception`` event (message, stacktrace) is skipped by default: we do not write those values.
    """
    problems: list[str] = []

    def check(where: str, attrs: Any) -> None:
        for key, value in (attrs or {}).items():
            why = invalid_attribute(value)
            if why:
                problems.append(f"{where} {key}: {why}")
                continue
            for item in value if isinstance(value, tuple | list) else (value,):
                if isinstance(item, str) and len(item) > max_len:
                    problems.append(f"{where} {key}: {len(item)} chars > {max_len}")

    for span in spans:
        check(span.name[:60], span.attributes)
        for event in span.events:
            if skip_exception_events and event.name == "exception":
                continue
            check(f"{span.name[:60]}/{event.name}", event.attributes)
    return problems


@pytest.fixture(name="ledger")
def _ledger() -> Ledger:
    return Ledger()


@pytest.fixture(name="provider")
def _provider(ledger: Ledger) -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(ledger)
    yield provider
    provider.shutdown()


@pytest.fixture(name="sdk_warnings")
def _sdk_warnings() -> Iterator[SdkWarnings]:
    capture = SdkWarnings()
    loggers = [logging.getLogger(name) for name in ("opentelemetry.sdk.trace", "opentelemetry.attributes")]
    for lg in loggers:
        lg.addHandler(capture)
    yield capture
    for lg in loggers:
        lg.removeHandler(capture)


@pytest.fixture(autouse=True)
def _no_leaked_open_runs() -> Iterator[None]:
    """Runs a test leaves open stay in the process-wide registry; drop them so other tests are unaffected."""
    before = set(_runs._OPEN)
    yield
    for run_id in set(_runs._OPEN) - before:
        _runs._OPEN.pop(run_id, None)


def make_handler(provider: TracerProvider, *, capture: bool = False, raise_error: bool = True,
                 **kwargs: Any) -> OpenTelemetryCallbackHandler:
    handler = OpenTelemetryCallbackHandler(provider, capture_content=capture, **kwargs)
    handler.raise_error = raise_error
    return handler


def llm_result(text: str = "ok") -> LLMResult:
    message = AIMessage(text, usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
                        response_metadata={"model_name": "m", "finish_reason": "stop"})
    return LLMResult(generations=[[ChatGeneration(message=message)]])


def every_run_kind(handler: OpenTelemetryCallbackHandler, *, error: bool = False) -> int:
    """Start and end (or fail) one run of each kind under a root chain, with realistic arguments; runs started."""
    root = uuid4()
    handler.on_chain_start({"name": "root"}, {"q": "hello"}, run_id=root, tags=["t"], metadata={"thread_id": "th"})
    kids = [uuid4() for _ in range(4)]
    handler.on_chat_model_start({"name": "Chat"}, [[SystemMessage("be brief"), HumanMessage("hi")]], run_id=kids[0],
                                parent_run_id=root, invocation_params={"model": "m", "temperature": 0.1},
                                metadata={"ls_provider": "openai"})
    handler.on_llm_new_token("o", run_id=kids[0])
    handler.on_llm_start({"name": "LLM"}, ["prompt"], run_id=kids[1], parent_run_id=root)
    handler.on_tool_start({"name": "tool", "description": "d"}, '{"a": 1}', run_id=kids[2], parent_run_id=root,
                          inputs={"a": 1})
    handler.on_retriever_start({"name": "ret"}, "query", run_id=kids[3], parent_run_id=root)
    handler.on_text("text", run_id=root)
    handler.on_custom_event("custom", {"k": 1}, run_id=root)
    handler.on_agent_action(SimpleNamespace(tool="tool", tool_input={"a": 1}, log="l"), run_id=root)
    if error:
        boom = RuntimeError("boom")
        handler.on_llm_error(boom, run_id=kids[0])
        handler.on_llm_error(boom, run_id=kids[1])
        handler.on_tool_error(boom, run_id=kids[2])
        handler.on_retriever_error(boom, run_id=kids[3])
        handler.on_chain_error(boom, run_id=root)
    else:
        handler.on_llm_end(llm_result(), run_id=kids[0])
        handler.on_llm_end(llm_result(), run_id=kids[1])
        handler.on_tool_end("result", run_id=kids[2])
        handler.on_retriever_end([Document("doc")], run_id=kids[3])
        handler.on_agent_finish(SimpleNamespace(return_values={"o": 1}, log=""), run_id=root)
        handler.on_chain_end({"a": "answer"}, run_id=root)
    return 5


# --- odd arguments ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("capture", [False, True], ids=["capture-off", "capture-on"])
def test_none_wherever_a_dict_or_list_is_expected(provider, ledger, sdk_warnings, capture: bool) -> None:
    handler = make_handler(provider, capture=capture)
    ids = [uuid4() for _ in range(5)]
    handler.on_chain_start(None, None, run_id=ids[0], parent_run_id=None, tags=None, metadata=None)
    handler.on_chat_model_start(None, None, run_id=ids[1], parent_run_id=ids[0], tags=None, metadata=None,  # type: ignore[arg-type]
                                invocation_params=None)
    handler.on_llm_start(None, None, run_id=ids[2], parent_run_id=ids[0], invocation_params=None)  # type: ignore[arg-type]
    handler.on_tool_start(None, None, run_id=ids[3], parent_run_id=ids[0], inputs=None)  # type: ignore[arg-type]
    handler.on_retriever_start(None, None, run_id=ids[4], parent_run_id=ids[0])  # type: ignore[arg-type]
    handler.on_llm_new_token(None, chunk=None, run_id=ids[1])
    handler.on_stream_event(None, run_id=ids[1])
    handler.on_agent_action(None, run_id=ids[0])
    handler.on_agent_finish(None, run_id=ids[0])
    handler.on_text(None, run_id=ids[0])
    handler.on_retry(None, run_id=ids[0])  # type: ignore[arg-type]
    handler.on_custom_event(None, None, run_id=ids[0])  # type: ignore[arg-type]
    handler.on_llm_end(None, run_id=ids[1])
    handler.on_llm_end(LLMResult.model_construct(generations=[[None], None], llm_output=None), run_id=ids[2])
    handler.on_tool_end(None, run_id=ids[3])
    handler.on_retriever_end(None, run_id=ids[4])  # type: ignore[arg-type]
    handler.on_chain_end(None, run_id=ids[0])
    assert len(ledger.finished) == 5
    ledger.assert_balanced()
    assert handler.open_runs == 0
    assert attribute_problems(ledger.finished, handler._max_len) == []
    assert sdk_warnings.messages == []


def test_run_ids_that_are_not_uuids(provider, ledger, caplog) -> None:
    """An id that is not a UUID: as a parent it is an unknown parent (the run is a root), as a run id the callback
    does nothing and says so once; nothing raises into the chain."""
    handler = make_handler(provider, raise_error=False)
    child = uuid4()
    with caplog.at_level(logging.WARNING, logger="otel_callbacks"):
        handler.on_chain_start({}, {}, run_id=child, parent_run_id="not-a-uuid")  # type: ignore[arg-type]
        handler.on_chain_end({}, run_id=child)
        for _ in range(2):
            handler.on_chain_start({}, {}, run_id="run-1")  # type: ignore[arg-type]
            handler.on_llm_new_token("t", run_id="run-1")  # type: ignore[arg-type]
            handler.on_chain_end({}, run_id="run-1")  # type: ignore[arg-type]
    (span,) = ledger.finished
    assert span.parent is None
    warned = [r.getMessage() for r in caplog.records if r.name == "otel_callbacks"]
    assert len(warned) == 3 and all("failed (AttributeError)" in m for m in warned)  # once per callback kind
    assert handler.open_runs == 0


def test_odd_shapes_in_every_argument(provider, ledger, sdk_warnings) -> None:
    """Wrong types everywhere a mapping/list/str is expected: lists for dicts, ints for names, sets for tags."""
    handler = make_handler(provider, capture=True)
    root, chat, tool = uuid4(), uuid4(), uuid4()
    handler.on_chain_start(["not", "a", "dict"], 42, run_id=root, tags={"set-of-tags"}, metadata=["x"],  # type: ignore[arg-type]
                           name=123, run_type=None)
    handler.on_chat_model_start({"name": 5, "id": "notalist", "kwargs": "no"}, [["plain string", ("ai", None)], 7],  # type: ignore[list-item]
                                run_id=chat, parent_run_id=root, metadata={"ls_provider": 9, "ls_temperature": "hot"},
                                invocation_params={"model": ["m"], "stop": [1, 2], "tools": "nope", "base_url": 5})
    handler.on_tool_start({"description": None}, b"bytes", run_id=tool, parent_run_id=root, inputs=["list"],  # type: ignore[arg-type]
                          tool_call_id=7, name=None)
    handler.on_llm_end({"generations": "nope", "llm_output": []}, run_id=chat)
    handler.on_tool_end(SimpleNamespace(tool_call_id="c", content=b"\x00\xff"), run_id=tool)
    handler.on_chain_end(object(), run_id=root)
    ledger.assert_balanced()
    assert len(ledger.finished) == 3
    assert attribute_problems(ledger.finished, handler._max_len) == []
    assert sdk_warnings.messages == []


# --- lifecycle out of order ------------------------------------------------------------------------------------------
def test_unknown_run_ids_are_ignored(provider, ledger) -> None:
    handler = make_handler(provider, capture=True)
    unknown = uuid4()
    handler.on_chain_end({}, run_id=unknown)
    handler.on_llm_end(llm_result(), run_id=unknown)
    handler.on_tool_end("x", run_id=unknown)
    handler.on_retriever_end([], run_id=unknown)
    for on_error in (handler.on_chain_error, handler.on_llm_error, handler.on_tool_error, handler.on_retriever_error):
        on_error(ValueError("x"), run_id=unknown)
    handler.on_llm_new_token("t", run_id=unknown)
    handler.on_stream_event({"event": "x"}, run_id=unknown)
    handler.on_text("t", run_id=unknown)
    handler.on_custom_event("e", {}, run_id=unknown)
    handler.on_agent_action(SimpleNamespace(tool="t"), run_id=unknown)
    # a child whose parent was never seen becomes a root, and still ends
    child = uuid4()
    handler.on_tool_start({"name": "orphan"}, "x", run_id=child, parent_run_id=uuid4())
    handler.on_tool_end("y", run_id=child)
    assert [s.name for s in ledger.finished] == ["execute_tool orphan"]
    assert ledger.finished[0].parent is None
    ledger.assert_balanced()


def test_end_twice_error_after_end_start_twice(provider, ledger, sdk_warnings) -> None:
    handler = make_handler(provider)
    run_id = uuid4()
    handler.on_chain_start({"name": "once"}, {}, run_id=run_id)
    handler.on_chain_start({"name": "again"}, {}, run_id=run_id)  # a second start of the same run is ignored
    handler.on_chain_end({}, run_id=run_id)
    handler.on_chain_end({}, run_id=run_id)
    handler.on_chain_error(RuntimeError("late"), run_id=run_id)
    handler.on_llm_end(llm_result(), run_id=run_id)
    handler.on_text("after end", run_id=run_id)
    span = ledger.one("once")
    assert span.status.status_code == StatusCode.OK
    assert span.events == ()
    assert "error.type" not in (span.attributes or {})
    ledger.assert_balanced()
    assert sdk_warnings.messages == []  # no "end() on an ended span", no "setting attribute on ended span"


def test_error_then_end_keeps_the_error(provider, ledger) -> None:
    handler = make_handler(provider)
    run_id = uuid4()
    handler.on_tool_start({"name": "t"}, "x", run_id=run_id)
    handler.on_tool_error(ValueError("bad"), run_id=run_id)
    handler.on_tool_end("late result", run_id=run_id)
    span = ledger.one("execute_tool t")
    assert span.status.status_code == StatusCode.ERROR
    ledger.assert_balanced()


def test_out_of_order_parent_before_child_and_child_after_parent(provider, ledger) -> None:
    handler = make_handler(provider)
    parent, child, late = uuid4(), uuid4(), uuid4()
    handler.on_chain_start({"name": "parent"}, {}, run_id=parent)
    handler.on_chain_start({"name": "child"}, {}, run_id=child, parent_run_id=parent)
    handler.on_chain_end({}, run_id=parent)  # parent ends first
    handler.on_chain_start({"name": "late"}, {}, run_id=late, parent_run_id=parent)  # parent already gone
    handler.on_chain_end({}, run_id=child)
    handler.on_chain_end({}, run_id=late)
    ledger.assert_balanced()
    p, c = ledger.one("parent"), ledger.one("child")
    assert c.parent is not None and c.parent.span_id == p.context.span_id
    assert handler.open_runs == 0
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left attached in the caller's context


def test_callbacks_from_other_threads(provider, ledger) -> None:
    """Start on one thread, stream and end on others; end one run from 8 threads at once: one span, ended once."""
    handler = make_handler(provider)
    runs = [uuid4() for _ in range(50)]
    for run_id in runs:
        handler.on_llm_start({"name": "m"}, ["p"], run_id=run_id)
    errors: list[BaseException] = []

    def worker(chunk: list[UUID]) -> None:
        try:
            for run_id in chunk:
                handler.on_llm_new_token("x", run_id=run_id)
                handler.on_llm_end(llm_result(), run_id=run_id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(runs[i::5],)) for i in range(5)]
    contested = uuid4()
    handler.on_chain_start({"name": "contested"}, {}, run_id=contested)
    barrier = threading.Barrier(8)

    def end_contested() -> None:
        try:
            barrier.wait()
            handler.on_chain_end({}, run_id=contested)
        except BaseException as exc:
            errors.append(exc)

    threads += [threading.Thread(target=end_contested) for _ in range(8)]
    # and a run started on a worker thread, ended on this one
    started_elsewhere = uuid4()
    starter = threading.Thread(target=handler.on_tool_start, args=({"name": "elsewhere"}, "x"),
                               kwargs={"run_id": started_elsewhere})
    threads.append(starter)
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    handler.on_tool_end("y", run_id=started_elsewhere)
    assert errors == []
    assert len(ledger.finished) == 52
    ledger.assert_balanced()
    assert handler.open_runs == 0
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_async_end_in_another_task(provider, ledger) -> None:
    import asyncio

    handler = make_handler(provider)
    run_id = uuid4()
    handler.on_chain_start({"name": "a"}, {}, run_id=run_id)

    async def end() -> None:
        handler.on_chain_end({}, run_id=run_id)

    await asyncio.create_task(end())
    ledger.assert_balanced()
    assert handler.open_runs == 0


def test_real_chain_with_every_run_kind_direct_calls(provider, ledger, sdk_warnings) -> None:
    handler = make_handler(provider, capture=True)
    every_run_kind(handler)
    every_run_kind(handler, error=True)
    ledger.assert_balanced()
    assert len(ledger.finished) == 10
    assert attribute_problems(ledger.finished, handler._max_len) == []
    assert sdk_warnings.messages == []


# --- broken internals: the guard -------------------------------------------------------------------------------------
def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("internal bug")


# Every function of the handler's pipeline, broken one at a time.
BREAKABLE = [
    "otel_callbacks.handler.handler._mapping.serialized_name",
    "otel_callbacks.handler.handler._mapping.chain_span",
    "otel_callbacks.handler.handler._mapping.llm_span",
    "otel_callbacks.handler.handler._response.llm_response_attributes",
    "otel_callbacks.handler.handler._mapping.tool_span",
    "otel_callbacks.handler.handler._mapping.retriever_span",
    "otel_callbacks.handler.handler._mapping.error_type",
    "otel_callbacks.handler.handler._mapping.is_control_flow",
    "otel_callbacks.handler.handler._messages.input_messages",
    "otel_callbacks.handler.handler._messages.output_messages",
    "otel_callbacks.handler.handler._messages.tool_arguments",
    "otel_callbacks.handler.handler._messages.documents",
    "otel_callbacks.handler.handler.json_attribute",
    "otel_callbacks.handler.handler.text_attribute",
    "otel_callbacks.handler.events.json_attribute",
    "otel_callbacks.handler.events.text_attribute",
    "otel_callbacks.handler.handler.enter",
    "otel_callbacks.handler.handler.lookup",
    "otel_callbacks.handler.handler.root_context",
]
# Failing after the span started: the run must still be registered so that its end ends the span.
LEAKS_SPAN = [
    "otel_callbacks.handler.handler._mapping.run_attributes",
    "otel_callbacks.handler.handler._mapping.llm_request_attributes",
    "otel_callbacks.handler.handler.leave",
]


@pytest.mark.parametrize("target", [*BREAKABLE, *LEAKS_SPAN])
def test_broken_internals_never_raise_and_spans_still_end(provider, ledger, monkeypatch, caplog, target: str) -> None:
    monkeypatch.setattr(target, _boom)
    handler = make_handler(provider, capture=True, raise_error=False)
    with caplog.at_level(logging.WARNING, logger="otel_callbacks"):
        for _ in range(3):
            every_run_kind(handler)
            every_run_kind(handler, error=True)
    ours = [r for r in caplog.records if r.name == "otel_callbacks"]
    kinds = Counter(r.getMessage().split(" failed")[0] for r in ours)
    assert ours, f"breaking {target} went unnoticed"
    assert all(n == 1 for n in kinds.values()), f"a failure kind was logged more than once: {kinds}"
    assert handler.open_runs == 0
    ledger.assert_balanced()


def test_failures_logged_once_per_kind(provider, ledger, monkeypatch, caplog) -> None:
    monkeypatch.setattr("otel_callbacks.handler.handler._mapping.chain_span", _boom)
    monkeypatch.setattr("otel_callbacks.handler.handler._response.llm_response_attributes", _boom)
    handler = make_handler(provider, raise_error=False)
    with caplog.at_level(logging.DEBUG, logger="otel_callbacks"):
        for _ in range(100):
            handler.on_chain_start({"name": "c"}, {}, run_id=uuid4())
            run_id = uuid4()
            handler.on_llm_start({"name": "m"}, ["p"], run_id=run_id)
            handler.on_llm_end(llm_result(), run_id=run_id)
    warnings = [r for r in caplog.records if r.name == "otel_callbacks" and r.levelno == logging.WARNING]
    assert sorted(r.getMessage().split(" failed")[0] for r in warnings) == [
        "otel-callbacks: on_chain_start", "otel-callbacks: on_llm_end"]
    assert all(r.exc_info for r in warnings)  # the first of each kind carries the traceback
    debug = [r for r in caplog.records if r.name == "otel_callbacks" and r.levelno == logging.DEBUG]
    assert len(debug) == 198  # the repeats go to DEBUG
    assert len(ledger.finished) == 100  # every model span still ended despite the broken end mapping
    ledger.assert_balanced()


def test_a_different_exception_type_is_a_different_kind(provider, monkeypatch, caplog) -> None:
    errors = iter([ValueError("a"), ValueError("b"), KeyError("c"), KeyError("d")])

    def raise_next(*args: Any, **kwargs: Any) -> Any:
        raise next(errors)

    monkeypatch.setattr("otel_callbacks.handler.handler._mapping.chain_span", raise_next)
    handler = make_handler(provider, raise_error=False)
    with caplog.at_level(logging.WARNING, logger="otel_callbacks"):
        for _ in range(4):
            handler.on_chain_start({}, {}, run_id=uuid4())
    assert len([r for r in caplog.records if r.name == "otel_callbacks"]) == 2


def test_real_chain_survives_broken_handler_with_default_raise_error(provider, ledger, monkeypatch, caplog) -> None:
    """Through LangChain itself: the chain's result is unchanged and LangChain has nothing to log (our guard caught)."""
    monkeypatch.setattr("otel_callbacks.handler.handler._mapping.chain_span", _boom)
    handler = OpenTelemetryCallbackHandler(provider)
    assert handler.raise_error is False
    chain = RunnableLambda(lambda x: x + 1) | RunnableLambda(lambda x: x * 2)
    with caplog.at_level(logging.WARNING):
        assert [chain.invoke(i, config={"callbacks": [handler]}) for i in range(5)] == [2, 4, 6, 8, 10]
    assert not [r for r in caplog.records if r.name.startswith("langchain")]
    assert len([r for r in caplog.records if r.name == "otel_callbacks"]) == 1


def test_raising_span_processor_does_not_break_the_chain(monkeypatch, caplog) -> None:
    class Raising(SpanProcessor):
        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            raise RuntimeError("processor on_start")

        def on_end(self, span: ReadableSpan) -> None:
            raise RuntimeError("processor on_end")

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(Raising())
    handler = OpenTelemetryCallbackHandler(provider)
    chain = RunnableLambda(lambda x: x + 1)
    with caplog.at_level(logging.WARNING):
        assert [chain.invoke(i, config={"callbacks": [handler]}) for i in range(20)] == list(range(1, 21))
    assert handler.open_runs == 0
    assert len([r for r in caplog.records if r.name == "otel_callbacks"]) <= 2  # once per kind (start, end)
    provider.shutdown()


# --- known bugs ------------------------------------------------------------------------------------------------------
class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")

    __repr__ = __str__


@pytest.mark.parametrize("key", ["thread_id", "n"])
def test_bug_huge_int_in_metadata(provider, ledger, key: str) -> None:
    handler = make_handler(provider)
    run_id = uuid4()
    handler.on_chain_start({"name": "c"}, {}, run_id=run_id, metadata={key: 10**5000})
    handler.on_chain_end({}, run_id=run_id)
    ledger.assert_balanced()
    assert ledger.one("c").attributes


def test_bug_huge_int_float_param_raises(provider, ledger) -> None:
    handler = make_handler(provider)
    run_id = uuid4()
    handler.on_chat_model_start({}, [[HumanMessage("hi")]], run_id=run_id, invocation_params={"temperature": 10**400})
    handler.on_llm_end(llm_result(), run_id=run_id)


@pytest.mark.parametrize("where", ["max_tokens", "seed", "usage"])
def test_bug_int_attributes_out_of_int64_range(provider, ledger, where: str) -> None:
    handler = make_handler(provider)
    root, run_id = uuid4(), uuid4()
    handler.on_chain_start({"name": "root"}, {}, run_id=root)
    params = {where: 2**70} if where != "usage" else {}
    handler.on_chat_model_start({}, [[HumanMessage("hi")]], run_id=run_id, parent_run_id=root,
                                invocation_params=params)
    result = llm_result()
    if where == "usage":
        message = AIMessage("x", usage_metadata={"input_tokens": 2**70, "output_tokens": 1, "total_tokens": 1})
        result = LLMResult(generations=[[ChatGeneration(message=message)]])
    handler.on_llm_end(result, run_id=run_id)
    handler.on_chain_end({}, run_id=root)
    assert attribute_problems(ledger.finished, handler._max_len) == []


def test_bug_exception_with_raising_str(provider, ledger) -> None:
    handler = make_handler(provider)
    run_id = uuid4()
    handler.on_chain_start({"name": "c"}, {}, run_id=run_id)
    handler.on_chain_error(StrRaises(), run_id=run_id)


@pytest.mark.parametrize("where", ["content-block", "role", "finish-reason", "doc-id"])
def test_bug_unprintable_objects_in_messages(provider, ledger, where: str) -> None:
    handler = make_handler(provider, capture=True)
    run_id = uuid4()
    if where == "doc-id":
        handler.on_retriever_start({"name": "r"}, "q", run_id=run_id)
        handler.on_retriever_end([SimpleNamespace(id=Unprintable(), page_content="x", metadata={})], run_id=run_id)
        return
    messages: Any = [[("human", [Unprintable()])]] if where == "content-block" else [[(Unprintable(), "hi")]]
    if where == "finish-reason":
        messages = [[HumanMessage("hi")]]
    handler.on_chat_model_start({}, messages, run_id=run_id)
    message = AIMessage("x", response_metadata={"finish_reason": Unprintable()})
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=run_id)


LONG = "x" * 100_000


@pytest.mark.parametrize("where", ["model", "response", "tool", "retriever", "stop", "agent", "run_type",
                                   "stream_event", "provider"])
def test_bug_identifier_attributes_not_truncated(provider, ledger, where: str) -> None:
    handler = make_handler(provider, max_value_length=1024)
    run_id = uuid4()
    if where in ("model", "stop", "response", "stream_event", "provider"):
        params = {"model": LONG} if where == "model" else {"stop": [LONG]} if where == "stop" else {}
        meta = {"ls_provider": LONG} if where == "provider" else {}
        handler.on_chat_model_start({}, [[HumanMessage("hi")]], run_id=run_id, invocation_params=params,
                                    metadata=meta)
        if where == "stream_event":
            handler.on_stream_event({"event": LONG}, run_id=run_id)
        result = llm_result()
        if where == "response":
            message = AIMessage("x", id="chatcmpl-" + LONG,
                                response_metadata={"model_name": LONG, "finish_reason": LONG})
            result = LLMResult(generations=[[ChatGeneration(message=message)]])
        handler.on_llm_end(result, run_id=run_id)
    elif where == "tool":
        handler.on_tool_start({"name": LONG, "description": LONG}, "x", run_id=run_id, tool_call_id=LONG)
        handler.on_tool_end("y", run_id=run_id)
    elif where == "retriever":
        handler.on_retriever_start({"name": LONG}, "q", run_id=run_id)
        handler.on_retriever_end([], run_id=run_id)
    else:
        serialized = {"id": ["langchain", "agents", "AgentExecutor"]} if where == "agent" else {}
        handler.on_chain_start(serialized, {}, run_id=run_id, name=LONG if where == "agent" else "c",
                               run_type=LONG if where == "run_type" else None)
        handler.on_chain_end({}, run_id=run_id)
    ledger.assert_balanced()
    assert attribute_problems(ledger.finished, handler._max_len) == []


def test_error_with_raising_str_is_contained_by_default(provider, ledger, caplog) -> None:
    """The same unprintable exception with the default raise_error: contained, span ended with status ERROR."""
    handler = make_handler(provider, raise_error=False)
    run_id = uuid4()
    handler.on_chain_start({"name": "c"}, {}, run_id=run_id)
    handler.on_chain_error(StrRaises(), run_id=run_id)
    assert ledger.one("c").status.status_code == StatusCode.ERROR
    ledger.assert_balanced()



def test_every_callback_is_guarded(provider, caplog) -> None:
    """Each ``on_*`` method of the handler, by decorator or inline, keeps an internal failure from the caller and
    logs it once under its own name (an id without ``.int`` makes every one of them fail inside)."""
    handler = make_handler(provider, raise_error=False)
    callbacks = sorted(name for name in dir(handler) if name.startswith("on_") and callable(getattr(handler, name)))
    assert {"on_chain_start", "on_llm_end", "on_llm_new_token", "on_tool_error", "on_custom_event"} <= set(callbacks)
    bad_id = object()
    with caplog.at_level(logging.WARNING, logger="otel_callbacks"):
        for _ in range(2):
            for name in callbacks:
                positional = {"on_custom_event": ("name", None), "on_llm_new_token": ("t",)}.get(name)
                if positional is None:
                    positional = (RuntimeError("x"),) if name.endswith("_error") else (None,) * (
                        2 if name.endswith("_start") else 1)
                getattr(handler, name)(*positional, run_id=bad_id, parent_run_id=None)
    logged = Counter(r.getMessage().split(" failed")[0].removeprefix("otel-callbacks: ")
                     for r in caplog.records if r.name == "otel_callbacks")
    assert logged == dict.fromkeys(callbacks, 1)
