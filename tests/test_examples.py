"""Each example runs offline as a real process; assertions are on the spans it exports and the tree it prints.

Examples run with ``OTEL_TRACES_EXPORTER=console,file`` so the console tree (what a user sees) and the OTLP/JSON
file (exact span structure) can both be checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_callbacks.cli.tree import SpanRecord, Trace, build_traces
from otel_callbacks.setup.exporters import parse_lines, records_from_request

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

def run_example(name: str, tmp_path: Path) -> tuple[str, list[Trace]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    file_path = tmp_path / f"{name}.jsonl"
    env.update(PYTHONPATH=str(ROOT), OTEL_TRACES_EXPORTER="console,file", OTEL_CALLBACKS_FILE_PATH=str(file_path))
    result = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py")], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    requests, errors = parse_lines(file_path.read_text().splitlines())
    assert errors == []
    return result.stdout, build_traces(rec for req in requests for rec in records_from_request(req))


def names_under(node_span: SpanRecord, trace: Trace) -> list[str]:
    for root in trace.roots:
        stack = [root]
        while stack:
            node = stack.pop()
            if node.span.span_id == node_span.span_id:
                return [child.span.name for child in node.children]
            stack.extend(node.children)
    raise AssertionError(f"{node_span.name} not in trace")


class TestExamples:
    def test_plain_chain(self, tmp_path: Path) -> None:
        """The chain example yields one complete trace: the named chain over prompt, chat model and parser."""
        out, traces = run_example("plain_chain", tmp_path)
        assert "Otters hold hands" in out
        assert "└─ fun_fact" in out
        (trace,) = traces
        assert trace.complete
        (root,) = trace.roots
        assert root.span.name == "fun_fact"
        children = names_under(root.span, trace)
        assert children[0] == "ChatPromptTemplate" and children[-1] == "StrOutputParser"
        chat = next(c.span for c in root.children if c.span.name.startswith("chat"))
        assert (chat.attributes["gen_ai.usage.input_tokens"], chat.attributes["gen_ai.usage.output_tokens"]) == (21, 13)
        assert root.span.service_name == "plain-chain-example"

    def test_langgraph_agent(self, tmp_path: Path) -> None:
        """The agent example yields invoke_agent over two chat calls and one tool call, with summed tokens."""
        out, traces = run_example("langgraph_agent", tmp_path)
        assert "120 EUR is 129.60 USD." in out
        (trace,) = traces
        (root,) = trace.roots
        assert root.span.name == "invoke_agent fx_agent"
        flat: list[SpanRecord] = []
        stack = [root]
        while stack:
            node = stack.pop()
            flat.append(node.span)
            stack.extend(node.children)
        names = [s.name for s in flat]
        assert names.count("execute_tool convert_currency") == 1
        assert sum(1 for n in names if n.startswith("chat")) == 2
        assert root.span.attributes.get("langchain.usage.input_tokens") == 145
        assert "execute_tool convert_currency" in out

    def test_async_request_joins_request_trace(self, tmp_path: Path) -> None:
        """Two concurrent requests give two traces, each chain root nested under its own request span."""
        out, traces = run_example("async_request", tmp_path)
        assert "The OpenTelemetry protocol." in out and "One timed operation in a trace." in out
        assert len(traces) == 2
        for trace in traces:
            assert trace.complete
            (root,) = trace.roots
            assert root.span.name == "POST /ask"
            assert [c.span.name for c in root.children] == ["answer_question"]
            assert trace.span_count == 5
        assert out.count("└─ POST /ask") == 2


@pytest.mark.parametrize("name", ["plain_chain", "langgraph_agent", "async_request"])
def test_examples_use_public_api_only(name: str) -> None:
    """Examples import only public names, never private otel_callbacks modules."""
    source = (EXAMPLES / f"{name}.py").read_text()
    assert "otel_callbacks._" not in source
    assert "setup_tracing(" in source
