"""What ``redact=`` costs per invoke of a chain whose output is huge, next to the floor any design can reach.

    .venv/bin/python benchmarks/redact.py [--sizes 1,50] [--reps 300] [--max-value-length 16384,4096] [--path sdk]
    .venv/bin/python benchmarks/redact.py --profile      # where our own share of (b) goes, cProfile, 1 MB

One process, the real handler and the real OpenTelemetry SDK (``TracerProvider`` + ``SimpleSpanProcessor`` into a
discarding exporter, so every span is built, ended and handed to an exporter on the calling thread, and no export
I/O is timed). Content capture is on (``SPAN_ONLY``): the chain's inputs and its output are recorded. The chain is a
``RunnableLambda`` returning a prebuilt text of ``--sizes`` megabytes (prose with e-mail addresses, card numbers and
API keys planted in it), called with a short question and a little run metadata.

The hook is what an application writes: three compiled regexes run one after the other with ``re.sub``: e-mail
addresses, card numbers (13 to 19 digits, spaces or dashes allowed) and API keys (OpenAI ``sk-``, AWS ``AKIA``,
GitHub ``ghp_``, Slack ``xox?-``).

Per invoke, CPU time (``time.process_time_ns``), the three cases interleaved call by call in a rotating order so
that drift and noise fall on all of them alike:

- (a) the handler without ``redact``;
- (b) the handler with the hook;
- (c) the floor: the bare hook called on exactly the strings the handler passed it during one invoke (caught by a
  recording wrapper in a first pass). ``(a + c) / a`` is the best ratio any implementation that runs the user's hook
  once per value, on the already-cut string, can reach; ``b - a - c`` is the handler's own cost of redacting.

Medians over ``--reps`` rounds, plus the median of the per-round difference ``b - a - c`` (paired, so less noisy
than the difference of medians). The recording pass also counts the hook's calls and the characters passed per
invoke: bounded by ``max_value_length`` per value whatever the output size. A check pass reads what was exported
with the hook on and fails (exit 1) if a planted secret got through; "recorded" is the length of the exported output
attribute without and with the hook (the hook's output is shorter: the secrets it masked). Prints a markdown table
and, per row, whether 2x is reached and whether any design could reach it (the floor); exit 0.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import Runnable, RunnableLambda
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_callbacks import OpenTelemetryCallbackHandler

# The hook: what an application would write (compiled once, applied in turn).
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
_API_KEY = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{36}|xox[abprs]-[A-Za-z0-9-]{10,})")
_PATTERNS = ((_EMAIL, "<email>"), (_CARD, "<card>"), (_API_KEY, "<api-key>"))


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


EMAIL = "jane.doe+billing@example-corp.com"
CARD = "4111 1111 1111 1111"
API_KEY = "sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e8f7a"
_SECRETS = (EMAIL, CARD, API_KEY)

_SENTENCES = (
    "The customer asked why the March invoice was higher than usual, and the agent explained the new tier. ",
    f"Please forward the receipt to {EMAIL} before Friday so accounting can close the quarter. ",
    "Shipping was delayed by two days because the warehouse in Rotterdam ran out of packing material. ",
    f"The card on file, {CARD}, expires next month; the customer will update it in the portal. ",
    "Our records show 3 orders in 2024, totalling 1,284.50 EUR, with one partial refund of 45 EUR. ",
    f"A key was pasted into the ticket by mistake ({API_KEY}); it was revoked within the hour. ",
    "The summary below lists each step the assistant took, the tools it called and what they returned. ",
)


def make_output(size: int) -> str:
    """``size`` characters of prose, a secret in three of every seven sentences."""
    block = "".join(_SENTENCES)
    return (block * (size // len(block) + 1))[:size]


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _provider(exporter: SpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _handler(provider: TracerProvider, hook: Callable[[str], str] | None, max_len: int) -> OpenTelemetryCallbackHandler:
    return OpenTelemetryCallbackHandler(provider, capture_content=True, redact=hook, max_value_length=max_len)


def _chain(output: str) -> Runnable[Any, str]:
    return RunnableLambda(lambda _: output).with_config(run_name="summarise")


INPUT = {"question": "Summarise this customer's history, please."}
METADATA = {"thread_id": "thread-42", "user": "support-bot", "tenant": "acme"}


def _invoke(chain: Runnable[Any, str], handler: OpenTelemetryCallbackHandler) -> None:
    chain.invoke(INPUT, config={"callbacks": [handler], "metadata": METADATA})


@dataclass
class Result:
    size_mb: float
    calls: int
    chars: int
    longest: int
    a: float  # medians, ms
    b: float
    c: float
    overhead: float  # median of per-round b - a - c, ms
    reps: int
    max_len: int
    recorded: tuple[int, int]  # characters of the output attribute exported without and with the hook


def _record(chain: Runnable[Any, str], max_len: int) -> list[str]:
    """The strings the handler hands the hook during one invoke (a warm one: caches are filled by the first)."""
    seen: list[str] = []

    def recording(text: str) -> str:
        seen.append(text)
        return redact(text)

    provider = _provider(_Discard())
    handler = _handler(provider, recording, max_len)
    _invoke(chain, handler)
    seen.clear()
    _invoke(chain, handler)
    provider.shutdown()
    return seen


def _exported(chain: Runnable[Any, str], max_len: int, hook: Callable[[str], str] | None) -> tuple[str, int]:
    """Every exported attribute, as text, and the length of the recorded output."""
    exporter = InMemorySpanExporter()
    provider = _provider(exporter)
    _invoke(chain, _handler(provider, hook, max_len))
    attrs = [dict(span.attributes or {}) for span in exporter.get_finished_spans()]
    provider.shutdown()
    output = next(str(a[_OUTPUTS]) for a in attrs if _OUTPUTS in a)
    return repr(attrs), len(output)


_OUTPUTS = "langchain.chain.outputs"


def measure(size_mb: float, reps: int, max_len: int) -> Result:
    output = make_output(int(size_mb * 1_000_000))
    chain = _chain(output)
    strings = _record(chain, max_len)
    _, recorded_plain = _exported(chain, max_len, None)
    exported, recorded_hooked = _exported(chain, max_len, redact)
    leaks = [secret for secret in _SECRETS if secret in exported]
    if leaks:
        sys.exit(f"planted secrets exported with the hook on: {leaks}")
    provider = _provider(_Discard())
    plain, hooked = _handler(provider, None, max_len), _handler(provider, redact, max_len)

    def run_a() -> None:
        _invoke(chain, plain)

    def run_b() -> None:
        _invoke(chain, hooked)

    def run_c() -> None:
        for text in strings:
            redact(text)

    cases = (run_a, run_b, run_c)
    for _ in range(max(reps // 10, 3)):  # warm-up: caches, branch predictors, the allocator's free lists
        for case in cases:
            case()
    clock = time.process_time_ns
    times: list[list[int]] = [[], [], []]
    gc.collect()
    for i in range(reps):
        for k in range(3):  # rotate the order: each case goes first, second and third equally often
            j = (i + k) % 3
            start = clock()
            cases[j]()
            times[j].append(clock() - start)
    provider.shutdown()
    a, b, c = ([t / 1e6 for t in ts] for ts in times)
    return Result(size_mb, len(strings), sum(map(len, strings)), max(map(len, strings), default=0),
                  statistics.median(a), statistics.median(b), statistics.median(c),
                  statistics.median(bi - ai - ci for ai, bi, ci in zip(a, b, c, strict=True)), reps, max_len,
                  (recorded_plain, recorded_hooked))


def table(results: list[Result], path: str) -> str:
    lines = [
        f"Emission path {path}; CPU time per invoke, medians; hook = 3 regexes (e-mail, card number, API key). "
        "Recorded: characters of the exported output attribute, (a) / (b).",
        "",
        "| output | max_value_length | hook calls | chars to hook | longest | recorded | (a) no redact ms "
        "| (b) redact ms | (c) hook alone ms | b/a | (a+c)/a | b-a-c ms | b-a-c / a | rounds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.size_mb:g} MB | {r.max_len:,} | {r.calls} | {r.chars:,} | {r.longest:,} "
            f"| {r.recorded[0]:,} / {r.recorded[1]:,} | {r.a:.3f} | {r.b:.3f} | {r.c:.3f} "
            f"| {r.b / r.a:.2f}x | {(r.a + r.c) / r.a:.2f}x | {r.overhead:+.3f} | {r.overhead / r.a:+.0%} | {r.reps} |"
        )
    return "\n".join(lines)


def profile(max_len: int, reps: int) -> None:
    """cProfile of (b) on 1 MB, by own time: what redaction adds beyond the hook shows as the lines that (a) lacks."""
    chain = _chain(make_output(1_000_000))
    provider = _provider(_Discard())
    hooked = _handler(provider, redact, max_len)
    for _ in range(20):
        _invoke(chain, hooked)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(reps):
        _invoke(chain, hooked)
    profiler.disable()
    provider.shutdown()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1,50", help="output sizes in MB, comma-separated")
    parser.add_argument("--reps", type=int, default=300, help="rounds (a, b and c once each) per size")
    parser.add_argument("--max-value-length", default="16384,4096",
                        help="handler max_value_length, comma-separated (the default first)")
    parser.add_argument("--path", choices=("fast", "sdk"), default="fast",
                        help="emission path: lean spans (the default) or the SDK's own Span")
    parser.add_argument("--profile", action="store_true", help="cProfile (b) on 1 MB instead of the table")
    args = parser.parse_args(argv)
    # Read when a handler is made, so it holds for every handler below.
    os.environ["OTEL_CALLBACKS_LEAN_SPANS"] = "true" if args.path == "fast" else "false"
    if args.profile:
        profile(int(args.max_value_length.split(",")[0]), args.reps)
        return 0
    results = [measure(float(size), args.reps, int(max_len))
               for max_len in args.max_value_length.split(",") for size in args.sizes.split(",")]
    print(table(results, args.path))
    print()
    for r in results:
        floor = (r.a + r.c) / r.a
        verdict = ("the floor itself is above 2x: no design running this hook once per value can reach 2x"
                   if floor > 2 else "2x is within reach of the floor")
        print(f"- {r.size_mb:g} MB, max_value_length {r.max_len:,}: b/a {r.b / r.a:.2f}x, floor {floor:.2f}x "
              f"({verdict}); our own cost of redacting {r.overhead:+.3f} ms ({r.overhead / r.a:+.0%} of a)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
