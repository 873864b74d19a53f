"""Pure span-tree building and rendering, shared by the console exporter and ``otel-callbacks view``.

Nothing here touches I/O, the clock, env or the SDK's global state: records go in, lines come out. Both the SDK's
``ReadableSpan`` and OTLP/JSON lines are first turned into :class:`SpanRecord` so one renderer serves both.

Example:
    >>> rec = SpanRecord(trace_id="ab" * 16, span_id="cd" * 8, parent_span_id=None, name="chat m", start_ns=0,
    ...                  end_ns=2_000_000, attributes={"gen_ai.request.model": "m"})
    >>> render_traces(build_traces([rec]), ascii_only=True)[1]
    '`- chat m  2.00 ms  model=m'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK is not needed to render records read from a file (``otel-callbacks view``)
    from opentelemetry.sdk.trace import ReadableSpan

# Attribute keys we display. Kept here rather than imported from the handler's constants so the viewer also renders
# files written by other GenAI instrumentations that follow the same semantic conventions.
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model")
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
SUM_INPUT_TOKENS = "langchain.usage.input_tokens"
SUM_OUTPUT_TOKENS = "langchain.usage.output_tokens"
ERROR_TYPE = "error.type"
SERVICE_NAME = "service.name"

# Own usage of a model call, then the sums the handler puts on chain/agent spans.
_TOKEN_GROUPS = (("tokens", INPUT_TOKENS, OUTPUT_TOKENS), ("tokens(sum)", SUM_INPUT_TOKENS, SUM_OUTPUT_TOKENS))
# Every attribute the tree reads: readers of big files keep only these per span.
SHOWN_KEYS = frozenset((*MODEL_KEYS, INPUT_TOKENS, OUTPUT_TOKENS, SUM_INPUT_TOKENS, SUM_OUTPUT_TOKENS, ERROR_TYPE))

STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
_start = attrgetter("span.start_ns")
_MAX_MESSAGE = 160


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """The part of a span the tree needs. Ids are lowercase hex; times are Unix epoch nanoseconds."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    status_code: int = STATUS_UNSET
    status_message: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    service_name: str | None = None


@dataclass(slots=True)
class TreeNode:
    """One span and its children, sorted by start time. ``orphan`` means its parent id was not among the records."""

    span: SpanRecord
    children: list[TreeNode] = field(default_factory=list)
    orphan: bool = False


@dataclass(slots=True)
class Trace:
    """All known spans of one trace id, as a forest (several roots when parents are missing or remote)."""

    trace_id: str
    roots: list[TreeNode]
    span_count: int
    complete: bool = True


def record_from_span(span: ReadableSpan) -> SpanRecord:
    """Convert an SDK span. A remote parent counts as a parent id (the tree marks it as an orphan root).

    Example:
        >>> # record_from_span(in_memory_exporter.get_finished_spans()[0]).name
    """
    ctx = span.context
    parent = span.parent
    resource = span.resource.attributes if span.resource is not None else {}
    service = resource.get(SERVICE_NAME)
    return SpanRecord(
        trace_id=f"{ctx.trace_id:032x}" if ctx is not None else "0" * 32,
        span_id=f"{ctx.span_id:016x}" if ctx is not None else "0" * 16,
        parent_span_id=f"{parent.span_id:016x}" if parent is not None else None,
        name=span.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        status_code=int(span.status.status_code.value),
        status_message=span.status.description or "",
        attributes=dict(span.attributes or {}),
        service_name=str(service) if service is not None else None,
    )


def build_traces(records: Iterable[SpanRecord]) -> list[Trace]:
    """Group records by trace id and link them by parent id; traces are ordered by their first start time.

    Duplicate span ids keep the first record. Spans whose parent is unknown become roots marked ``orphan``; a
    parent cycle (only possible in corrupt input) is broken by promoting its earliest span to a root.
    """
    by_trace: dict[str, dict[str, SpanRecord]] = {}
    for rec in records:
        by_trace.setdefault(rec.trace_id, {}).setdefault(rec.span_id, rec)
    traces = [_build_one(trace_id, spans) for trace_id, spans in by_trace.items()]
    traces.sort(key=lambda t: min((r.span.start_ns for r in t.roots), default=0))
    return traces


def _build_one(trace_id: str, spans: dict[str, SpanRecord]) -> Trace:
    nodes = {sid: TreeNode(rec) for sid, rec in spans.items()}
    roots: list[TreeNode] = []
    for node in nodes.values():
        parent_id = node.span.parent_span_id
        if parent_id and parent_id in nodes and parent_id != node.span.span_id:
            nodes[parent_id].children.append(node)
        else:
            node.orphan = bool(parent_id)
            roots.append(node)
    if _count_reachable(roots) < len(nodes):  # only cycles are left unreached
        reached = _reachable(roots)
        while len(reached) < len(nodes):
            stray = min((n for sid, n in nodes.items() if sid not in reached), key=_start)
            for node in nodes.values():
                if stray in node.children:
                    node.children.remove(stray)
            stray.orphan = True
            roots.append(stray)
            reached |= _reachable([stray])
    for node in nodes.values():
        if len(node.children) > 1:
            node.children.sort(key=_start)
    roots.sort(key=_start)
    return Trace(trace_id, roots, len(nodes), complete=not any(r.orphan for r in roots))


def _count_reachable(roots: Sequence[TreeNode]) -> int:
    # Every node has at most one parent, so a walk from the roots meets each reachable node once.
    count, stack = 0, list(roots)
    while stack:
        node = stack.pop()
        count += 1
        stack.extend(node.children)
    return count


def _reachable(roots: Sequence[TreeNode]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node.span.span_id in seen:
            continue
        seen.add(node.span.span_id)
        stack.extend(node.children)
    return seen


def format_duration(nanos: int) -> str:
    """Human duration: ``0.25 ms``, ``12.0 ms``, ``1.50 s``, ``2m03s``.

    Example:
        >>> format_duration(1_500_000_000)
        '1.50 s'
    """
    if nanos < 0:
        nanos = 0
    if nanos < 1_000_000_000:
        millis = nanos / 1e6
        return f"{millis:.2f} ms" if millis < 10 else f"{millis:.1f} ms"
    seconds = nanos / 1e9
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _as_int(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float | str):
        try:
            return int(value)
        except (ValueError, OverflowError):
            return None
    return None


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def span_details(span: SpanRecord) -> list[str]:
    """The short facts shown after a span's name: model, tokens (own or summed beneath), error.

    Example:
        >>> span_details(SpanRecord("0"*32, "1"*16, None, "chat m", 0, 1, attributes={
        ...     "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4}))
        ['model=m', 'tokens in=3 out=4']
    """
    attrs = span.attributes
    details: list[str] = []
    if attrs:  # most spans of a big file carry none of the shown keys
        for key in MODEL_KEYS:
            model = attrs.get(key)
            if model:
                details.append(f"model={model}")
                break
        for label, in_key, out_key in _TOKEN_GROUPS:
            tin, tout = attrs.get(in_key), attrs.get(out_key)
            if tin is None and tout is None:
                continue
            tin, tout = _as_int(tin), _as_int(tout)
            if tin is not None or tout is not None:
                details.append(f"{label} in={tin if tin is not None else '?'} out={tout if tout is not None else '?'}")
    if span.status_code == STATUS_ERROR or (attrs and attrs.get(ERROR_TYPE)):
        err = str(attrs.get(ERROR_TYPE) or "error")
        message = _one_line(span.status_message) if span.status_message else ""
        message = message.removeprefix(f"{err}:").strip()  # handlers often write "Type: message" already
        details.append(f"ERROR {err}: {message}" if message else f"ERROR {err}")
    return details


def trace_tokens(trace: Trace) -> tuple[int, int]:
    """Sum of per-call token counts (``gen_ai.usage.*``) over the trace; summed chain attributes are not re-added."""
    tin = tout = 0
    stack = list(trace.roots)
    while stack:
        node = stack.pop()
        tin += _as_int(node.span.attributes.get(INPUT_TOKENS)) or 0
        tout += _as_int(node.span.attributes.get(OUTPUT_TOKENS)) or 0
        stack.extend(node.children)
    return tin, tout


def render_trace(trace: Trace, *, ascii_only: bool = False) -> list[str]:
    """Render one trace: a header line, then one indented line per span (iterative, so deep trees cannot overflow).

    Example:
        >>> # render_trace(build_traces(records)[0])
        >>> # ['trace 4bf9...  2 spans  1.20 s  tokens in=10 out=3',
        >>> #  '└─ invoke_agent agent  1.20 s', '   └─ chat m  ...']
    """
    tee, last, pipe, blank = ("|- ", "`- ", "|  ", "   ") if ascii_only else ("├─ ", "└─ ", "│  ", "   ")
    roots = trace.roots
    lines = [""]  # the header, written once the walk has summed the tokens and found the last end
    tin = tout = 0
    end = roots[0].span.end_ns if roots else 0
    stack: list[tuple[TreeNode, str, bool]] = [(r, "", i == len(roots) - 1)
                                               for i, r in reversed(list(enumerate(roots)))]
    while stack:
        node, prefix, is_last = stack.pop()
        span = node.span
        attrs = span.attributes
        if attrs:  # the sums trace_tokens gives, taken on the way
            tin += _as_int(attrs.get(INPUT_TOKENS)) or 0
            tout += _as_int(attrs.get(OUTPUT_TOKENS)) or 0
        if span.end_ns > end:
            end = span.end_ns
        line = f"{prefix}{last if is_last else tee}{span.name}  {format_duration(span.end_ns - span.start_ns)}"
        if attrs or span.status_code == STATUS_ERROR:  # span_details finds nothing to say otherwise
            details = span_details(span)
            if details:
                line += "  " + "  ".join(details)
        if node.orphan:
            line += f"  (parent {span.parent_span_id} not found)"
        lines.append(line)
        kids = node.children
        if kids:
            child_prefix = prefix + (blank if is_last else pipe)
            stack.append((kids[-1], child_prefix, True))
            if len(kids) > 1:
                stack.extend((kid, child_prefix, False) for kid in reversed(kids[:-1]))
    start = min((r.span.start_ns for r in roots), default=0)
    header = [f"trace {trace.trace_id}", f"{trace.span_count} span{'s' if trace.span_count != 1 else ''}",
              format_duration(end - start)]
    if tin or tout:
        header.append(f"tokens in={tin} out={tout}")
    service = roots[0].span.service_name if roots else None
    if service:
        header.append(f"service={service}")
    if not trace.complete:
        header.append("(incomplete: some parent spans are missing)")
    lines[0] = "  ".join(header)
    return lines


def render_traces(traces: Iterable[Trace], *, ascii_only: bool = False) -> list[str]:
    """Render several traces separated by a blank line."""
    lines: list[str] = []
    for trace in traces:
        if lines:
            lines.append("")
        lines.extend(render_trace(trace, ascii_only=ascii_only))
    return lines
