"""The peers' set-up: switching global instrumentors on and off, and Langfuse's CallbackHandler on its own client.

Imported in the worker only: every peer package is imported inside the function that needs it, since each venv has
only its own peer.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pipelines import SpanCounter, counter_for, http_base, make_exporter

_PATCHED_PACKAGES = ("langchain_core", "langchain", "langgraph")


def _is_patch(name: str, value: Any) -> bool:
    if isinstance(value, types.ModuleType | type):
        return False
    if name.startswith("__") and name not in ("__init__", "__new__", "__call__"):
        return False
    return callable(value) or isinstance(value, classmethod | staticmethod)


def _attributes() -> dict[tuple[Any, str], Any]:
    """Every attribute of the LangChain modules and of the classes they define, keyed by (owner, name)."""
    found: dict[tuple[Any, str], Any] = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or module_name.split(".")[0] not in _PATCHED_PACKAGES:
            continue
        for name, value in list(vars(module).items()):
            found[(module, name)] = value
            if isinstance(value, type) and value.__module__ == module_name:
                for attribute, member in list(vars(value).items()):
                    found[(value, attribute)] = member
    return found


class PatchSwitch:
    """Switches a global instrumentor on and off by swapping the attributes its ``instrument()`` replaced.

    The peers' own ``uninstrument()`` cannot be used between calls: OpenLLMetry's leaves its handler in place and
    stacks a second copy on the next ``instrument()``. Swapping the exact objects back is exact and cheap.
    """

    def __init__(self, instrument: Callable[[], object]) -> None:
        before = _attributes()
        instrument()
        after = _attributes()
        # Only replaced functions count: imports done by instrument() also add attributes (new submodules, lazily
        # built class dicts), and swapping those out would break LangChain rather than switch the tracer off.
        self.changed = {
            key: (before[key], value)
            for key, value in after.items()
            if key in before and before[key] is not value and _is_patch(key[1], value)
        }
        self.on = True

    def names(self) -> list[str]:
        return sorted(
            f"{getattr(owner, '__qualname__', getattr(owner, '__name__', owner))}.{name}"
            for owner, name in self.changed
        )

    def switch(self, on: bool) -> None:
        if on == self.on:
            return
        for (owner, name), (original, patched) in self.changed.items():
            setattr(owner, name, patched if on else original)
        self.on = on


def langfuse(
    export: str, endpoints: dict[str, int] | None
) -> tuple[TracerProvider, BaseCallbackHandler, SpanCounter, str]:
    """Langfuse's CallbackHandler on its own pipeline: the client adds its LangfuseSpanProcessor (a
    BatchSpanProcessor subclass) to the provider it is given.

    Over HTTP it uses its own OTLP/HTTP exporter as users run it, posting to {host}/api/public/otel/v1/traces with
    gzip (its default; keys are not checked by the receiver). It has no gRPC exporter of its own, so for "grpc" and
    "discard" it is handed that exporter through its ``span_exporter`` option. It has no content switch either: a
    ``mask`` that drops every input, output and metadata value is the closest to content capture off.
    """
    from langfuse import Langfuse
    from langfuse.langchain import CallbackHandler

    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    keys = {"public_key": "pk-lf-benchmark", "secret_key": "sk-lf-benchmark"}
    host = http_base(endpoints) if endpoints is not None else "http://127.0.0.1:9"  # port 9: never sent to
    exporter = None if export == "http" else make_exporter(export, endpoints)
    Langfuse(**keys, host=host, tracer_provider=provider, span_exporter=exporter, mask=_drop_content)
    note = (
        "Langfuse: own OTLP/HTTP exporter with gzip over http; handed the official exporter for grpc and discard; "
        "inputs, outputs and metadata dropped by a mask (it has no content switch)"
    )
    handler = CallbackHandler(public_key=keys["public_key"])
    return provider, handler, counter_for(export, endpoints, exporter), note


def _drop_content(*, data: Any, **kwargs: Any) -> None:
    return None


def instrumentor(name: str) -> Any:
    if name == "openllmetry":
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        return LangchainInstrumentor()
    if name == "openinference":
        from openinference.instrumentation.langchain import LangChainInstrumentor as OpenInferenceInstrumentor

        return OpenInferenceInstrumentor()
    from opentelemetry.instrumentation.genai.langchain import LangChainInstrumentor as OfficialInstrumentor

    return OfficialInstrumentor()
