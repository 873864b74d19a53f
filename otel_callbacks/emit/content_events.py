"""Content as log-record events: ``gen_ai.client.inference.operation.details``, tied to the model run's span.

With ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=EVENT_ONLY`` (content off the span, for backends with span
size limits) or ``SPAN_AND_EVENT``, each model run that ends emits one such record, as opentelemetry-util-genai
emits it: the run's GenAI attributes and its content (input and output messages, system instructions, tool
definitions) in structured form, in the context of the model span, through a ``LoggerProvider`` (the global one by
default). Content passes the same ``redact`` hook and ``max_value_length`` bound as on spans: it is cut and redacted
as JSON, then parsed back into the structure, so both paths record the same text.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry._logs import LoggerProvider, LogRecord, get_logger
from opentelemetry.trace import Span, set_span_in_context

from otel_callbacks import _semconv as sc
from otel_callbacks._version import __version__
from otel_callbacks.mapping.content import ContentPolicy, json_attribute


class ContentEvents:
    """Emits the inference details event of model runs (one per handler)."""

    def __init__(self, logger_provider: LoggerProvider | None, policy: ContentPolicy) -> None:
        self._logger = get_logger("otel_callbacks", __version__, logger_provider,
                                  schema_url="https://opentelemetry.io/schemas/1.41.0")
        self._policy = policy

    def structured(self, value: Any) -> Any:
        """``value`` redacted and bounded as the span attribute would be, as a structure; ``None`` if dropped."""
        text = json_attribute(value, self._policy)
        return None if text is None else json.loads(text)

    def inference(self, span: Span, attributes: dict[str, Any], content: dict[str, Any]) -> None:
        """Emit the event for the model run of ``span``: its attributes, then each piece of content kept."""
        record = dict(attributes)
        for key, value in content.items():
            shaped = self.structured(value)
            if shaped is not None:
                record[key] = shaped
        self._logger.emit(LogRecord(event_name=sc.EVENT_INFERENCE_DETAILS, attributes=record,
                                    context=set_span_in_context(span)))
