"""``otel-callbacks`` command line: ``demo``, ``view`` and ``send``.

Only argument parsing, file handling, printing and exit codes live here; trees come from ``cli.tree`` and parsing from
``setup.exporters``. Exit codes: 0 success, 1 a problem with the data or backend (reported on stderr), 2 usage errors.

Example:
    >>> # otel-callbacks demo
    >>> # otel-callbacks demo --exporter file --file traces.jsonl && otel-callbacks view traces.jsonl
    >>> # OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 otel-callbacks demo --exporter otlp   (metrics too)
    >>> # otel-callbacks demo --metrics none
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from otel_callbacks.cli.reader import read_records
from otel_callbacks.cli.tree import SpanRecord, Trace, build_traces, record_from_span, render_trace

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_callbacks.setup.env import TracingSettings
    from otel_callbacks.setup.metrics import MetricsSettings

_MAX_REPORTED_ERRORS = 20


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the process exit code.

    Example:
        >>> # raise SystemExit(main(["view", "traces.jsonl", "--trace", "4bf9"]))
    """
    words = list(sys.argv[1:] if argv is None else argv)
    # `view` reads big files, often to print one trace: its parser alone keeps the exporters and SDK parts that
    # demo and send need (and their import time) out of it.
    parser = _parser(view_only=words[:1] == ["view"])
    args = parser.parse_args(words)
    try:
        return int(args.run(args))
    except BrokenPipeError:  # e.g. `otel-callbacks view big.jsonl | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


def _parser(*, view_only: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-callbacks", description="OpenTelemetry tracing for LangChain.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    if not view_only:
        _add_demo(sub)
    view = sub.add_parser("view", help="print the traces in an OTLP/JSON lines file as trees")
    view.add_argument("file", metavar="FILE", help="OTLP/JSON lines file ('-' for stdin)")
    view.add_argument("--trace", metavar="ID", help="only the trace whose id starts with ID")
    view.add_argument("--ascii", action="store_true", help="ASCII connectors instead of box drawing")
    view.set_defaults(run=_view)
    if not view_only:
        _add_send(sub)
    return parser


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from otel_callbacks.setup.env import CONSOLE_FORMATS, EXPORTER_NAMES
    from otel_callbacks.setup.exporters.otlp import PROTOCOLS

    demo = sub.add_parser("demo", help="run a traced chain + agent on fake models (no network, no API key)")
    demo.add_argument("--exporter", action="append", metavar="NAME",
                      help=f"{', '.join(EXPORTER_NAMES)}; repeat or comma-separate (default: OTEL_TRACES_EXPORTER, "
                      "else console)")
    demo.add_argument("--file", metavar="PATH", help="file for the file exporter (default: traces.jsonl)")
    demo.add_argument("--endpoint", metavar="URL", help="OTLP endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    demo.add_argument("--protocol", choices=PROTOCOLS, help="OTLP protocol (default: from env or the port)")
    demo.add_argument("--console-format", choices=CONSOLE_FORMATS, help="console output (default: tree)")
    demo.add_argument("--service-name", help="service.name (default: OTEL_SERVICE_NAME, else otel-callbacks-demo)")
    demo.add_argument("--metrics", action="append", metavar="NAME",
                      help="GenAI metrics to console, otlp or none; repeat or comma-separate (default: "
                      "OTEL_METRICS_EXPORTER, else otlp when spans go to OTLP, else console). A summary is printed "
                      "after the traces unless none")
    demo.set_defaults(run=_demo)


def _add_send(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from otel_callbacks.setup.exporters.otlp import PROTOCOLS

    send = sub.add_parser("send", help="replay an OTLP/JSON lines file to an OTLP backend")
    send.add_argument("file", metavar="FILE", help="OTLP/JSON lines file ('-' for stdin)")
    send.add_argument("--endpoint", metavar="URL", help="OTLP endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    send.add_argument("--protocol", choices=PROTOCOLS, help="OTLP protocol (default: from env or the port)")
    send.add_argument("--header", action="append", default=[], metavar="KEY=VALUE", help="extra request header")
    send.set_defaults(run=_send)


def _eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr)


def _demo(args: argparse.Namespace) -> int:
    try:
        from otel_callbacks import OpenTelemetryCallbackHandler
        from otel_callbacks.cli.demo import run_demo
    except ImportError as exc:
        _eprint(f"otel-callbacks demo: missing dependency ({exc.name}); "
                "install it with: pip install 'otel-callbacks[demo]'")
        return 1
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_callbacks.setup.env import resolve_settings
    from otel_callbacks.setup.lifecycle import shutdown_bounded
    from otel_callbacks.setup.metrics import build_meter_provider, resolve_metrics_settings
    from otel_callbacks.setup.tracing import build_provider

    try:
        settings = resolve_settings(exporters=args.exporter, file_path=args.file, endpoint=args.endpoint,
                                    protocol=args.protocol, console_format=args.console_format)
        msettings = resolve_metrics_settings(
            exporters=args.metrics, default_exporters=("otlp",) if "otlp" in settings.exporters else ("console",),
            endpoint=args.endpoint, protocol=args.protocol, console_format=args.console_format)
    except ValueError as exc:
        _eprint(f"otel-callbacks demo: {exc}")
        return 2
    provider = build_provider(settings, service_name=args.service_name, default_service_name="otel-callbacks-demo",
                              set_global=False)
    memory = InMemorySpanExporter()
    if "console" not in settings.exporters:  # the demo always shows its tree, whatever else it exports to
        provider.add_span_processor(SimpleSpanProcessor(memory))
    # Likewise the metric summary, unless metrics are off: the console exporter prints it at shutdown, else a reader.
    metric_memory = InMemoryMetricReader() if msettings.exporters and "console" not in msettings.exporters else None
    meter_provider = build_meter_provider(
        msettings, service_name=args.service_name, default_service_name="otel-callbacks-demo", set_global=False,
        extra=[metric_memory] if metric_memory else ()) if msettings.exporters else None
    handler = OpenTelemetryCallbackHandler(tracer_provider=provider, meter_provider=meter_provider)
    try:
        run_demo(handler)
    except Exception as exc:  # the demo is scripted; a failure here is a bug worth a one-line report, not a trace
        _eprint(f"otel-callbacks demo: the demo failed: {type(exc).__name__}: {exc}")
        shutdown_bounded(provider, settings.exit_timeout_millis)
        if meter_provider is not None:
            shutdown_bounded(meter_provider, msettings.exit_timeout_millis, what="metrics")
        return 1
    flushed = shutdown_bounded(provider, _flush_wait(settings.exit_timeout_millis, settings.timeout))
    if "console" not in settings.exporters:
        _print_traces(build_traces(record_from_span(s) for s in memory.get_finished_spans()), sys.stdout)
        if meter_provider is not None:
            print()  # the console tree exporter ends each trace with a blank line; keep the same gap before metrics
    if meter_provider is not None:
        if metric_memory is not None:
            _print_metrics(metric_memory)
        # Metrics go out last, after the traces are printed, so the console summary follows the trees.
        wait = _flush_wait(msettings.exit_timeout_millis, msettings.timeout)
        flushed = shutdown_bounded(meter_provider, wait, what="metrics") and flushed
    _report_destinations(settings, msettings)
    return 0 if flushed else 1


def _print_metrics(reader: InMemoryMetricReader) -> None:
    from otel_callbacks.setup.exporters import render_metrics

    for line in render_metrics(reader.get_metrics_data()):
        print(line, file=sys.stdout)


def _flush_wait(exit_timeout_millis: int, timeout: float | None) -> int:
    # With an explicit request timeout, wait for one whole export attempt; else the exporter's own timeout applies
    # and the exit bound is what the user set for waiting.
    return exit_timeout_millis if timeout is None else max(exit_timeout_millis, int(timeout * 1000) + 1000)


def _report_destinations(settings: TracingSettings, msettings: MetricsSettings) -> None:
    if "file" in settings.exporters:
        path = settings.file_path
        _eprint(f"Spans written to {path}; view them again with: otel-callbacks view {path}")
    if "otlp" in settings.exporters:
        _eprint(f"Spans sent to {_destination(settings.endpoint, 'TRACES')} ({settings.protocol}); with "
                "`docker compose up`, open Jaeger at http://localhost:16686 and pick the service.")
    if "otlp" in msettings.exporters:
        _eprint(f"Metrics sent to {_destination(msettings.endpoint, 'METRICS')} ({msettings.protocol}); with "
                "`docker compose up`, the Collector serves them for Prometheus at http://localhost:8889/metrics.")


def _destination(endpoint: str | None, signal: str) -> str:
    # Without --endpoint the OTLP exporter chose the endpoint from its environment; name where it looked.
    return endpoint or f"the endpoint of OTEL_EXPORTER_OTLP_[{signal}_]ENDPOINT (default localhost)"


def _print_traces(traces: list[Trace], out: IO[str], *, ascii_only: bool | None = None) -> None:
    if ascii_only is None:
        try:
            "├└│─".encode(getattr(out, "encoding", None) or "utf-8")
            ascii_only = False
        except (UnicodeEncodeError, LookupError):
            ascii_only = True
    # One write per trace, blank line between traces: the bytes render_traces + print would give, without holding
    # every line of a big file at once.
    for index, trace in enumerate(traces):
        out.write(("\n" if index else "") + "\n".join(render_trace(trace, ascii_only=ascii_only)) + "\n")


def _open_lines(path: str, command: str) -> IO[str] | None:
    try:
        return sys.stdin if path == "-" else open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        _eprint(f"otel-callbacks {command}: cannot read {path}: {exc.strerror or exc}")
        return None


def _report_errors(path: str, errors: list[tuple[int, str]]) -> None:
    for number, problem in errors[:_MAX_REPORTED_ERRORS]:
        _eprint(f"{path}:{number}: {problem}")
    if len(errors) > _MAX_REPORTED_ERRORS:
        _eprint(f"{path}: ... and {len(errors) - _MAX_REPORTED_ERRORS} more malformed lines")


def _read_file(path: str, command: str) -> tuple[list[SpanRecord] | None, list[ExportTraceServiceRequest], int]:
    """Returns (records or None if unreadable, requests, malformed line count); problems go to stderr."""
    from otel_callbacks.setup.exporters import parse_lines, records_from_request

    handle = _open_lines(path, command)
    if handle is None:
        return None, [], 0
    try:
        requests, errors = parse_lines(handle)
    except OSError as exc:
        _eprint(f"otel-callbacks {command}: cannot read {path}: {exc.strerror or exc}")
        return None, [], 0
    finally:
        if handle is not sys.stdin:
            handle.close()
    _report_errors(path, errors)
    records = [rec for request in requests for rec in records_from_request(request)]
    return records, requests, len(errors)


def _view(args: argparse.Namespace) -> int:
    # Nothing read, built or rendered here forms a reference cycle, and the records pile up: with the collector on,
    # each of its full passes rescans every record held so far, which costs more than parsing the file.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _view_file(args)
    finally:
        if collecting:
            gc.enable()


def _view_file(args: argparse.Namespace) -> int:
    wanted = args.trace.lower().removeprefix("0x") if args.trace else None
    handle = _open_lines(args.file, "view")
    if handle is None:
        return 2
    try:
        # Line by line: only span records stay in memory, and with --trace only the lines that can hold the trace
        # are decoded (see cli.reader).
        records, errors = read_records(handle, trace_prefix=wanted)
    except OSError as exc:
        _eprint(f"otel-callbacks view: cannot read {args.file}: {exc.strerror or exc}")
        return 2
    finally:
        if handle is not sys.stdin:
            handle.close()
    traces = build_traces(records)
    del records  # the traces hold the records; the list itself is not needed while printing
    _report_errors(args.file, errors)
    if wanted is not None and not traces:
        _eprint(f"otel-callbacks view: no trace id starting with {args.trace!r} in {args.file}")
        return 1
    if not traces:
        _eprint(f"otel-callbacks view: no spans in {args.file}")
    _print_traces(traces, sys.stdout, ascii_only=args.ascii or None)
    if errors:
        bad = len(errors)
        _eprint(f"otel-callbacks view: {bad} malformed line{'s' if bad != 1 else ''} skipped (see above)")
        return 1
    return 0


def _send(args: argparse.Namespace) -> int:
    from otel_callbacks.setup.env import resolve_replay_target
    from otel_callbacks.setup.exporters.replay import ReplayError, send_request

    headers: dict[str, str] = {}
    for item in args.header:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _eprint(f"otel-callbacks send: --header expects KEY=VALUE, got {item!r}")
            return 2
        headers[key.strip()] = value.strip()
    try:
        target = resolve_replay_target(endpoint=args.endpoint, protocol=args.protocol, headers=headers or None)
    except ValueError as exc:
        _eprint(f"otel-callbacks send: {exc}")
        return 2
    records, requests, bad = _read_file(args.file, "send")
    if records is None:
        return 2
    sent = 0
    for request in requests:
        try:
            send_request(request, protocol=target.protocol, endpoint=target.endpoint, headers=target.headers,
                         timeout=target.timeout)
        except ReplayError as exc:
            _eprint(f"otel-callbacks send: {exc}")
            return 1
        sent += 1
    print(f"Sent {len(records)} spans in {sent} request{'s' if sent != 1 else ''} to {target.endpoint} "
          f"({target.protocol}).")
    return 1 if bad else 0
