"""The span pipeline every tracer exports through, and how its exported spans are counted.

Two kinds: the discarding exporter of the main tables (reads each span as an encoder would and drops it), and the
official OTLP exporter (HTTP/protobuf or gRPC) sending to the loopback receiver of receiver.py, for the real-export
table. Both sit behind the SDK-default ``BatchSpanProcessor``.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Sequence
from typing import Protocol

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Sampler

# "discard" is the main tables' exporter; the others are the real-export table's protocols.
EXPORTS = ("discard", "http", "grpc")


class SpanCounter(Protocol):
    def totals(self) -> dict[str, int]:
        """Running totals: ``spans`` exported so far, and for real export (else 0) their ``attributes`` and
        ``events``, ``wire_bytes`` and ``proto_bytes``."""
        ...


class DiscardingExporter(SpanExporter):
    """Reads each span as an encoder would (attributes, events, links), counts it and drops it: no export I/O is
    timed, and a tracer that defers work until its spans are read (ours makes chunk events then) pays for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.fields = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        fields = 0
        for span in spans:
            fields += len(span.attributes or {})
            for event in span.events:
                fields += len(event.name) + len(event.attributes or {}) + (event.timestamp > 0)
            fields += len(span.links) + span.dropped_attributes + span.dropped_events
        with self._lock:
            self.count += len(spans)
            self.fields += fields
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def totals(self) -> dict[str, int]:
        return {"spans": self.count, "attributes": 0, "events": 0, "wire_bytes": 0, "proto_bytes": 0}


class ReceiverCounter:
    """What the loopback receiver got over one protocol: spans are counted where they arrive, not where they are
    handed to an exporter, so a tracer whose spans never leave the process shows zero."""

    def __init__(self, stats_url: str, protocol: str) -> None:
        self._url = stats_url
        self._protocol = protocol

    def totals(self) -> dict[str, int]:
        with urllib.request.urlopen(self._url, timeout=10) as response:
            snapshot: dict[str, dict[str, int]] = json.loads(response.read())
        return snapshot[self._protocol]


def otlp_exporter(export: str, endpoints: dict[str, int]) -> SpanExporter:
    """The official OTLP exporter for ``export`` ("http" or "grpc") aimed at the receiver, with its defaults
    (no compression, the SDK's timeouts): what an app configured with only an endpoint runs."""
    if export == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter(endpoint=f"{http_base(endpoints)}/v1/traces")
    if export == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=f"127.0.0.1:{endpoints['grpc']}", insecure=True)
    raise ValueError(f"not a real export: {export!r}")


def http_base(endpoints: dict[str, int]) -> str:
    return f"http://127.0.0.1:{endpoints['http']}"


def counter_for(export: str, endpoints: dict[str, int] | None, exporter: SpanExporter | None) -> SpanCounter:
    if export == "discard":
        assert isinstance(exporter, DiscardingExporter)
        return exporter
    assert endpoints is not None, "real export needs the receiver's endpoints"
    return ReceiverCounter(f"{http_base(endpoints)}/stats", export)


def make_exporter(export: str, endpoints: dict[str, int] | None) -> SpanExporter:
    if export == "discard":
        return DiscardingExporter()
    assert endpoints is not None, "real export needs the receiver's endpoints"
    return otlp_exporter(export, endpoints)


def export_only_on_flush() -> None:
    """Keep the BatchSpanProcessor's 5 s timer from exporting a partly filled queue at a moment of its own (inside
    some timed call, or at a point that differs from run to run): the callers' flushes, and full batches, do all the
    exporting. Call before any provider is made (each processor reads the variable then)."""
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "3600000"


def make_provider(
    sampler: Sampler | None, export: str, endpoints: dict[str, int] | None
) -> tuple[TracerProvider, SpanCounter]:
    """The SDK pipeline shared by every tracer: BatchSpanProcessor (SDK defaults) to the chosen exporter."""
    exporter = make_exporter(export, endpoints)
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, counter_for(export, endpoints, exporter)
