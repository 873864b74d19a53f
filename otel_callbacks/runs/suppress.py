"""One span per model call: keep provider instrumentations from tracing the call a model run already traces.

With ``opentelemetry-instrumentation-openai-v2`` (through opentelemetry-util-genai) or OpenLLMetry's provider
instrumentations active beside the handler, every chat model call would give two inference spans, ours and the
provider's as its child, and usage summed over the trace would count each call twice. Both ecosystems read a key
from the current context to skip a nested inference; :func:`model_run_entries` gives those keys, and the handler puts
them only in the context a *model* run's own code runs in (``runs.context.enter``): a provider call made directly
in a node or a tool is still traced by its instrumentation (OpenLLMetry's own LangChain instrumentation sets its
key for the whole run tree, traceloop/openllmetry#2271).

Nothing is imported for this: a key is set only when the instrumentation that reads it is loaded, so the cost for
everyone else is two ``sys.modules`` lookups per model run.
"""

from __future__ import annotations

import sys
from typing import Any

from otel_callbacks import _semconv as sc

_SEMCONV_AI = "opentelemetry.semconv_ai"  # imported by every OpenLLMetry instrumentation
_UTIL_GENAI_HANDLER = "opentelemetry.util.genai.handler"  # imported by util-genai based instrumentations
_inference_data: Any = None  # util-genai's InferenceData class, once loaded; False where it has none (< 1.3b0)


def model_run_entries() -> dict[str, object] | None:
    """Context entries that suppress the provider instrumentations loaded in this process, or ``None``."""
    modules = sys.modules
    entries: dict[str, object] | None = None
    if _SEMCONV_AI in modules:
        entries = {sc.CTX_SUPPRESS_LANGUAGE_MODEL: True}
    if _UTIL_GENAI_HANDLER in modules:
        data_class = _inference_data if _inference_data is not None else _load_inference_data()
        if data_class:
            # A fresh one per run: the suppressed inference publishes its attributes into it when it ends.
            if entries is None:
                entries = {}
            entries[sc.CTX_GENAI_CLIENT_INFERENCE] = data_class()
    return entries


def _load_inference_data() -> Any:
    global _inference_data
    try:
        from opentelemetry.util.genai.invocation import InferenceData  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # util-genai before 1.3b0 has no suppression: its inferences are traced as they are
        _inference_data = False
    else:
        _inference_data = InferenceData
    return _inference_data
