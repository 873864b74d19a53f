"""Offline validation of otel-collector-gateway.yaml, the "at scale" Collector gateway (no Collector runs in CI).

Checks, as tests/test_compose.py does for the local Collector: every pipeline component defined and every defined
one used, receivers on distinct ports of all interfaces; then what makes the gateway work at all: the load-balancing
hop routes by trace id to the sampling receiver of the same file, tail sampling runs only behind that hop (never on
what applications send, where a trace's spans are spread over instances), and the policies keep errored, slow and
token-heavy traces by the attribute names otel-callbacks writes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_callbacks import _semconv as sc

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("receivers", "processors", "exporters", "connectors")
# tail_sampling policy types of contrib 0.144 (processor/tailsamplingprocessor/README.md)
POLICY_TYPES = {"always_sample", "latency", "numeric_attribute", "probabilistic", "status_code", "string_attribute",
                "trace_state", "trace_flags", "rate_limiting", "bytes_limiting", "span_count", "boolean_attribute",
                "ottl_condition", "and", "drop", "composite"}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")


@pytest.fixture(name="gateway", scope="module")
def _gateway() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "otel-collector-gateway.yaml").read_text())


def port_of(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def seconds(duration: str) -> float:
    match = _DURATION.match(duration)
    assert match, f"not a Go duration the Collector reads: {duration!r}"
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match[2]]


def pipelines_with(gateway: dict[str, Any], section: str, component: str) -> list[str]:
    return [name for name, p in gateway["service"]["pipelines"].items() if component in p.get(section, [])]


def policies(gateway: dict[str, Any]) -> list[dict[str, Any]]:
    return list(gateway["processors"]["tail_sampling"]["policies"])


class TestStructure:
    def test_every_pipeline_component_is_defined_and_used(self, gateway: dict[str, Any]) -> None:
        """Pipelines reference only defined components, and every defined component is used."""
        used: set[tuple[str, str]] = set()
        for name, pipeline in gateway["service"]["pipelines"].items():
            assert name.split("/")[0] in {"traces", "metrics", "logs"}, name
            for section in ("receivers", "processors", "exporters"):
                if section != "processors":
                    assert pipeline.get(section), f"{name} has no {section}"
                for component in pipeline.get(section, []):
                    assert component in (gateway.get(section) or {}), f"{name}: {section} {component} undefined"
                    used.add((section, component))
        assert {(s, c) for s in SECTIONS for c in (gateway.get(s) or {})} == used
        assert set(gateway["service"].get("extensions", [])) == set(gateway.get("extensions") or {})

    def test_structure_check_can_fail(self, gateway: dict[str, Any]) -> None:
        """The check above rejects a pipeline naming an undefined exporter (it is not vacuous)."""
        broken = {**gateway, "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["nope"]}}}}
        with pytest.raises(AssertionError):
            self.test_every_pipeline_component_is_defined_and_used(broken)

    def test_receivers_listen_on_all_interfaces_on_distinct_ports(self, gateway: dict[str, Any]) -> None:
        """Each receiver protocol binds 0.0.0.0 (reachable from other pods) on a port of its own."""
        ports = []
        for receiver in gateway["receivers"].values():
            for protocol in receiver["protocols"].values():
                host, port = port_of(protocol["endpoint"])
                assert host == "0.0.0.0"
                ports.append(port)
        assert len(ports) == len(set(ports))
        assert port_of(gateway["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])[1] == 4317
        assert port_of(gateway["receivers"]["otlp"]["protocols"]["http"]["endpoint"])[1] == 4318

    def test_no_deprecated_otlp_exporter_name(self, gateway: dict[str, Any]) -> None:
        """Exporters use otlp_grpc, not the deprecated bare 'otlp' alias (contrib >= 0.144)."""
        assert "otlp" not in {name.split("/")[0] for name in gateway["exporters"]}


class TestLoadBalancing:
    def test_routes_by_trace_id_to_the_sampling_receiver(self, gateway: dict[str, Any]) -> None:
        """The load-balancing exporter routes by trace id to the port of this file's sampling receiver."""
        lb = gateway["exporters"]["loadbalancing"]
        assert lb["routing_key"] == "traceID"
        assert "endpoint" not in lb["protocol"]["otlp"], "the resolver supplies each backend's endpoint"
        (resolver,) = lb["resolver"].values()
        (sampling_pipeline,) = pipelines_with(gateway, "processors", "tail_sampling")
        (receiver,) = gateway["service"]["pipelines"][sampling_pipeline]["receivers"]
        assert resolver["port"] == port_of(gateway["receivers"][receiver]["protocols"]["grpc"]["endpoint"])[1]

    def test_applications_reach_only_the_balancer(self, gateway: dict[str, Any]) -> None:
        """Traces from applications (the otlp receiver) go only to the load balancer; the sampling receiver's
        traces never go back to it (a loop)."""
        (entry,) = [n for n in pipelines_with(gateway, "receivers", "otlp") if n.startswith("traces")]
        assert gateway["service"]["pipelines"][entry]["exporters"] == ["loadbalancing"]
        assert pipelines_with(gateway, "exporters", "loadbalancing") == [entry]
        assert "tail_sampling" not in gateway["service"]["pipelines"][entry].get("processors", [])


class TestTailSampling:
    def test_only_behind_the_balancer(self, gateway: dict[str, Any]) -> None:
        """Tail sampling sees whole traces only where spans arrive routed by trace id, and runs before batching."""
        (name,) = pipelines_with(gateway, "processors", "tail_sampling")
        pipeline = gateway["service"]["pipelines"][name]
        assert "otlp" not in pipeline["receivers"]
        processors = pipeline["processors"]
        assert processors[0] == "memory_limiter" and processors.index("tail_sampling") < processors.index("batch")

    def test_policies_well_formed(self, gateway: dict[str, Any]) -> None:
        """Every policy has a unique name and a known type with its own settings block."""
        names = [p["name"] for p in policies(gateway)]
        assert len(names) == len(set(names))
        for policy in policies(gateway):
            assert policy["type"] in POLICY_TYPES
            assert isinstance(policy.get(policy["type"]), dict), policy
        config = gateway["processors"]["tail_sampling"]
        assert seconds(config["decision_wait"]) >= 10
        assert config["decision_cache"]["sampled_cache_size"] >= config["num_traces"]

    def test_keeps_errored_slow_and_token_heavy_traces(self, gateway: dict[str, Any]) -> None:
        """Errors, a latency bound, token counts by the names our spans carry, and a small baseline share."""
        by_type: dict[str, list[dict[str, Any]]] = {}
        for policy in policies(gateway):
            by_type.setdefault(policy["type"], []).append(policy[policy["type"]])
        assert [p["status_codes"] for p in by_type["status_code"]] == [["ERROR"]]
        assert all(p["threshold_ms"] > 0 for p in by_type["latency"]) and by_type["latency"]
        token_keys = {p["key"] for p in by_type["numeric_attribute"]}
        assert token_keys == {sc.LC_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS}
        assert all(p["min_value"] > 0 and "max_value" not in p for p in by_type["numeric_attribute"])
        (baseline,) = by_type["probabilistic"]
        assert 0 < baseline["sampling_percentage"] <= 10

    def test_metrics_are_not_sampled(self, gateway: dict[str, Any]) -> None:
        """The metrics pipeline goes straight to the backend: no sampling, no load-balancing hop."""
        metrics = gateway["service"]["pipelines"]["metrics"]
        assert "tail_sampling" not in metrics["processors"] and "loadbalancing" not in metrics["exporters"]


def test_file_says_it_was_not_run() -> None:
    """The file itself says it is checked offline only."""
    assert "NOT RUN" in (ROOT / "otel-collector-gateway.yaml").read_text().split("\n", 2)[1]
