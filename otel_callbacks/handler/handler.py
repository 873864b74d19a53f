"""The LangChain callback handler: the public class, its options, and what it is bound to.

The callbacks themselves live in mixins, each ``on_*`` mapping the run (``mapping``), booking it (``runs``), then
emitting it (``emit``): starts in ``starts``, ends and errors in ``ends``, streamed chunks and events in ``events``,
LangGraph's interrupts and resumes in ``graph``.
Every ``on_*`` method runs inside ``guard.guarded``, or guards inline the same way (the start and end callbacks,
twice per run, and ``on_llm_new_token``, per chunk: the decorator's argument forwarding costs as much as the
guard): whatever LangChain passes, no exception reaches the user's chain (unless ``raise_error`` is set, as our own
tests do), and each kind of internal failure is logged once. ``test_every_callback_is_guarded`` holds every
``on_*`` method to that.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from otel_callbacks import _config
from otel_callbacks import _semconv as sc
from otel_callbacks._version import __version__
from otel_callbacks.emit.emitter import Emitter, emitter_for
from otel_callbacks.emit.metrics import GenAIMetrics, metrics_enabled
from otel_callbacks.handler import propagate
from otel_callbacks.handler.ends import EndCallbacks
from otel_callbacks.handler.events import EventCallbacks
from otel_callbacks.handler.graph import GraphCallbacks
from otel_callbacks.handler.starts import StartCallbacks
from otel_callbacks.mapping.content import DEFAULT_MAX_VALUE_LENGTH, ContentPolicy, Redactor
from otel_callbacks.mapping.secrets import MetadataPolicy
from otel_callbacks.runs.registry import RunRegistry

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider

    from otel_callbacks.emit.content_events import ContentEvents

_logger = logging.getLogger("otel_callbacks")
_SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"
DEFAULT_MAX_OPEN_RUNS = 10_000


class OpenTelemetryCallbackHandler(StartCallbacks, EndCallbacks, EventCallbacks, GraphCallbacks, BaseCallbackHandler):
    """Turns every LangChain run (chain, chat model, LLM, tool, retriever, agent, graph) into an OpenTelemetry span.

    Spans nest exactly as LangChain's run tree, follow the GenAI semantic conventions, and the run's span is current
    while the run's own code executes, so spans your code opens inside a tool or lambda nest under it. Works in sync
    and async code, threads and LangGraph. Content (prompts, messages, tool arguments, documents) is recorded only when
    ``capture_content`` is true or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` says so.

    Args:
        tracer_provider: where spans go; the global provider when ``None``.
        capture_content: record content: ``True`` / ``False``, or a util-genai mode (``SPAN_ONLY``, ``EVENT_ONLY``,
            ``SPAN_AND_EVENT``, ``NO_CONTENT``); ``None`` reads the environment variable (default off).
        redact: applied to every string of content before it is recorded; if it raises, the content is dropped.
        max_value_length: longest attribute value written (content and metadata), default 16 KiB
            (``OTEL_CALLBACKS_MAX_VALUE_LENGTH``); longer values are cut, JSON stays valid.
        max_open_runs: bound on runs open at once (``OTEL_CALLBACKS_MAX_OPEN_RUNS``, default 10000); past it the
            oldest run's span is ended with status ERROR so memory stays bounded.
        max_metadata_attributes: at most this many ``langchain.metadata.*`` attributes per span (default 32), so the
            SDK's attribute limit never drops the GenAI attributes.
        stream_events: one span event per streamed chunk (default on).
        meter_provider: where the GenAI client metrics go (token usage, operation duration, time to first chunk,
            time per output chunk); the global provider when ``None``. No metrics work at all when neither is set.
        metadata_policy: which ``langchain.metadata.*`` keys are exported (``allow``, ``deny``) and which name
            secrets (``secret_keys``); by default every key is, and secret-named ones as ``[REDACTED]``.
        logger_provider: where content events go (``gen_ai.client.inference.operation.details`` log records, with
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` or ``capture_content`` = ``EVENT_ONLY`` /
            ``SPAN_AND_EVENT``); the global ``LoggerProvider`` when ``None``.
        provider_spans: ``"suppress"`` (default, ``OTEL_CALLBACKS_PROVIDER_SPANS``): while a model run's own code
            runs, provider instrumentations that honour the ecosystem's suppression keys (util-genai based ones such
            as openai-v2, OpenLLMetry's) make no second span for the same call; ``"keep"``: they do, as children of
            the model span (both then carry the call's usage).

    Example:
        >>> from otel_callbacks import OpenTelemetryCallbackHandler
        >>> handler = OpenTelemetryCallbackHandler()
        >>> # chain.invoke({"question": "hi"}, config={"callbacks": [handler]})
    """

    run_inline = True  # start callbacks must run in the caller's context so the span can be made current there

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        capture_content: bool | str | None = None,
        redact: Redactor | None = None,
        max_value_length: int | None = None,
        max_open_runs: int | None = None,
        max_metadata_attributes: int = 32,
        stream_events: bool = True,
        meter_provider: MeterProvider | None = None,
        metadata_policy: MetadataPolicy | None = None,
        provider_spans: str | None = None,
        logger_provider: LoggerProvider | None = None,
    ) -> None:
        mode = _config.capture_mode(capture_content)
        self._policy = ContentPolicy(
            capture=mode != "NO_CONTENT",
            max_length=_config.positive_int(max_value_length, sc.ENV_MAX_VALUE_LENGTH, DEFAULT_MAX_VALUE_LENGTH, 64),
            redact=redact,
        )
        # Content on spans (SPAN_ONLY, SPAN_AND_EVENT) and as log-record events (EVENT_ONLY, SPAN_AND_EVENT).
        self._capture = mode == "SPAN_ONLY" or mode == "SPAN_AND_EVENT"
        self._content_events: ContentEvents | None = None
        if mode in _config.EVENT_MODES:
            from otel_callbacks.emit.content_events import ContentEvents  # the logs API only when events are on

            self._content_events = ContentEvents(logger_provider, self._policy)
        self._max_len = self._policy.max_length
        self._max_metadata = max_metadata_attributes
        self._metadata_policy = metadata_policy
        self._stream_events = stream_events
        self._suppress_providers = _provider_spans(provider_spans) == "suppress"
        self._latest = _config.latest_experimental()
        self._graph_aware = False
        self._fast = _config.lean_spans()
        self._tracer_provider = tracer_provider
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self._runs = RunRegistry(_config.positive_int(max_open_runs, sc.ENV_MAX_OPEN_RUNS, DEFAULT_MAX_OPEN_RUNS),
                                 provider)
        self._bind(provider)
        self._failures: set[tuple[str, str]] = set()
        self._metrics = (
            GenAIMetrics(meter_provider, experimental=_config.latest_experimental())
            if metrics_enabled(meter_provider)
            else None
        )
        # A handler made at import time, before the app installs its MeterProvider, picks it up later (as the
        # API's proxy tracer does for spans); checked on each model run until then.
        self._metrics_pending = self._metrics is None and meter_provider is None
        propagate.install()

    def _bind(self, provider: Any) -> None:
        """Bind to ``provider``'s tracer and choose how its spans are emitted (once per tracer)."""
        tracer = trace.get_tracer("otel_callbacks", __version__, self._tracer_provider, schema_url=_SCHEMA_URL)
        self._emit: Emitter = emitter_for(tracer, fast=self._fast)
        self._children_follow_unsampled = self._emit.children_follow_unsampled
        self._runs.bind(provider)
        # Until the app installs its TracerProvider the API hands out a proxy; rebound on a later start.
        self._tracer_pending = isinstance(tracer, trace.ProxyTracer)

    def _rebind_if_installed(self) -> None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, trace.ProxyTracerProvider):
            self._bind(provider)

    @property
    def emission_path(self) -> str:
        """``"fast"`` (lean spans, the SDK's tracer on a proven SDK version) or ``"sdk"`` (the API's path)."""
        return self._emit.name

    # One handler, one run map: LangChain copies handlers when it merges callback managers.
    def __copy__(self) -> OpenTelemetryCallbackHandler:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> OpenTelemetryCallbackHandler:
        return self

    @property
    def open_runs(self) -> int:
        """How many runs this handler has started and not yet ended."""
        return len(self._runs)

    def _report_failure(self, callback: str, exc: Exception) -> None:
        key = (callback, type(exc).__name__)
        if key in self._failures:
            _logger.debug("otel-callbacks: %s failed again: %r", callback, exc)
            return
        if len(self._failures) < 1000:
            self._failures.add(key)
        _logger.warning(
            "otel-callbacks: %s failed (%s); the chain goes on, this kind of failure is logged once.",
            callback, type(exc).__name__, exc_info=exc,
        )


def _provider_spans(explicit: str | None) -> str:
    if explicit is not None:
        if explicit not in ("suppress", "keep"):
            raise ValueError(f"provider_spans must be 'suppress' or 'keep', not {explicit!r}")
        return explicit
    raw = _config.env_value(sc.ENV_PROVIDER_SPANS)
    if raw is None:
        return "suppress"
    value = raw.strip().lower()
    if value in ("suppress", "keep"):
        return value
    _config.warn_invalid(sc.ENV_PROVIDER_SPANS, raw, "suppress, keep", "suppress")
    return "suppress"
