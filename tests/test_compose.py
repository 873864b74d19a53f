"""Offline validation of docker-compose.yml and otel-collector-config.yaml (there is no Docker engine in CI).

Checks: the compose file against the compose spec's JSON schema (vendored by check-jsonschema), well-formed and
consistent ports, every Collector pipeline component defined (and every defined one used), the OTLP receivers
published on the ports the README and examples tell users to send to, and the metrics pipeline's Prometheus endpoint
published on the port the CLI and docs name.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("receivers", "processors", "exporters", "connectors")
_PORT = re.compile(
    r"^(?:(?P<ip>[0-9.]+|\[[0-9a-f:]+\]):)?(?:(?P<host>\d+):)?(?P<container>\d+)(?:/(?P<proto>tcp|udp))?$"
)


@pytest.fixture(name="compose", scope="module")
def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(name="collector", scope="module")
def _collector() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "otel-collector-config.yaml").read_text())


def published(compose: dict[str, Any], service: str) -> dict[int, int]:
    """container port -> host port for a service's short-syntax port mappings."""
    mapping: dict[int, int] = {}
    for entry in compose["services"][service].get("ports", []):
        match = _PORT.match(str(entry))
        assert match, f"malformed port mapping {entry!r} in {service}"
        host = int(match["host"] or match["container"])
        container = int(match["container"])
        assert 0 < host < 65536 and 0 < container < 65536, entry
        mapping[container] = host
    return mapping


def endpoint_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def image_version(image: str) -> tuple[int, ...]:
    tag = image.rpartition(":")[2]
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"image {image!r} should be pinned to a version"
    return tuple(int(x) for x in tag.split("."))


class TestComposeFile:
    def test_matches_compose_spec_schema(self, compose: dict[str, Any]) -> None:
        """docker-compose.yml validates against the compose specification schema."""
        schema_text = resources.files("check_jsonschema").joinpath("builtin_schemas/vendor/compose-spec.json")
        schema = json.loads(schema_text.read_text())
        jsonschema.validate(compose, schema, cls=jsonschema.validators.validator_for(schema))

    def test_schema_check_can_fail(self) -> None:
        """The schema check really rejects an invalid file (guards against a vacuous schema)."""
        schema = json.loads(resources.files("check_jsonschema").joinpath(
            "builtin_schemas/vendor/compose-spec.json").read_text())
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"services": {"x": {"imagee": "typo", "restart": ["no"]}}}, schema,
                                cls=jsonschema.validators.validator_for(schema))

    def test_images_pinned_and_recent_enough(self, compose: dict[str, Any]) -> None:
        """Collector contrib >= 0.144 (where otlp_grpc exists) and Jaeger 2.x, both pinned."""
        services = compose["services"]
        collector = services["otel-collector"]["image"]
        assert collector.startswith("otel/opentelemetry-collector-contrib:")
        assert image_version(collector) >= (0, 144, 0)
        jaeger = services["jaeger"]["image"]
        assert jaeger.startswith("jaegertracing/jaeger:") and image_version(jaeger)[0] == 2

    def test_ports_well_formed_and_unique(self, compose: dict[str, Any]) -> None:
        """Every published port parses and no host port is published twice."""
        host_ports = [h for name in compose["services"] for h in published(compose, name).values()]
        assert len(host_ports) == len(set(host_ports))
        assert published(compose, "jaeger") == {16686: 16686}

    def test_ports_bound_to_loopback(self, compose: dict[str, Any]) -> None:
        """Every published port binds 127.0.0.1: the receivers and the metrics endpoint are unauthenticated."""
        for name, service in compose["services"].items():
            for entry in service.get("ports", []):
                match = _PORT.match(str(entry))
                assert match and match["ip"] == "127.0.0.1", f"{name}: {entry!r} is reachable from the network"

    def test_config_mounted_where_the_command_reads_it(self, compose: dict[str, Any]) -> None:
        """The Collector config file exists and is mounted at the --config path."""
        service = compose["services"]["otel-collector"]
        config_arg = next(a for a in service["command"] if a.startswith("--config="))
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        source = mounts[config_arg.removeprefix("--config=")]
        assert (ROOT / source).is_file()


class TestCollectorConfig:
    def test_every_pipeline_component_is_defined(self, collector: dict[str, Any]) -> None:
        """Pipelines reference only defined components, and every defined component is used."""
        used: set[tuple[str, str]] = set()
        for name, pipeline in collector["service"]["pipelines"].items():
            for section in ("receivers", "processors", "exporters"):
                for component in pipeline.get(section, []):
                    assert component in (collector.get(section) or {}), f"{name}: {section} {component} undefined"
                    used.add((section, component))
        defined = {(s, c) for s in SECTIONS for c in (collector.get(s) or {})}
        assert defined == used
        assert set(collector["service"].get("extensions", [])) == set(collector.get("extensions") or {})

    def test_no_deprecated_otlp_exporter_name(self, collector: dict[str, Any]) -> None:
        """Exporters use otlp_grpc/otlp_http, not the deprecated bare 'otlp' alias."""
        types = {name.split("/")[0] for name in collector["exporters"]}
        assert "otlp" not in types and "otlp_grpc" in types

    def test_traces_reach_jaeger_and_metrics_the_debug_log_and_prometheus(
        self, collector: dict[str, Any], compose: dict[str, Any]
    ) -> None:
        """Traces go to Jaeger's OTLP gRPC port over the compose network; metrics from the OTLP receiver go to the
        debug exporter and the Prometheus exporter."""
        pipelines = collector["service"]["pipelines"]
        (trace_exporter,) = [e for e in pipelines["traces"]["exporters"] if e.startswith("otlp_grpc")]
        host, port = endpoint_port(collector["exporters"][trace_exporter]["endpoint"])
        assert host in compose["services"] and port == 4317
        assert collector["exporters"][trace_exporter]["tls"]["insecure"] is True
        metrics = pipelines["metrics"]
        assert metrics["receivers"] == ["otlp"]
        assert sorted(e.split("/")[0] for e in metrics["exporters"]) == ["debug", "prometheus"]

    def test_prometheus_endpoint_published(self, collector: dict[str, Any], compose: dict[str, Any]) -> None:
        """The Prometheus exporter listens on all container interfaces on 8889, published as 127.0.0.1:8889, the
        port the demo prints (http://localhost:8889/metrics)."""
        (name,) = [e for e in collector["service"]["pipelines"]["metrics"]["exporters"] if e.startswith("prometheus")]
        host, port = endpoint_port(collector["exporters"][name]["endpoint"])
        assert host == "0.0.0.0", "a localhost-bound endpoint is unreachable from outside the container"
        assert port == 8889 and published(compose, "otel-collector").get(port) == 8889
        assert f"http://localhost:{port}/metrics" in (ROOT / "otel_callbacks" / "cli" / "commands.py").read_text()

    def test_receivers_published_on_standard_ports(self, collector: dict[str, Any], compose: dict[str, Any]) -> None:
        """OTLP gRPC/HTTP listen on all container interfaces and are published on the same host ports 4317/4318."""
        protocols = collector["receivers"]["otlp"]["protocols"]
        ports = published(compose, "otel-collector")
        for protocol, expected in (("grpc", 4317), ("http", 4318)):
            host, port = endpoint_port(protocols[protocol]["endpoint"])
            assert host == "0.0.0.0", "a localhost-bound receiver is unreachable from outside the container"
            assert port == expected and ports.get(port) == expected
        _, health_port = endpoint_port(collector["extensions"]["health_check"]["endpoint"])
        assert ports.get(health_port) == health_port


class TestDocsMatchCompose:
    def test_jaeger_walkthrough_uses_published_endpoints(self, compose: dict[str, Any]) -> None:
        """examples/jaeger.md sends to the published OTLP port and opens the published UI port."""
        text = (ROOT / "examples" / "jaeger.md").read_text()
        assert f"http://localhost:{published(compose, 'otel-collector')[4317]}" in text
        assert f"http://localhost:{published(compose, 'jaeger')[16686]}" in text
        assert "docker compose up" in text

    def test_readme_endpoint_matches_compose(self, compose: dict[str, Any]) -> None:
        """When the README documents docker compose, it points at the Collector's published gRPC endpoint."""
        readme = ROOT / "README.md"
        text = readme.read_text() if readme.exists() else ""
        if "docker compose" not in text:
            pytest.skip("README.md does not describe docker compose yet")
        assert f"http://localhost:{published(compose, 'otel-collector')[4317]}" in text

    def test_readme_metrics_endpoint_matches_compose(self, compose: dict[str, Any]) -> None:
        """When the README documents the Prometheus endpoint, it names the published port."""
        readme = ROOT / "README.md"
        text = readme.read_text() if readme.exists() else ""
        if "Prometheus" not in text:
            pytest.skip("README.md does not describe the Prometheus endpoint yet")
        assert f"http://localhost:{published(compose, 'otel-collector')[8889]}/metrics" in text
