"""Never break the application: whatever LangChain passes, in whatever order, from whatever thread, no exception
from the handler reaches the caller, every span it starts is ended exactly once, and internal failures are logged
once per kind.

Every test runs on both emission paths, lean spans ("fast", where the installed SDK has it) and the SDK's own Span
("sdk"), and the spans are audited the same way on both (``tests.support.SpanAudit``): by span id in a span
processor (each started span ended exactly once), and by a log tap on every logger (the two paths log "Calling end()
on an ended span." on different loggers, and a second ``end()`` returns before any processor runs).
``test_audit_catches_a_double_end`` proves the audit sees a double end on each path. After each test nothing may be
left current in the caller's context.

Most tests run the handler with ``raise_error=True`` (the guard re-raises), so they prove the handler's own code does
not raise, not merely that the guard swallows it. The tests about broken internals run with the default
``raise_error=False`` and check the guard: nothing raises, spans still end, one warning per kind.

Bugs found by fuzzing are pinned by the ``test_bug_*`` tests at the end of this file: each failed before its fix.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import types
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
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import StatusCode

from otel_callbacks import OpenTelemetryCallbackHandler
from tests.support import SpanAudit, attribute_problems, available_emission_paths, use_emission_path


@pytest.fixture(name="path", autouse=True, params=available_emission_paths())
def _path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both emission paths, chosen before any handler is made; ``SpanAudit.assert_path`` checks
    the spans really came from the one meant."""
    use_emission_path(monkeypatch, request.param)
    return str(request.param)


@pytest.fixture(name="ledger")
def _ledger(path: str) -> Iterator[SpanAudit]:
    with SpanAudit(path) as audit:
        yield audit
    # a safety net for a test that forgets assert_balanced: a double end is an error of any test
    assert audit.ended_twice() == [] and audit.ended_span_warnings() == []


@pytest.fixture(name="provider")
def _provider(ledger: SpanAudit) -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(ledger)
    yield provider
    provider.shutdown()


@pytest.fixture(autouse=True)
def _caller_context_restored() -> Iterator[None]:
    """Once a test's runs have ended, the caller's context is as it was: no span left current. Checked after each
    test (a failure names the test that left one), and restored so that one leak cannot make later tests fail."""
    before = otel_context.get_current()
    yield
    leaked = trace.get_current_span()
    otel_context.attach(before)
    assert leaked is trace.get_current_span(before), f"the test left {leaked!r} current in the caller's context"


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
def test_none_wherever_a_dict_or_list_is_expected(provider, ledger, capture: bool) -> None:
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
    assert trace.get_current_span() is trace.INVALID_SPAN  # every run ended: nothing left current
    assert attribute_problems(ledger.finished, handler._max_len) == []
    assert ledger.logs.messages() == []  # from any logger: no SDK or lean-span complaint


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
    ledger.assert_balanced()
    warned = [r.getMessage() for r in caplog.records if r.name == "otel_callbacks"]
    assert len(warned) == 3 and all("failed (AttributeError)" in m for m in warned)  # once per callback kind
    assert handler.open_runs == 0


def test_odd_shapes_in_every_argument(provider, ledger) -> None:
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
    assert ledger.logs.messages() == []  # from any logger: no SDK or lean-span complaint


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


def test_end_twice_error_after_end_start_twice(provider, ledger) -> None:
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
    assert ledger.logs.messages() == []  # no "end() on an ended span", no "setting attribute on ended span"


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
    assert ledger.names() == ["a"]
    ledger.assert_balanced()
    assert handler.open_runs == 0


def test_real_chain_with_every_run_kind_direct_calls(provider, ledger) -> None:
    handler = make_handler(provider, capture=True)
    every_run_kind(handler)
    every_run_kind(handler, error=True)
    ledger.assert_balanced()
    assert len(ledger.finished) == 10
    assert attribute_problems(ledger.finished, handler._max_len) == []
    assert ledger.logs.messages() == []  # from any logger: no SDK or lean-span complaint


# --- broken internals: the guard -------------------------------------------------------------------------------------
def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("internal bug")


def break_function(monkeypatch: pytest.MonkeyPatch, target: str, replacement: Any = _boom) -> None:
    """Replace ``"module:name"`` (or ``"module:Class.method"``) where it is defined and in every ``otel_callbacks``
    module that imported it by name, so the break reaches each caller whichever module of the package it is in."""
    module_name, _, qualname = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)  # AttributeError if the target is gone: fix the list, do not skip
    monkeypatch.setattr(owner, name, replacement)
    if path:
        return
    for mod_name, module in list(sys.modules.items()):
        if mod_name.startswith("otel_callbacks") and module is not owner and getattr(module, name, None) is original:
            monkeypatch.setattr(module, name, replacement)


# Every function of the handler's pipeline, broken one at a time.
BREAKABLE = [
    "otel_callbacks.mapping.spans:serialized_name",
    "otel_callbacks.mapping.spans:chain_span",
    "otel_callbacks.mapping.spans:llm_span",
    "otel_callbacks.mapping.response:llm_response_attributes",
    "otel_callbacks.mapping.spans:tool_span",
    "otel_callbacks.mapping.spans:retriever_span",
    "otel_callbacks.mapping.errors:error_type",
    "otel_callbacks.mapping.errors:is_control_flow",
    "otel_callbacks.mapping.messages:input_messages",
    "otel_callbacks.mapping.messages:output_messages",
    "otel_callbacks.mapping.messages:tool_arguments",
    "otel_callbacks.mapping.messages:documents",
    "otel_callbacks.mapping.content:json_attribute",
    "otel_callbacks.mapping.content:text_attribute",
    "otel_callbacks.mapping.values:run_attributes",
    "otel_callbacks.mapping.spans:llm_request_attributes",
    "otel_callbacks.runs.context:parent_context",
    "otel_callbacks.runs.registry:RunRegistry.lookup",
]
# Failing after the span started: the run must still be registered so that its end ends the span.
LEAKS_SPAN = [
    "otel_callbacks.runs.context:enter",
    "otel_callbacks.runs.context:leave",
]
RESTORES_CONTEXT = "otel_callbacks.runs.context:leave"


@pytest.mark.parametrize("target", [*BREAKABLE, *LEAKS_SPAN])
def test_broken_internals_never_raise_and_spans_still_end(provider, ledger, monkeypatch, caplog, target: str) -> None:
    caller_context = otel_context.get_current()
    break_function(monkeypatch, target)
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
    assert ledger.problems() == []
    if ledger.started:  # breaking a start mapping leaves no span to check the path on
        ledger.assert_path()
    if target == RESTORES_CONTEXT:
        # broken, the one function that gives the caller its context back leaves a run's span current: that is
        # the break itself, which no guard can undo (every span still ended, above)
        otel_context.attach(caller_context)


def test_failures_logged_once_per_kind(provider, ledger, monkeypatch, caplog) -> None:
    break_function(monkeypatch, "otel_callbacks.mapping.spans:chain_span")
    break_function(monkeypatch, "otel_callbacks.mapping.response:llm_response_attributes")
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


def test_a_different_exception_type_is_a_different_kind(provider, ledger, monkeypatch, caplog) -> None:
    errors = iter([ValueError("a"), ValueError("b"), KeyError("c"), KeyError("d")])

    def raise_next(*args: Any, **kwargs: Any) -> Any:
        raise next(errors)

    break_function(monkeypatch, "otel_callbacks.mapping.spans:chain_span", raise_next)
    handler = make_handler(provider, raise_error=False)
    with caplog.at_level(logging.WARNING, logger="otel_callbacks"):
        for _ in range(4):
            handler.on_chain_start({}, {}, run_id=uuid4())
    assert len([r for r in caplog.records if r.name == "otel_callbacks"]) == 2
    assert ledger.started == {}  # the name mapping failed before any span
    assert handler.open_runs == 0


def test_real_chain_survives_broken_handler_with_default_raise_error(provider, ledger, monkeypatch, caplog) -> None:
    """Through LangChain itself: the chain's result is unchanged and LangChain has nothing to log (our guard caught)."""
    break_function(monkeypatch, "otel_callbacks.mapping.spans:chain_span")
    handler = OpenTelemetryCallbackHandler(provider)
    assert handler.raise_error is False
    chain = RunnableLambda(lambda x: x + 1) | RunnableLambda(lambda x: x * 2)
    with caplog.at_level(logging.WARNING):
        assert [chain.invoke(i, config={"callbacks": [handler]}) for i in range(5)] == [2, 4, 6, 8, 10]
    assert not [r for r in caplog.records if r.name.startswith("langchain")]
    assert len([r for r in caplog.records if r.name == "otel_callbacks"]) == 1
    assert ledger.started == {}  # every chain span failed to start: none half-made
    assert handler.open_runs == 0


def test_raising_span_processor_does_not_break_the_chain(path, monkeypatch, caplog) -> None:
    class Raising(SpanProcessor):
        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            raise RuntimeError("processor on_start")

        def on_end(self, span: ReadableSpan) -> None:
            raise RuntimeError("processor on_end")

    provider = TracerProvider(shutdown_on_exit=False)
    audit = SpanAudit(path)
    provider.add_span_processor(audit)
    provider.add_span_processor(Raising())
    handler = OpenTelemetryCallbackHandler(provider)
    chain = RunnableLambda(lambda x: x + 1)
    with caplog.at_level(logging.WARNING), audit:
        assert [chain.invoke(i, config={"callbacks": [handler]}) for i in range(20)] == list(range(1, 21))
    assert handler.open_runs == 0
    audit.assert_path()
    assert len(audit.started) == 20  # each chain's span reached the processors' on_start, which raised
    # ... inside the tracer's start_span, which so never handed the span over: there is nothing to end (the SDK's
    # doing, on both paths); but nothing was ended twice or touched after its end
    assert audit.ended_twice() == [] and audit.ended_span_warnings() == []
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
    assert attribute_problems(ledger.finished, handler._max_len) == []


def test_bug_huge_int_float_param_raises(provider, ledger) -> None:
    handler = make_handler(provider)
    run_id = uuid4()
    handler.on_chat_model_start({}, [[HumanMessage("hi")]], run_id=run_id, invocation_params={"temperature": 10**400})
    handler.on_llm_end(llm_result(), run_id=run_id)
    (span,) = ledger.finished
    ledger.assert_balanced()
    assert span.status.status_code != StatusCode.ERROR
    assert attribute_problems(ledger.finished, handler._max_len) == []
    assert "gen_ai.request.temperature" not in (span.attributes or {})  # no float holds 10**400: left out
    assert span.attributes["gen_ai.usage.input_tokens"] == 3  # the rest of the run is recorded  # type: ignore[index]


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
    assert ledger.names() == ["chat", "root"]
    ledger.assert_balanced()
    assert attribute_problems(ledger.finished, handler._max_len) == []


def test_bug_exception_with_raising_str(provider, ledger) -> None:
    handler = make_handler(provider)
    run_id = uuid4()
    handler.on_chain_start({"name": "c"}, {}, run_id=run_id)
    handler.on_chain_error(StrRaises(), run_id=run_id)
    span = ledger.one("c")
    ledger.assert_balanced()
    assert span.status.status_code == StatusCode.ERROR
    assert str(span.attributes["error.type"]).endswith("StrRaises")  # type: ignore[index]
    (event,) = [e for e in span.events if e.name == "exception"]
    assert str(event.attributes["exception.type"]).endswith("StrRaises")  # type: ignore[index]
    assert attribute_problems(ledger.finished, handler._max_len, skip_exception_events=False) == []


@pytest.mark.parametrize("where", ["content-block", "role", "finish-reason", "doc-id"])
def test_bug_unprintable_objects_in_messages(provider, ledger, where: str) -> None:
    handler = make_handler(provider, capture=True)
    run_id = uuid4()
    if where == "doc-id":
        handler.on_retriever_start({"name": "r"}, "q", run_id=run_id)
        handler.on_retriever_end([SimpleNamespace(id=Unprintable(), page_content="x", metadata={})], run_id=run_id)
    else:
        _unprintable_chat(handler, run_id, where)
    (span,) = ledger.finished
    ledger.assert_balanced()
    assert attribute_problems(ledger.finished, handler._max_len) == []
    assert span.attributes["langchain.run.id"] == str(run_id)  # type: ignore[index]
    assert span.status.status_code != StatusCode.ERROR


def _unprintable_chat(handler: OpenTelemetryCallbackHandler, run_id: UUID, where: str) -> None:
    messages: Any = [[("human", [Unprintable()])]] if where == "content-block" else [[(Unprintable(), "hi")]]
    if where == "finish-reason":
        messages = [[HumanMessage("hi")]]
    handler.on_chat_model_start({}, messages, run_id=run_id)
    message = AIMessage("x", response_metadata={"finish_reason": Unprintable()})
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]), run_id=run_id)
    assert handler.open_runs == 0


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


def test_every_callback_is_guarded(provider, ledger, caplog) -> None:
    """Each ``on_*`` method of the handler, by decorator or inline, keeps an internal failure from the caller and
    logs it once under its own name (an id without ``.int`` makes every one of them fail inside)."""
    handler = make_handler(provider, raise_error=False)
    callbacks = sorted(name for name in dir(handler) if name.startswith("on_") and callable(getattr(handler, name)))
    assert {"on_chain_start", "on_llm_end", "on_llm_new_token", "on_tool_error", "on_custom_event"} <= set(callbacks)
    bad_id = object()
    with caplog.at_level(logging.WARNING, logger="otel_callbacks"):
        for _ in range(2):
            for name in callbacks:
                positional = {"on_custom_event": ("name", None), "on_llm_new_token": ("t",),
                              # LangGraph's lifecycle callbacks take one event carrying the run id
                              "on_interrupt": (types.SimpleNamespace(run_id=bad_id),),
                              "on_resume": (types.SimpleNamespace(run_id=bad_id),)}.get(name)
                if positional is None:
                    positional = (RuntimeError("x"),) if name.endswith("_error") else (None,) * (
                        2 if name.endswith("_start") else 1)
                getattr(handler, name)(*positional, run_id=bad_id, parent_run_id=None)
    logged = Counter(r.getMessage().split(" failed")[0].removeprefix("otel-callbacks: ")
                     for r in caplog.records if r.name == "otel_callbacks")
    assert logged == dict.fromkeys(callbacks, 1)
    assert ledger.started == {}  # no run with a bad id got a span


# --- the audit itself: it sees a double end on either path ------------------------------------------------------------
class EndTwice(SpanProcessor):
    """Injects the bug the audit exists for: once a span of some class starts, that class's ``end`` ends every span
    twice, as a handler calling ``span.end()`` twice in its end path would. ``monkeypatch`` undoes it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.patched: list[type] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        cls = type(span)
        if cls in self.patched:
            return
        self.patched.append(cls)
        end_once = cls.end

        def end_twice(self: Any, end_time: int | None = None) -> None:
            end_once(self, end_time)
            end_once(self, end_time)

        self._monkeypatch.setattr(cls, "end", end_twice)


@pytest.mark.parametrize("quiet", [False, True], ids=["propagating", "otel_callbacks-not-propagating"])
def test_audit_catches_a_double_end(path, monkeypatch, quiet: bool) -> None:
    """With every span ended twice the audit reports each one: on the fast path (which logs on its own logger and
    calls no processor for the second end) as on the SDK's, and with ``otel_callbacks`` not propagating to the root
    logger (as ``test_fuzz_full_pool_never_raises`` sets it)."""
    if quiet:
        monkeypatch.setattr(logging.getLogger("otel_callbacks"), "propagate", False)
    provider = TracerProvider(shutdown_on_exit=False)
    audit = SpanAudit(path)
    provider.add_span_processor(audit)
    injector = EndTwice(monkeypatch)
    provider.add_span_processor(injector)
    with audit:
        every_run_kind(make_handler(provider))
    provider.shutdown()
    audit.assert_path()
    assert injector.patched, "the double end was not injected"
    assert len(audit.finished) == 5 and audit.unended() == []  # the first end of each reached the processors
    assert len(audit.ended_span_warnings()) == 5, audit.logs.messages()  # and each second end was seen
    assert len(audit.problems()) == 5
    with pytest.raises(AssertionError):
        audit.assert_balanced()


def test_audit_reports_spans_never_ended_and_ended_twice(path) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    audit = SpanAudit(path)
    provider.add_span_processor(audit)
    handler = make_handler(provider)
    run_id = uuid4()
    with audit:
        handler.on_chain_start({"name": "left open"}, {}, run_id=run_id)
        assert audit.problems() == ["started, never ended: left open"]
        handler.on_chain_end({}, run_id=run_id)
        audit.assert_balanced()
        audit.on_end(audit.finished[0])  # the same span handed to the processors again (as a fork can do)
    provider.shutdown()
    assert audit.problems() == ["ended more than once: left open x2"]
    with pytest.raises(AssertionError):
        audit.assert_balanced()
