"""Tests for setup_metrics and setup_tracing(metrics=...): env precedence and warnings, console summary, OTLP metrics
arriving at a loopback receiver over gRPC and HTTP with the GenAI names, units, buckets and the demo's values."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExporter, MetricExportResult
from opentelemetry.sdk.trace import TracerProvider

from otel_callbacks import OpenTelemetryCallbackHandler
from otel_callbacks.cli.demo import run_demo
from otel_callbacks.emit.metrics import (
    DURATION_BUCKETS,
    OPERATION_DURATION,
    TIME_PER_OUTPUT_CHUNK,
    TIME_TO_FIRST_CHUNK,
    TOKEN_BUCKETS,
    TOKEN_USAGE,
)
from otel_callbacks.setup.exporters import render_metrics
from otel_callbacks.setup.metrics import resolve_metrics_settings, setup_metrics
from otel_callbacks.setup.tracing import setup_tracing
from tests._otlp_receiver import GrpcReceiver, HttpReceiver
from tests.support import one_warning
from tests.test_setup import run_script

# The demo's scripted usage: the streamed chain (18 in / 11 out), then the agent's two model calls (42/21, 77/16).
DEMO_INPUT_TOKENS = (18, 42, 77)
DEMO_OUTPUT_TOKENS = (11, 21, 16)
DEMO_STREAMED_CHUNKS = 10  # the chain's answer, one chunk per word
CUMULATIVE = 2  # AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE in OTLP

_OTEL_VARS = [
    "OTEL_METRICS_EXPORTER", "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_METRICS_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT",
    "OTEL_CALLBACKS_CONSOLE_FORMAT", "OTEL_CALLBACKS_EXIT_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without OTEL_* settings leaking in from the shell."""
    for name in _OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


def run_demo_with(meter_provider: MeterProvider) -> None:
    handler = OpenTelemetryCallbackHandler(TracerProvider(), meter_provider=meter_provider)
    handler.raise_error = True
    run_demo(handler)


class TestSettings:
    def test_default_is_console(self) -> None:
        """Nothing set: the console summary; OTLP would be gRPC; nothing is passed to the exporter or the reader,
        whose own defaults apply (localhost:4317, a 60 s interval)."""
        s = resolve_metrics_settings()
        assert (s.exporters, s.protocol, s.endpoint, s.headers, s.timeout, s.interval_millis) == (
            ("console",), "grpc", None, None, None, None)

    def test_env_list_and_argument_precedence(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_METRICS_EXPORTER is a comma list; an explicit argument wins over it."""
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", " OTLP, console,otlp")
        assert resolve_metrics_settings().exporters == ("otlp", "console")
        assert resolve_metrics_settings(exporters="console").exporters == ("console",)

    def test_none_disables(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_METRICS_EXPORTER=none means no exporter."""
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
        assert resolve_metrics_settings().exporters == ()

    def test_bad_env_exporter_warns_and_defaults(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """prometheus (a distro name we do not serve) is dropped with one warning naming the variable and values."""
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
        assert resolve_metrics_settings().exporters == ("console",)
        message = one_warning(caplog)
        assert "OTEL_METRICS_EXPORTER" in message and "console, otlp, none" in message

    def test_bad_argument_raises(self) -> None:
        """file is a span exporter only: as an argument it is a ValueError listing the metric exporters."""
        with pytest.raises(ValueError, match="console, otlp, none"):
            resolve_metrics_settings(exporters=["file"])
        with pytest.raises(ValueError, match="interval_millis"):
            resolve_metrics_settings(interval_millis=0)

    def test_distro_alias_and_endpoint_imply_otlp(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """otlp_proto_http selects OTLP/HTTP; endpoint= alone turns OTLP on with /v1/metrics for HTTP."""
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp_proto_http")
        s = resolve_metrics_settings()
        assert (s.exporters, s.protocol, s.endpoint) == (("otlp",), "http/protobuf", None)
        monkeypatch.delenv("OTEL_METRICS_EXPORTER")
        s = resolve_metrics_settings(endpoint="http://h:4318/base/")
        assert (s.exporters, s.protocol, s.endpoint) == (("otlp",), "http/protobuf", "http://h:4318/base/v1/metrics")

    def test_metrics_protocol_beats_generic_and_traces_variables_do_not_apply(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The protocol is ours to choose: OTEL_EXPORTER_OTLP_METRICS_PROTOCOL beats the generic variable, the
        metrics endpoint's port beats the generic endpoint's, and the traces variables play no part."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4317")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces-only:4318/t")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
        assert resolve_metrics_settings().protocol == "grpc"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4318/m")
        assert resolve_metrics_settings().protocol == "http/protobuf"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")
        s = resolve_metrics_settings()
        assert (s.protocol, s.endpoint) == ("grpc", None)
        s = resolve_metrics_settings(endpoint="http://arg:4317", headers={"k": "v"}, timeout=1)
        assert (s.endpoint, s.headers, s.timeout) == ("http://arg:4317", {"k": "v"}, 1)

    @pytest.mark.parametrize(("name", "value", "expect"), [
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json", "grpc, http/protobuf"),
        ("OTEL_CALLBACKS_CONSOLE_FORMAT", "yaml", "tree, json"),
    ])
    def test_bad_env_values_warn_once_and_default(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, name: str, value: str, expect: str
    ) -> None:
        """Each malformed variable of ours: one warning naming it and its valid values, then the default."""
        monkeypatch.setenv(name, value)
        s = resolve_metrics_settings()
        assert (s.protocol, s.console_format) == ("grpc", "tree")
        message = one_warning(caplog)
        assert name in message and expect in message

    def test_interval_is_the_readers_unless_given(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_METRIC_EXPORT_INTERVAL is left to the periodic reader; interval_millis= is passed to it."""
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "250")
        assert resolve_metrics_settings().interval_millis is None
        assert resolve_metrics_settings(interval_millis=1000).interval_millis == 1000


class CountingExporter(MetricExporter):
    """Counts exports; a stand-in backend for checking what the periodic reader does."""

    def __init__(self) -> None:
        super().__init__()
        self.exports = 0

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.exports += 1
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


class TestReaderEnvironment:
    def test_interval_env_reaches_the_reader(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The reader reads OTEL_METRIC_EXPORT_INTERVAL itself: at 50 ms it exports without waiting for shutdown
        (the default would wait 60 s)."""
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "50")
        exporter = CountingExporter()
        provider = setup_metrics([exporter], set_global=False)
        try:
            provider.get_meter("m").create_counter("c").add(1)
            deadline = time.monotonic() + 10
            while not exporter.exports and time.monotonic() < deadline:
                time.sleep(0.02)
            assert exporter.exports >= 1, "no periodic export within 10 s"
        finally:
            provider.shutdown()

    def test_interval_env_the_reader_refuses_does_not_stop_setup(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """OTEL_METRIC_EXPORT_INTERVAL=0 (the SDK raises ValueError for it) warns once, naming the variable, and
        the default interval is used: the provider still exports at shutdown."""
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "0")
        exporter = CountingExporter()
        provider = setup_metrics([exporter], set_global=False)
        assert "OTEL_METRIC_EXPORT_INTERVAL" in one_warning(caplog)
        provider.get_meter("m").create_counter("c").add(1)
        provider.shutdown()
        assert exporter.exports == 1


class TestProvider:
    def test_console_summary_at_shutdown(self, providers: list[MeterProvider]) -> None:
        """The console exporter prints one line per metric and attribute set with the demo's counts and sums."""
        out = io.StringIO()
        provider = setup_metrics("console", console_out=out, service_name="svc", set_global=False)
        run_demo_with(provider)
        assert out.getvalue() == ""  # nothing before the interval (60 s) or shutdown
        provider.shutdown()
        lines = out.getvalue().splitlines()
        assert lines[0].startswith("metrics  service=svc  on every point: gen_ai.operation.name=chat ")
        assert "gen_ai.provider.name=demo gen_ai.request.model=demo-model-1" in lines[0]
        rows = {" ".join(line.split()[::len(line.split()) - 1]): line.split() for line in lines[1:]}
        assert rows["gen_ai.client.token.usage gen_ai.token.type=input"][2:4] == [
            f"count={len(DEMO_INPUT_TOKENS)}", f"sum={sum(DEMO_INPUT_TOKENS)}"]
        assert rows["gen_ai.client.token.usage gen_ai.token.type=output"][2:6] == [
            "count=3", f"sum={sum(DEMO_OUTPUT_TOKENS)}", f"min={min(DEMO_OUTPUT_TOKENS)}",
            f"max={max(DEMO_OUTPUT_TOKENS)}"]
        durations = {line.split()[0]: line.split() for line in lines[1:] if " s " in line}
        assert durations[OPERATION_DURATION][2] == "count=3"
        assert durations[TIME_TO_FIRST_CHUNK][2] == "count=1"
        assert durations[TIME_PER_OUTPUT_CHUNK][2] == f"count={DEMO_STREAMED_CHUNKS - 1}"

    def test_console_json_is_the_sdk_exporter(self, providers: list[MeterProvider]) -> None:
        """console_format='json' keeps the SDK's ConsoleMetricExporter output available."""
        out = io.StringIO()
        provider = setup_metrics("console", console_format="json", console_out=out, set_global=False)
        run_demo_with(provider)
        provider.shutdown()
        names = {m["name"] for rm in json.loads(out.getvalue())["resource_metrics"] for sm in rm["scope_metrics"]
                 for m in sm["metrics"]}
        assert {TOKEN_USAGE, OPERATION_DURATION, TIME_TO_FIRST_CHUNK, TIME_PER_OUTPUT_CHUNK} <= names

    def test_reader_instance_gets_genai_buckets_and_resource(
        self, monkeypatch: pytest.MonkeyPatch, providers: list[MeterProvider]
    ) -> None:
        """A MetricReader passed in is used as is; histograms carry the advised GenAI buckets, not the SDK's."""
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=dev")
        reader = InMemoryMetricReader()
        providers.append(p := setup_metrics([reader], service_name="svc", set_global=False))
        run_demo_with(p)
        data = reader.get_metrics_data()
        assert data is not None
        (rm,) = data.resource_metrics
        assert (rm.resource.attributes["service.name"], rm.resource.attributes["deployment.environment"]) == (
            "svc", "dev")
        metrics = {m.name: m for sm in rm.scope_metrics for m in sm.metrics}
        assert metrics[TOKEN_USAGE].data.data_points[0].explicit_bounds == TOKEN_BUCKETS
        for name in (OPERATION_DURATION, TIME_TO_FIRST_CHUNK, TIME_PER_OUTPUT_CHUNK):
            assert metrics[name].data.data_points[0].explicit_bounds == DURATION_BUCKETS

    def test_shutdown_runs_once_quietly(self, caplog: pytest.LogCaptureFixture) -> None:
        """A second shutdown (user call, then our exit hook) neither re-exports nor logs the SDK's warning."""
        out = io.StringIO()
        provider = setup_metrics("console", console_out=out, set_global=False)
        run_demo_with(provider)
        provider.shutdown()
        provider.shutdown()
        assert out.getvalue().count("metrics  service=") == 1
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    def test_broken_grpc_env_keeps_the_exporter(
        self, monkeypatch: pytest.MonkeyPatch, providers: list[MeterProvider], caplog: pytest.LogCaptureFixture
    ) -> None:
        """The gRPC exporter raises on a bad metrics timeout variable; set-up warns once naming it and keeps the
        exporter (tests/test_setup_env.py checks that metrics still arrive)."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "abc")
        providers.append(setup_metrics(["otlp"], protocol="grpc", set_global=False))
        message = one_warning(caplog)
        assert "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT" in message and "continuing without it" not in message

    def test_tracing_metrics_option_needs_global(self) -> None:
        """setup_tracing(metrics=True, set_global=False) is a ValueError pointing at setup_metrics."""
        with pytest.raises(ValueError, match="setup_metrics"):
            setup_tracing("none", metrics=True, set_global=False)

    def test_tracing_ignores_metrics_env_when_not_global(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With set_global=False no MeterProvider is made from OTEL_METRICS_EXPORTER (nothing could use it)."""
        from opentelemetry import metrics

        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
        before = metrics.get_meter_provider()
        provider = setup_tracing("none", set_global=False)
        provider.shutdown()
        assert metrics.get_meter_provider() is before


class TestRender:
    def test_single_point_keeps_its_attributes(self) -> None:
        """With one point nothing is common: its attributes stay on its line; gauges show their value."""
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        provider.get_meter("m").create_histogram("h", unit="s").record(0.25, {"k": "v"})
        provider.get_meter("m").create_counter("c").add(3)
        lines = render_metrics(reader.get_metrics_data())
        provider.shutdown()
        assert lines[0].startswith("metrics  service=") and "on every point" not in lines[0]
        assert lines[1].split() == ["c", "value=3"]
        assert lines[2].split() == ["h", "s", "count=1", "sum=0.25", "min=0.25", "max=0.25", "k=v"]

    def test_nothing_recorded_prints_nothing(self) -> None:
        """An empty export prints no header (a periodic console exporter stays quiet when idle)."""
        assert render_metrics(None) == []


def record_one(provider: MeterProvider) -> None:
    """One counter increment, exported by the shutdown."""
    provider.get_meter("m").create_counter("c").add(1)
    provider.shutdown()


def metric(received: dict[str, Metric], name: str) -> Metric:
    assert name in received, sorted(received)
    return received[name]


def attrs(point: Any) -> dict[str, Any]:
    return {kv.key: kv.value.string_value or kv.value.int_value for kv in point.attributes}


@pytest.mark.integration
class TestOtlpMetrics:
    @pytest.mark.parametrize("receiver_cls", [GrpcReceiver, HttpReceiver])
    def test_demo_metrics_arrive(self, receiver_cls: type[GrpcReceiver | HttpReceiver]) -> None:
        """Over gRPC and HTTP: the four GenAI histograms with their units, buckets, attributes and demo values."""
        with receiver_cls() as receiver:
            protocol = "grpc" if receiver_cls is GrpcReceiver else "http/protobuf"
            provider = setup_metrics(["otlp"], endpoint=receiver.endpoint, protocol=protocol, headers={"X-Key": "k"},
                                     service_name="demo-svc", set_global=False)
            run_demo_with(provider)
            provider.shutdown()
            received = receiver.last_metrics()
        assert receiver.metric_headers[-1]["x-key"] == "k"
        if receiver_cls is HttpReceiver:
            assert set(receiver.metric_paths) == {"/v1/metrics"}
        resource = {kv.key: kv.value.string_value for kv in receiver.metric_requests[-1].resource_metrics[0].resource
                    .attributes}
        assert resource["service.name"] == "demo-svc"

        tokens = metric(received, TOKEN_USAGE)
        assert tokens.unit == "{token}" and tokens.histogram.aggregation_temporality == CUMULATIVE
        by_type = {attrs(p)["gen_ai.token.type"]: p for p in tokens.histogram.data_points}
        for kind, values in (("input", DEMO_INPUT_TOKENS), ("output", DEMO_OUTPUT_TOKENS)):
            point = by_type[kind]
            assert (point.count, point.sum, point.min, point.max) == (len(values), sum(values), min(values),
                                                                      max(values))
            assert list(point.explicit_bounds) == list(TOKEN_BUCKETS)
            assert sum(point.bucket_counts) == len(values)
            assert attrs(point) == {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "demo",
                                    "gen_ai.request.model": "demo-model-1", "gen_ai.token.type": kind}

        expected_counts = {OPERATION_DURATION: 3, TIME_TO_FIRST_CHUNK: 1,
                           TIME_PER_OUTPUT_CHUNK: DEMO_STREAMED_CHUNKS - 1}
        for name, count in expected_counts.items():
            m = metric(received, name)
            (point,) = m.histogram.data_points
            assert m.unit == "s" and point.count == count
            assert list(point.explicit_bounds) == list(DURATION_BUCKETS)
            assert 0 < point.min <= point.max < 5
        # The demo streams with a 30 ms pause before the first chunk and 5 ms between chunks.
        assert metric(received, TIME_TO_FIRST_CHUNK).histogram.data_points[0].sum >= 0.03
        assert metric(received, TIME_PER_OUTPUT_CHUNK).histogram.data_points[0].min >= 0.005

    def test_metrics_variables_beat_generic_ones_and_arguments_beat_both(self, monkeypatch: pytest.MonkeyPatch
                                                                         ) -> None:
        """As the exporter reads them: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (a full URL) and _HEADERS win over the
        generic variables; endpoint= and headers= win over all of them."""
        with HttpReceiver() as receiver, socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", nowhere)
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=generic")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", receiver.endpoint + "/custom/v1/metrics")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "a=metrics")
            record_one(setup_metrics(["otlp"], set_global=False))
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", nowhere + "/v1/metrics")
            record_one(setup_metrics(["otlp"], endpoint=receiver.endpoint, headers={"a": "argument"},
                                     set_global=False))
        assert receiver.metric_paths == ["/custom/v1/metrics", "/v1/metrics"]
        assert [h["a"] for h in receiver.metric_headers] == ["metrics", "argument"]

    def test_env_only_configuration_over_http(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """OTEL_METRICS_EXPORTER + the generic OTLP variables alone route metrics to {base}/v1/metrics."""
        with HttpReceiver() as receiver:
            monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "api-key=a%20b")
            monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
            provider = setup_metrics(set_global=False)
            run_demo_with(provider)
            deadline = time.monotonic() + 10
            while not receiver.metric_requests and time.monotonic() < deadline:
                time.sleep(0.05)  # the periodic reader exports without waiting for shutdown
            assert receiver.metric_requests, "no periodic export within 10 s"
            provider.shutdown()
        assert receiver.metric_paths[0] == "/v1/metrics" and receiver.metric_headers[0]["api-key"] == "a b"
        assert TOKEN_USAGE in receiver.last_metrics()


@pytest.mark.integration
class TestProcessLifecycle:
    def test_global_install_and_handler_picks_it_up(self) -> None:
        """set_global installs the provider; a handler made afterwards records into it; a second call warns."""
        result = run_script("""
            import io
            from opentelemetry import metrics
            from opentelemetry.sdk.trace import TracerProvider
            from otel_callbacks import OpenTelemetryCallbackHandler
            from otel_callbacks.cli.demo import run_demo
            from otel_callbacks.setup.metrics import setup_metrics
            out = io.StringIO()
            first = setup_metrics("console", console_out=out)
            assert metrics.get_meter_provider() is first
            second = setup_metrics("none")
            assert metrics.get_meter_provider() is first
            run_demo(OpenTelemetryCallbackHandler(TracerProvider()))
            first.shutdown()
            assert "gen_ai.client.token.usage" in out.getvalue(), out.getvalue()
        """)
        assert result.returncode == 0, result.stderr
        assert "A global MeterProvider" in result.stderr and "already installed" in result.stderr

    @pytest.mark.parametrize("how", ["env", "argument"])
    def test_setup_tracing_metrics_follow_spans_to_otlp(self, how: str) -> None:
        """setup_tracing(metrics=True) or OTEL_METRICS_EXPORTER: metrics reach the same OTLP endpoint as spans,
        flushed at interpreter exit (interval far away)."""
        with GrpcReceiver() as receiver:
            option = ", metrics=True" if how == "argument" else ""
            env = {"OTEL_METRIC_EXPORT_INTERVAL": "600000"}
            if how == "env":
                env["OTEL_METRICS_EXPORTER"] = "otlp"
            result = run_script(f"""
                from otel_callbacks import OpenTelemetryCallbackHandler
                from otel_callbacks.cli.demo import run_demo
                from otel_callbacks.setup.tracing import setup_tracing
                setup_tracing(["otlp"], endpoint={receiver.endpoint!r}, service_name="both"{option})
                run_demo(OpenTelemetryCallbackHandler())
            """, env=env)
            assert result.returncode == 0, result.stderr
        assert "invoke_agent weather_agent" in receiver.span_names()
        points = {attrs(p)["gen_ai.token.type"]: p for p in receiver.last_metrics()[TOKEN_USAGE].histogram.data_points}
        assert points["input"].sum == sum(DEMO_INPUT_TOKENS)

    def test_setup_tracing_bad_metrics_installs_nothing_and_existing_provider_is_kept(self) -> None:
        """A bad metrics= raises before any provider is installed; with a meter provider already installed,
        metrics=True warns and leaves it in place."""
        result = run_script("""
            from opentelemetry import metrics, trace
            from opentelemetry.sdk.metrics import MeterProvider
            from otel_callbacks.setup.tracing import setup_tracing
            try:
                setup_tracing("none", metrics=["file"])
            except ValueError as exc:
                assert "console, otlp, none" in str(exc), exc
            else:
                raise AssertionError("no ValueError")
            assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
            mine = MeterProvider()
            metrics.set_meter_provider(mine)
            setup_tracing("none", metrics=True)
            assert metrics.get_meter_provider() is mine
        """)
        assert result.returncode == 0, result.stderr
        assert "A global MeterProvider (MeterProvider) is already installed" in result.stderr

    def test_setup_tracing_without_metrics_env_makes_none(self) -> None:
        """By default setup_tracing leaves metrics alone: the handler then records none (the API's no-op)."""
        result = run_script("""
            from opentelemetry import metrics
            from otel_callbacks.setup.tracing import setup_tracing
            setup_tracing("none")
            assert type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
        """)
        assert result.returncode == 0, result.stderr

    def test_exit_bounded_with_unresponsive_backend(self) -> None:
        """A backend that accepts but never answers cannot hold the process past the exit bound."""
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
            start = time.monotonic()
            result = run_script(f"""
                from opentelemetry.sdk.trace import TracerProvider
                from otel_callbacks import OpenTelemetryCallbackHandler
                from otel_callbacks.cli.demo import run_demo
                from otel_callbacks.setup.metrics import setup_metrics
                setup_metrics(["otlp"], endpoint={endpoint!r}, protocol="http/protobuf", timeout=30)
                run_demo(OpenTelemetryCallbackHandler(TracerProvider()))
            """, env={"OTEL_CALLBACKS_EXIT_TIMEOUT": "500"})
            elapsed = time.monotonic() - start
        assert result.returncode == 0, result.stderr
        assert "Gave up flushing metrics after 500 ms" in result.stderr
        assert elapsed < 20
