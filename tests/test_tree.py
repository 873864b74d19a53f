"""Tests for the pure span-tree builder and renderer."""

from __future__ import annotations

import dataclasses

from otel_callbacks.cli.tree import (
    SHOWN_KEYS,
    STATUS_ERROR,
    SpanRecord,
    build_traces,
    format_duration,
    render_trace,
    render_traces,
    span_details,
    trace_tokens,
)

TRACE = "0af7651916cd43dd8448eb211c80319c"


def rec(span_id: str, parent: str | None, name: str, start: int, end: int, **kw: object) -> SpanRecord:
    return SpanRecord(TRACE, span_id.rjust(16, "0"), parent.rjust(16, "0") if parent else None, name, start, end,
                      **kw)  # type: ignore[arg-type]


class TestBuildTraces:
    def test_links_children_to_parents_sorted_by_start(self) -> None:
        """Children hang under their parent and are ordered by start time, whatever the input order."""
        traces = build_traces([rec("3", "1", "second", 30, 40), rec("1", None, "root", 0, 100),
                               rec("2", "1", "first", 10, 20)])
        assert len(traces) == 1
        (root,) = traces[0].roots
        assert root.span.name == "root"
        assert [c.span.name for c in root.children] == ["first", "second"]
        assert traces[0].complete

    def test_missing_parent_becomes_orphan_root(self) -> None:
        """A span whose parent is absent is shown as a root flagged orphan and the trace as incomplete."""
        traces = build_traces([rec("2", "9", "child", 0, 1)])
        assert traces[0].roots[0].orphan
        assert not traces[0].complete

    def test_cycle_does_not_lose_spans(self) -> None:
        """Corrupt input with a parent cycle still yields every span exactly once."""
        traces = build_traces([rec("1", "2", "a", 0, 1), rec("2", "1", "b", 5, 6)])
        lines = render_trace(traces[0])
        assert traces[0].span_count == 2
        assert sum(1 for line in lines if " a " in line or " b " in line) == 2

    def test_duplicate_span_ids_kept_once(self) -> None:
        """The same span appended twice (e.g. a replayed file) is counted once."""
        traces = build_traces([rec("1", None, "root", 0, 1), rec("1", None, "root", 0, 1)])
        assert traces[0].span_count == 1

    def test_traces_ordered_by_start(self) -> None:
        """Several traces come out oldest first."""
        late = SpanRecord("b" * 32, "1" * 16, None, "late", 50, 60)
        early = SpanRecord("a" * 32, "2" * 16, None, "early", 10, 20)
        assert [t.roots[0].span.name for t in build_traces([late, early])] == ["early", "late"]

    def test_deep_tree_renders_without_recursion_error(self) -> None:
        """A 5000-deep chain renders (iterative walk)."""
        records = [rec(str(i + 1), str(i) if i else None, f"s{i}", i, 10_000) for i in range(5000)]
        lines = render_traces(build_traces(records))
        assert len(lines) == 5001


class TestRender:
    def test_tree_shows_durations_model_tokens_and_errors(self) -> None:
        """The rendered tree carries indentation, durations, model, tokens and the error type/message."""
        records = [
            rec("1", None, "invoke_agent agent", 0, 1_500_000_000,
                attributes={"langchain.usage.input_tokens": 30, "langchain.usage.output_tokens": 12}),
            rec("2", "1", "chat gpt-x", 1_000_000, 3_000_000,
                attributes={"gen_ai.request.model": "gpt-x", "gen_ai.usage.input_tokens": 30,
                            "gen_ai.usage.output_tokens": 12}),
            rec("3", "1", "execute_tool search", 4_000_000, 5_000_000, status_code=STATUS_ERROR,
                status_message="boom\nsecond line", attributes={"error.type": "ValueError"}),
        ]
        lines = render_trace(build_traces(records)[0])
        assert lines[0].startswith(f"trace {TRACE}  3 spans  1.50 s  tokens in=30 out=12")
        assert lines[1] == "└─ invoke_agent agent  1.50 s  tokens(sum) in=30 out=12"
        assert lines[2] == "   ├─ chat gpt-x  2.00 ms  model=gpt-x  tokens in=30 out=12"
        assert lines[3] == "   └─ execute_tool search  1.00 ms  ERROR ValueError: boom second line"

    def test_ascii_mode_uses_no_box_drawing(self) -> None:
        """ascii_only output encodes as ASCII (for terminals that cannot print box drawing)."""
        records = [rec("1", None, "root", 0, 10), rec("2", "1", "a", 1, 2), rec("3", "1", "b", 3, 4)]
        text = "\n".join(render_traces(build_traces(records), ascii_only=True))
        text.encode("ascii")
        assert "|- a" in text and "`- b" in text

    def test_orphan_is_labelled(self) -> None:
        """An orphan line names the missing parent id."""
        lines = render_trace(build_traces([rec("2", "9", "child", 0, 1)])[0])
        assert "(parent 0000000000000009 not found)" in lines[1]
        assert "incomplete" in lines[0]


class TestDetails:
    def test_error_without_status_message(self) -> None:
        """An ERROR status with no message still shows ERROR and a type."""
        assert span_details(rec("1", None, "x", 0, 1, status_code=STATUS_ERROR)) == ["ERROR error"]

    def test_error_type_not_repeated(self) -> None:
        """A status message that already starts with the error type is not shown with the type twice."""
        span = rec("1", None, "x", 0, 1, status_code=STATUS_ERROR, status_message="ValueError: bad city",
                   attributes={"error.type": "ValueError"})
        assert span_details(span) == ["ERROR ValueError: bad city"]

    def test_long_error_message_truncated_ascii(self) -> None:
        """Long multi-line messages become one line of bounded length ending in '...'."""
        span = rec("1", None, "x", 0, 1, status_code=STATUS_ERROR, status_message="line\n" * 200)
        (detail,) = span_details(span)
        assert "\n" not in detail and detail.endswith("...") and len(detail) < 200

    def test_tokens_from_strings_and_missing_half(self) -> None:
        """Token counts given as strings (OTLP/JSON intValue) parse; a missing half shows as '?'."""
        details = span_details(rec("1", None, "x", 0, 1, attributes={"gen_ai.usage.input_tokens": "7"}))
        assert details == ["tokens in=7 out=?"]

    def test_response_model_preferred(self) -> None:
        """The response model (what actually answered) wins over the requested one."""
        attrs = {"gen_ai.request.model": "alias", "gen_ai.response.model": "alias-2024"}
        assert span_details(rec("1", None, "x", 0, 1, attributes=attrs)) == ["model=alias-2024"]

    def test_trace_tokens_ignore_summed_chain_attributes(self) -> None:
        """Trace totals add per-call usage only, so chain sums are not double counted."""
        records = [rec("1", None, "chain", 0, 1, attributes={"langchain.usage.input_tokens": 5}),
                   rec("2", "1", "chat", 0, 1, attributes={"gen_ai.usage.input_tokens": 5,
                                                           "gen_ai.usage.output_tokens": 1})]
        assert trace_tokens(build_traces(records)[0]) == (5, 1)


class TestFormatDuration:
    def test_units(self) -> None:
        """Durations pick a readable unit."""
        assert [format_duration(n) for n in (250_000, 12_000_000, 1_500_000_000, 123_000_000_000, -5)] == [
            "0.25 ms", "12.0 ms", "1.50 s", "2m03s", "0.00 ms"]


class TestShownKeys:
    def test_rendering_reads_only_shown_keys(self) -> None:
        """A tree renders the same from records cut down to SHOWN_KEYS (what view keeps of a big file)."""
        attrs = {"gen_ai.response.model": "m-1", "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 4,
                 "langchain.usage.input_tokens": 3, "error.type": "E", "other": "x", "gen_ai.operation.name": "chat"}
        full = [rec("1", None, "root", 0, 10, attributes={"langchain.usage.output_tokens": 4, "k": 1}),
                rec("2", "1", "chat", 1, 5, status_code=STATUS_ERROR, status_message="E: bad", attributes=attrs)]
        cut = [dataclasses.replace(r, attributes={k: v for k, v in r.attributes.items() if k in SHOWN_KEYS})
               for r in full]
        assert render_traces(build_traces(cut)) == render_traces(build_traces(full))


class TestHeader:
    def test_header_spans_the_latest_end_and_sums_every_level(self) -> None:
        """The header's duration runs to the latest end anywhere in the tree, and its tokens add calls at any depth."""
        records = [rec("1", None, "root", 0, 1_000_000),
                   rec("2", "1", "step", 100, 500_000),
                   rec("3", "2", "chat a", 200, 3_000_000, attributes={"gen_ai.usage.input_tokens": 2}),
                   rec("4", "1", "chat b", 600_000, 700_000, attributes={"gen_ai.usage.output_tokens": "5"})]
        trace = build_traces(records)[0]
        assert render_trace(trace)[0] == f"trace {TRACE}  4 spans  3.00 ms  tokens in=2 out=5"
        assert trace_tokens(trace) == (2, 5)
