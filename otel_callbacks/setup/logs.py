"""The one module that imports the OpenTelemetry logs SDK: every other module of ours takes these names from here.

The logs signal is not stable in the SDK versions we support (opentelemetry-sdk 1.39 to 1.45 at least), so its
modules are still underscored, and they are the only way to it: the API ``opentelemetry._logs``, the SDK
``opentelemetry.sdk._logs`` and ``opentelemetry.sdk._logs.export``, the OTLP exporters'
``opentelemetry.exporter.otlp.proto.{http,grpc}._log_exporter`` and the encoder
``opentelemetry.exporter.otlp.proto.common._log_encoder``. The names used here exist unchanged from 1.39 on (the
``*LogRecord*`` spellings; the older ``LogExporter`` / ``ConsoleLogExporter`` are deprecated aliases). When the
SDK renames them (logs going stable), this file is the one to change; ``tests/test_setup_logs.py`` pins them.

The OTLP exporter modules are imported on first use, as for spans, so that console users never load gRPC.

Example:
    >>> # provider = LoggerProvider(); provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry._logs import LogRecord, get_logger_provider, set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    InMemoryLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)

from otel_callbacks.setup.exporters.otlp import GRPC, HTTP_PROTOBUF, PROTOCOLS, construct_otlp
from otel_callbacks.setup.sdk_env import NO_FALLBACKS, OtlpFallbacks

if TYPE_CHECKING:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

__all__ = [
    "BatchLogRecordProcessor", "ConsoleLogRecordExporter", "InMemoryLogRecordExporter", "LogRecord",
    "LogRecordExportResult", "LogRecordExporter", "LogRecordProcessor", "LoggerProvider", "ReadableLogRecord",
    "SimpleLogRecordProcessor", "encode_logs", "global_logger_provider", "global_logger_provider_installed",
    "make_otlp_log_exporter", "set_global_logger_provider",
]


def encode_logs(records: Sequence[ReadableLogRecord]) -> ExportLogsServiceRequest:
    """The OTLP protobuf request for ``records``, by the official encoder (what the OTLP log exporters send)."""
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as encode

    return encode(records)


def make_otlp_log_exporter(
    protocol: str, *, endpoint: str | None = None, headers: Mapping[str, str] | None = None,
    timeout: float | None = None, fallbacks: OtlpFallbacks = NO_FALLBACKS,
) -> LogRecordExporter:
    """Create the official OTLP log exporter, handing it only the caller's explicit values: what is left None it
    reads from ``OTEL_EXPORTER_OTLP_[LOGS_]*`` itself (an explicit HTTP ``endpoint`` is the final ``/v1/logs`` URL)."""
    if protocol == HTTP_PROTOBUF:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter

        return construct_otlp(HttpExporter, protocol, endpoint=endpoint, headers=headers, timeout=timeout,
                              fallbacks=fallbacks)
    if protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter

        return construct_otlp(GrpcExporter, protocol, endpoint=endpoint, headers=headers, timeout=timeout,
                              fallbacks=fallbacks)
    raise ValueError(f"unknown OTLP protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")


def global_logger_provider() -> object:
    """The global ``LoggerProvider`` (the API's proxy until one is installed)."""
    return get_logger_provider()


def global_logger_provider_installed() -> bool:
    """Whether a global ``LoggerProvider`` is installed. Until then the API hands out a proxy (a class it does not
    export, hence the name check, as for meter providers)."""
    return type(get_logger_provider()).__name__ != "ProxyLoggerProvider"


def set_global_logger_provider(provider: LoggerProvider) -> None:
    """Install ``provider`` as the global one (the API allows it once)."""
    set_logger_provider(provider)
