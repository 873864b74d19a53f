"""Tracer set-ups for the benchmark: the SDK pipeline they all share, the reference handlers (reference.py), ours
and the peers.

``install(name, provider)`` is called once per worker process, after its baseline was timed: the peers patch
LangChain globally and cannot be cleanly taken out again, so every tracer gets a fresh process.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peers
from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from pipelines import SpanCounter, make_provider
from reference import FloorHandler, MinimalHandler, NoopHandler

# Handler-style tracers (passed in config["callbacks"]) run in the "ours" venv; peers in their own.
VENV = {
    "none": "ours",
    "noop": "ours",
    "minimal": "ours",
    "floor": "ours",
    "ours": "ours",
    "ours-metrics": "ours",
    "ours-ratio0": "ours",
    "ours-sdk": "ours",
    "openllmetry": "openllmetry",
    "openinference": "openinference",
    "official": "official",
    "langfuse": "langfuse",
}
# Peers that patch LangChain globally (switched by a PatchSwitch); langfuse is a handler like ours.
INSTRUMENTORS = ("openllmetry", "openinference", "official")


# Content capture is switched off for every peer so that all tracers are compared on the same (content-off) work.
# Set before the peers are imported: some read the environment at import time.
_PEER_ENV = {
    "openllmetry": {"TRACELOOP_TRACE_CONTENT": "false"},
    "openinference": {"OPENINFERENCE_HIDE_INPUTS": "true", "OPENINFERENCE_HIDE_OUTPUTS": "true"},
    "official": {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT"},
    # Langfuse's CallbackHandler records inputs and outputs unconditionally; nothing here turns that off.
    # Our SDK path: the handler builds the SDK's own Span objects instead of its lean ones.
    "ours-sdk": {"OTEL_CALLBACKS_LEAN_SPANS": "false"},
}


@dataclass
class Installed:
    """A wired tracer that can be switched on and off between timed calls.

    Handler-style tracers are switched by passing or not passing their handler in the call's config; instrumentors
    through a PatchSwitch. A switched-off tracer that still exports spans shows in ``leaked_spans_per_call``.
    """

    handlers: list[BaseCallbackHandler]
    provider: TracerProvider | None
    counter: SpanCounter | None
    patches: peers.PatchSwitch | None = None
    switched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flush: list[Any] = field(default_factory=list)

    def config(self, traced: bool) -> dict[str, Any]:
        """The RunnableConfig for one call; switches an instrumentor's patches to match ``traced``."""
        if self.patches is not None:
            self.patches.switch(traced)
        return {"callbacks": list(self.handlers)} if traced and self.handlers else {}

    def force_flush(self) -> None:
        for flushable in self.flush:
            flushable.force_flush()

    def export_spans(self) -> None:
        """Export the spans queued so far (the worker times this); metric readers are left to ``force_flush``:
        an app's reader collects once a minute, not once per group of calls."""
        if self.provider is not None:
            self.provider.force_flush()

    def shutdown(self) -> None:
        for flushable in self.flush:
            flushable.shutdown()


def sampler_for(name: str) -> Sampler | None:
    """Ratio-0 variants use the production sampler shape with nothing sampled."""
    return ParentBased(TraceIdRatioBased(0.0)) if name.endswith("-ratio0") else None


def prepare_env(name: str) -> None:
    """Set the peer's content-off environment; call before anything imports the peer."""
    os.environ.update(_PEER_ENV.get(name, {}))


def install(name: str, export: str = "discard", endpoints: dict[str, int] | None = None) -> Installed:
    """Build the SDK pipeline and the tracer ``name``, switched off (call ``config(True)`` to switch it on).

    ``export`` is "discard" (the main tables) or a real OTLP protocol, "http" or "grpc", sending to the loopback
    receiver at ``endpoints`` (see pipelines.py).
    """
    if name == "none":
        return Installed([], None, None)
    if name == "langfuse":
        provider, handler, counter, note = peers.langfuse(export, endpoints)
        return Installed([handler], provider, counter, flush=[provider], notes=[note])
    provider, counter = make_provider(sampler_for(name), export, endpoints)
    # Peers that fall back to the global provider for some pieces then still export to our counting exporter.
    trace.set_tracer_provider(provider)
    installed = Installed([], provider, counter, flush=[provider])
    if name == "noop":
        installed.handlers.append(NoopHandler())
    elif name == "minimal":
        installed.handlers.append(MinimalHandler(provider))
    elif name == "floor":
        installed.handlers.append(FloorHandler(provider))
    elif name in ("ours", "ours-ratio0", "ours-metrics", "ours-sdk"):
        installed.handlers.append(_ours(name, provider, installed))
    elif name in INSTRUMENTORS:
        instrumentor = peers.instrumentor(name)
        installed.patches = peers.PatchSwitch(lambda: instrumentor.instrument(tracer_provider=provider))
        if not instrumentor.is_instrumented_by_opentelemetry:
            raise RuntimeError(f"{name}: instrument() did not take effect (dependency conflict?)")
        installed.notes.append(f"switched on/off by swapping {len(installed.patches.changed)} patched attributes")
        installed.switched = installed.patches.names()
        installed.patches.switch(False)
    else:
        raise ValueError(f"unknown tracer {name!r}")
    return installed


def _ours(name: str, provider: TracerProvider, installed: Installed) -> BaseCallbackHandler:
    from otel_callbacks import OpenTelemetryCallbackHandler

    if name != "ours-metrics":
        # ours-sdk differs only by OTEL_CALLBACKS_LEAN_SPANS=false, set by prepare_env before the import.
        return OpenTelemetryCallbackHandler(provider, capture_content=False)
    if "meter_provider" not in inspect.signature(OpenTelemetryCallbackHandler).parameters:
        installed.notes.append("TODO: OpenTelemetryCallbackHandler has no meter_provider yet; metrics not measured")
        return OpenTelemetryCallbackHandler(provider, capture_content=False)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    # InMemoryMetricReader aggregates in place and is only read on collect(), so it adds no export work.
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    installed.flush.append(meter_provider)
    return OpenTelemetryCallbackHandler(provider, capture_content=False, meter_provider=meter_provider)


def ours_source() -> str | None:
    """Which code 'ours' was: the repo commit plus a digest of the package's .py files as imported.

    The ours venv installs the working tree in editable mode, so uncommitted edits are measured too; the digest
    tells two runs of different code apart even on one commit.
    """
    try:
        import otel_callbacks
    except ImportError:
        return None
    package = Path(otel_callbacks.__file__).parent
    digest = hashlib.sha1()
    for source in sorted(package.rglob("*.py")):
        digest.update(source.read_bytes())
    try:
        head = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(package), "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head, dirty = "unknown", ""
    return f"{head}{' + uncommitted edits' if dirty else ''}, otel_callbacks sha1 {digest.hexdigest()[:10]}"


def versions() -> dict[str, str]:
    """Versions of the packages that decide the numbers, as seen by this process."""
    names = (
        "langchain-core",
        "langgraph",
        "langchain",
        "opentelemetry-sdk",
        "otel-callbacks",
        "opentelemetry-instrumentation-langchain",
        "openinference-instrumentation-langchain",
        "opentelemetry-instrumentation-genai-langchain",
        "langfuse",
        "opentelemetry-exporter-otlp-proto-http",
        "opentelemetry-exporter-otlp-proto-grpc",
        "protobuf",
        "grpcio",
    )
    found = {}
    for package in names:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found
