"""Every malformed variable keeps the exporter: its default is used for that one setting, and exactly one warning
names the variable (issue 13, item 8).

Each case sets one malformed SDK variable, sets up OTLP export to a real receiver on 127.0.0.1 and checks that the
span (or metric) arrives. Before, ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=abc`` or an unknown compression made the gRPC
exporter raise, and set-up continued without it: nothing was exported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from otel_callbacks.setup.metrics import setup_metrics
from otel_callbacks.setup.tracing import setup_tracing
from tests._otlp_receiver import GrpcReceiver, HttpReceiver
from tests.support import one_warning
from tests.test_setup import _OTEL_VARS

PROTOCOLS = {"grpc": GrpcReceiver, "http/protobuf": HttpReceiver}

# variable -> malformed value. Each is read by the OTLP exporter or the batch processor, not by setup.env.
MALFORMED = {
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "abc",
    "OTEL_EXPORTER_OTLP_TIMEOUT": "abc",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key",
    "OTEL_EXPORTER_OTLP_HEADERS": "garbage,x=1",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "zstd",
    "OTEL_EXPORTER_OTLP_COMPRESSION": "bogus",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": "/nonexistent/ca.pem",
    "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
    "OTEL_BSP_MAX_QUEUE_SIZE": "abc",
    "OTEL_BSP_SCHEDULE_DELAY": "soon",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "0",
    "OTEL_BSP_EXPORT_TIMEOUT": "-5",
}
_CLEARED = [*_OTEL_VARS, *MALFORMED, "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_HEADERS"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* setting leaks in from the shell."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(name="receiver", params=sorted(PROTOCOLS))
def _receiver(request: pytest.FixtureRequest) -> Iterator[GrpcReceiver | HttpReceiver]:
    with PROTOCOLS[request.param]() as receiver:
        yield receiver


def _protocol(receiver: GrpcReceiver | HttpReceiver) -> str:
    return "grpc" if isinstance(receiver, GrpcReceiver) else "http/protobuf"


# A malformed protocol variable falls back to the protocol the endpoint's port implies, gRPC for a random port: that
# case is checked against the gRPC receiver only, with no protocol= argument (which would win over the variable).
SPAN_CASES = [(variable, protocol) for variable in sorted(MALFORMED) for protocol in sorted(PROTOCOLS)
              if not (variable.endswith("PROTOCOL") and protocol != "grpc")]


@pytest.mark.parametrize(("variable", "protocol"), SPAN_CASES)
def test_malformed_variable_keeps_the_span_exporter(
    variable: str, protocol: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """One malformed variable: one warning naming it, and the span still reaches the receiver."""
    monkeypatch.setenv(variable, MALFORMED[variable])
    caplog.set_level(logging.WARNING)
    with PROTOCOLS[protocol]() as receiver:
        given = None if variable.endswith("PROTOCOL") else protocol
        provider = setup_tracing(["otlp"], endpoint=receiver.endpoint, protocol=given, set_global=False)
        with provider.get_tracer("t").start_as_current_span("kept"):
            pass
        provider.shutdown()
    assert variable in one_warning(caplog)
    assert receiver.span_names() == ["kept"]


def test_valid_generic_variable_applies_after_a_malformed_signal_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed signal variable counts as unset, so the well-formed generic one applies (as the warning says)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "abc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "7")
    with GrpcReceiver() as receiver:
        provider = setup_tracing(["otlp"], endpoint=receiver.endpoint, protocol="grpc", set_global=False)
        with provider.get_tracer("t").start_as_current_span("kept"):
            pass
        provider.shutdown()
    message = one_warning(caplog)
    assert "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" in message and "OTEL_EXPORTER_OTLP_TIMEOUT (7)" in message
    assert receiver.span_names() == ["kept"]


def test_well_formed_headers_still_sent_beside_a_malformed_entry(monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The well-formed header entries are sent; the warning names the variable and the dropped entry."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=a%20b,broken")
    with HttpReceiver() as receiver:
        provider = setup_tracing(["otlp"], endpoint=receiver.endpoint, protocol="http/protobuf", set_global=False)
        with provider.get_tracer("t").start_as_current_span("kept"):
            pass
        provider.shutdown()
    message = one_warning(caplog)
    assert "OTEL_EXPORTER_OTLP_TRACES_HEADERS" in message and "'broken'" in message
    assert receiver.headers[0]["api-key"] == "a b"


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION"])
def test_malformed_variable_keeps_the_metric_exporter(
    variable: str, receiver: GrpcReceiver | HttpReceiver, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The metric exporter too: one warning naming the variable, and the metric arrives."""
    monkeypatch.setenv(variable, "abc")
    provider: MeterProvider = setup_metrics(["otlp"], endpoint=receiver.endpoint, protocol=_protocol(receiver),
                                            set_global=False)
    provider.get_meter("t").create_counter("calls").add(1)
    provider.shutdown()
    assert variable in one_warning(caplog)
    assert "calls" in receiver.last_metrics()
