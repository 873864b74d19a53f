"""Test helpers: spans as a tree, fake models that LangChain's agents accept."""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.language_models.llms import LLM
from langchain_core.messages import AIMessage
from langchain_core.outputs import GenerationChunk
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan


class SpanTree:
    """Finished spans with lookups by name and by parent."""

    def __init__(self, spans: Iterable[ReadableSpan]) -> None:
        self.spans: list[ReadableSpan] = list(spans)
        self.by_id = {s.context.span_id: s for s in self.spans}

    def __len__(self) -> int:
        return len(self.spans)

    def names(self) -> list[str]:
        return [s.name for s in self.spans]

    def one(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, found {len(found)} among {self.names()}"
        return found[0]

    def all(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        if span.parent is None:
            return None
        return self.by_id.get(span.parent.span_id)

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        return [s for s in self.spans if s.parent is not None and s.parent.span_id == span.context.span_id]

    def roots(self) -> list[ReadableSpan]:
        return [s for s in self.spans if s.parent is None or s.parent.span_id not in self.by_id]

    def shape(self, span: ReadableSpan | None = None) -> Any:
        """Nested ``(name, [children...])`` with children sorted by name, for order-free comparisons."""
        if span is None:
            return sorted((self.shape(r) for r in self.roots()), key=repr)
        return (span.name, sorted((self.shape(c) for c in self.children(span)), key=repr))

    def run_id(self, span: ReadableSpan) -> str:
        return str(span.attributes["langchain.run.id"])  # type: ignore[index]


class ToolCallingFakeChatModel(GenericFakeChatModel):
    """GenericFakeChatModel that accepts ``bind_tools`` (agents require it) and replays its messages.

    ``ls_params`` stands in for what a real integration reports (``ls_provider``, ``ls_model_name``, ...).
    """

    ls_params: dict[str, Any] = {}  # noqa: RUF012 - a pydantic field; pydantic copies the default

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {**super()._get_ls_params(stop=stop, **kwargs), **self.ls_params}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolCallingFakeChatModel:  # type: ignore[override]
        return self


def ai(content: str = "", *, tool_calls: list[dict[str, Any]] | None = None, model: str = "fake-model-1",
       input_tokens: int = 10, output_tokens: int = 5, response_id: str | None = None,
       finish_reason: str | None = None) -> AIMessage:
    """An AIMessage as a provider would return it: usage, response metadata, maybe tool calls."""
    meta: dict[str, Any] = {"model_name": model}
    if finish_reason or tool_calls:
        meta["finish_reason"] = finish_reason or "tool_calls"
    else:
        meta["finish_reason"] = "stop"
    return AIMessage(
        content=content,
        tool_calls=tool_calls or [],
        usage_metadata={"input_tokens": input_tokens, "output_tokens": output_tokens,
                        "total_tokens": input_tokens + output_tokens},
        response_metadata=meta,
        id=response_id,
    )


def fake_chat(*messages: AIMessage, repeat: int = 1, **ls_params: Any) -> ToolCallingFakeChatModel:
    return ToolCallingFakeChatModel(messages=iter(list(messages) * repeat), ls_params=ls_params)


class CharStreamLLM(LLM):
    """A completion LLM that answers ``response`` and streams it one character per chunk through the callbacks."""

    response: str = "abc"

    @property
    def _llm_type(self) -> str:
        return "char-stream"

    def _call(self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any) -> str:
        return self.response

    def _stream(self, prompt: str, stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[GenerationChunk]:
        for char in self.response:
            chunk = GenerationChunk(text=char)
            if run_manager is not None:
                run_manager.on_llm_new_token(char, chunk=chunk)
            yield chunk


def one_warning(caplog: Any) -> str:
    """The single warning a test expects (a malformed variable logs exactly one), as text."""
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    return warnings[0]


# --- the span audit: every span the handler starts is ended exactly once, on either emission path ---------------------
# The handler emits through the SDK's own Span ("sdk", OTEL_CALLBACKS_LEAN_SPANS=false) or through lean spans ("fast",
# the default). The two log a misuse on different loggers, and a second end() returns before any span processor runs
# on both, so the audit is a span processor (starts and ends by span id) plus a log tap on every logger.
LEAN_SPANS_ENV = "OTEL_CALLBACKS_LEAN_SPANS"
EMISSION_PATHS = ("fast", "sdk")  # named as conftest.PATHS names them


def available_emission_paths() -> tuple[str, ...]:
    """The paths this SDK has, as ``conftest.PATHS``: the fast path only on SDK versions it is proven on (elsewhere
    the handler takes the SDK path by design, and ``test_compat`` fails for the version)."""
    from otel_callbacks.emit import compat

    return EMISSION_PATHS if compat.fast_path_proven() else ("sdk",)
# "Calling end() on an ended span.", "Setting attribute on ended span.", "Tried calling add_event on an ended span."
ENDED_SPAN = re.compile(r"\bended span\b", re.IGNORECASE)


def use_emission_path(monkeypatch: Any, path: str) -> None:
    """Make the handlers created after this call emit on ``path``: "fast" (the default: variable unset) or "sdk"."""
    if path == "sdk":
        monkeypatch.setenv(LEAN_SPANS_ENV, "false")
    elif path == "fast":
        monkeypatch.delenv(LEAN_SPANS_ENV, raising=False)
    else:
        raise ValueError(f"unknown emission path {path!r}")


def emission_path_of(span: Any) -> str:
    """The path a live span (as a processor's ``on_start`` gets it) came from. Not decidable from finished spans:
    the SDK hands ``on_end`` and exporters a plain ``ReadableSpan`` copy, the fast path the lean span itself."""
    return "sdk" if isinstance(span, SdkSpan) else "fast"


class LogTap(logging.Handler):
    """Every WARNING-or-worse record from any logger while entered (``with LogTap() as tap:``).

    Attached to the root logger and to every logger that does not propagate (a test may stop ``otel_callbacks``
    propagating to keep the guard's expected warnings quiet), so a record reaches it once wherever it is logged.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self._attached: list[logging.Logger] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> LogTap:
        known = list(logging.root.manager.loggerDict.values())
        self._attached = [logging.root, *(lg for lg in known if isinstance(lg, logging.Logger) and not lg.propagate)]
        for lg in self._attached:
            lg.addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for lg in self._attached:
            lg.removeHandler(self)
        self._attached = []

    def messages(self, pattern: re.Pattern[str] | None = None) -> list[str]:
        """``"logger: message"`` of each record (whose message matches ``pattern``, if given)."""
        out = []
        for record in list(self.records):
            try:
                message = record.getMessage()
            except Exception as exc:  # a malformed record is still a record
                message = f"<unformattable: {exc!r}> {record.msg!r}"
            if pattern is None or pattern.search(message):
                out.append(f"{record.name}: {message}")
        return out


class SpanAudit(SpanProcessor):
    """A span processor and a :class:`LogTap`: which spans started and ended (by span id, thread-safe), and what
    was logged about ended spans from any logger, while entered (``with SpanAudit("fast") as audit:``).

    ``path`` is the emission path the test meant to use; :meth:`assert_path` checks the started spans came from it,
    so a silent fallback to the other path cannot make a parametrization a duplicate.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.started: dict[int, str] = {}
        self.paths: Counter[str] = Counter()
        self.ended: Counter[int] = Counter()
        self.finished: list[ReadableSpan] = []
        self.logs = LogTap()
        self._lock = threading.Lock()

    def __enter__(self) -> SpanAudit:
        self.logs.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logs.__exit__(*exc_info)

    # the processor
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        with self._lock:
            self.started[span.context.span_id] = span.name
            self.paths[emission_path_of(span)] += 1

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended[span.context.span_id] += 1
            self.finished.append(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # the findings
    def unended(self) -> list[str]:
        with self._lock:
            return [name for sid, name in self.started.items() if sid not in self.ended]

    def ended_twice(self) -> list[str]:
        """Spans handed to ``on_end`` more than once, or ended without having started."""
        with self._lock:
            return [f"{self.started.get(sid, '<never started>')} x{n}" for sid, n in self.ended.items()
                    if n != 1 or sid not in self.started]

    def ended_span_warnings(self) -> list[str]:
        return self.logs.messages(ENDED_SPAN)

    def problems(self) -> list[str]:
        """Everything that breaks "each started span ended exactly once", as text; empty when all is well."""
        return ([f"started, never ended: {n}" for n in self.unended()]
                + [f"ended more than once: {n}" for n in self.ended_twice()]
                + [f"logged: {m}" for m in self.ended_span_warnings()])

    def one(self, name: str) -> ReadableSpan:
        found = [s for s in self.finished if s.name == name]
        assert len(found) == 1, f"expected one {name!r}, got {[s.name for s in self.finished]}"
        return found[0]

    def names(self) -> list[str]:
        return sorted(s.name for s in self.finished)

    def assert_path(self) -> None:
        assert self.path is not None, "no intended path given"
        assert self.paths, "no span started: cannot tell which path emitted"
        assert set(self.paths) == {self.path}, f"meant the {self.path} path, spans came from {dict(self.paths)}"

    def assert_balanced(self) -> None:
        """At least one span, every one started ended exactly once, nothing logged about ended spans, and (when
        the audit knows the intended path) the spans came from it."""
        assert self.started, "no span started: nothing to balance"
        assert self.problems() == []
        if self.path is not None:
            self.assert_path()


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


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


def attribute_problems(spans: Iterable[ReadableSpan], max_len: int, *, skip_exception_events: bool = True
                       ) -> list[str]:
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
