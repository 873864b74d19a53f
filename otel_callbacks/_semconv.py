"""Attribute keys, operation names and span-event names, in one place.

GenAI names follow the OpenTelemetry GenAI semantic conventions v1.41.0. They are spelled out here rather than
imported from ``opentelemetry-semantic-conventions`` because its GenAI constants are deprecated there (GenAI moved to
its own repository) and the installed version may lag v1.41. Names under ``langchain.`` are ours: LangChain concepts
the conventions do not cover. Nothing here imports LangChain or the SDK.
"""

from __future__ import annotations

from typing import Final

# --- operation names (gen_ai.operation.name values) ---------------------------------------------------------------
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
OP_RETRIEVAL: Final = "retrieval"

# --- GenAI attributes ----------------------------------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_DATA_SOURCE_ID: Final = "gen_ai.data_source.id"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"

GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"

GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"

GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"  # its latest name
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"

GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"

GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"

GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_RETRIEVAL_QUERY_TEXT: Final = "gen_ai.retrieval.query.text"
GEN_AI_RETRIEVAL_DOCUMENTS: Final = "gen_ai.retrieval.documents"

# --- general attributes ----------------------------------------------------------------------------------------------
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
# The exception event, as the SDK's ``Span.record_exception`` writes it (semconv "exceptions" on spans).
EVENT_EXCEPTION: Final = "exception"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"
EXCEPTION_ESCAPED: Final = "exception.escaped"

# --- our own attributes (LangChain concepts) -------------------------------------------------------------------------
LC_RUN_ID: Final = "langchain.run.id"
LC_RUN_TYPE: Final = "langchain.run.type"
LC_TAGS: Final = "langchain.tags"
LC_METADATA_PREFIX: Final = "langchain.metadata."
LC_CHAIN_INPUTS: Final = "langchain.chain.inputs"
LC_CHAIN_OUTPUTS: Final = "langchain.chain.outputs"
LC_RETRIEVAL_DOCUMENT_COUNT: Final = "langchain.retrieval.document_count"
# Summed usage of every model run beneath a chain/agent span (what ``get_openai_callback`` counts).
LC_USAGE_INPUT_TOKENS: Final = "langchain.usage.input_tokens"
LC_USAGE_OUTPUT_TOKENS: Final = "langchain.usage.output_tokens"
LC_USAGE_MODEL_RUNS: Final = "langchain.usage.model_runs"
LC_EVICTED: Final = "langchain.run.evicted"
# A run still open when the run above it ended (LangChain sent it no end: cancelled, timed out, abandoned stream).
LC_ORPHANED: Final = "langchain.run.orphaned"
# error.type of such a run when the run above it ended well (else the run above's own error.type).
ERROR_NOT_ENDED: Final = "langchain.run.not_ended"
LC_STREAM_CHUNK_COUNT: Final = "langchain.stream.chunk_count"
# LangGraph interrupts: the paused run (and each run above it) and the run that resumes its thread.
LC_GRAPH_INTERRUPTED: Final = "langchain.graph.interrupted"
LC_GRAPH_INTERRUPT_IDS: Final = "langchain.graph.interrupt.ids"
LC_GRAPH_CHECKPOINT_ID: Final = "langchain.graph.checkpoint.id"
LC_GRAPH_RESUMED: Final = "langchain.graph.resumed"
LC_GRAPH_RESUMED_FROM_CHECKPOINT_ID: Final = "langchain.graph.resumed_from.checkpoint_id"
LC_LINK_TYPE: Final = "langchain.link.type"

# --- metric names: v1.41 (default) and, under gen_ai_latest_experimental, the latest (semantic-conventions-genai's
# migration guide from v1.41) side by side ---------------------------------------------------------------------------
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
METRIC_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.operation.time_per_output_chunk"
METRIC_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
METRIC_INFERENCE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.inference.time_per_output_chunk"
METRIC_INFERENCE_INPUT_TOKENS: Final = "gen_ai.client.inference.operation.input_tokens"  # histograms
METRIC_INFERENCE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.operation.output_tokens"
METRIC_USAGE_PREFIX: Final = "gen_ai.client.inference.usage."  # counters: + input_tokens, output_tokens, ...
METRIC_EXECUTE_TOOL_DURATION: Final = "gen_ai.execute_tool.duration"
METRIC_INVOKE_AGENT_DURATION: Final = "gen_ai.invoke_agent.duration"

# --- log-record events ---------------------------------------------------------------------------------------------
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"

# --- span events -----------------------------------------------------------------------------------------------------
EVENT_NEW_TOKEN: Final = "langchain.llm.new_token"
EVENT_STREAM_EVENT: Final = "langchain.llm.stream_event"
EVENT_AGENT_ACTION: Final = "langchain.agent.action"
EVENT_AGENT_FINISH: Final = "langchain.agent.finish"
EVENT_TEXT: Final = "langchain.text"
EVENT_RETRY: Final = "langchain.retry"
EVENT_CUSTOM: Final = "langchain.custom_event"
EVENT_INTERRUPT: Final = "langchain.graph.interrupt"
# Agent lifecycle, proposed (semantic-conventions-genai PR #445, a draft when read): only with
# OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental.
EVENT_AGENT_PAUSED: Final = "gen_ai.agent.paused"
EVENT_AGENT_RESUMED: Final = "gen_ai.agent.resumed"
GEN_AI_AGENT_PAUSE_REASON: Final = "gen_ai.agent.pause.reason"
GEN_AI_AGENT_PAUSE_ID: Final = "gen_ai.agent.pause.id"
GEN_AI_AGENT_CHECKPOINT_ID: Final = "gen_ai.agent.checkpoint.id"
GEN_AI_AGENT_RESUMED_FROM_TYPE: Final = "gen_ai.agent.resumed_from.type"
GEN_AI_AGENT_RESUMED_FROM_ID: Final = "gen_ai.agent.resumed_from.id"
PAUSE_REASON_INTERRUPT: Final = "interrupt"

ATTR_CHUNK_TEXT: Final = "langchain.chunk.text"
ATTR_STREAM_EVENT_TYPE: Final = "langchain.stream_event.type"
ATTR_STREAM_EVENT_DATA: Final = "langchain.stream_event.data"
ATTR_AGENT_TOOL: Final = "langchain.agent.tool"
ATTR_AGENT_TOOL_INPUT: Final = "langchain.agent.tool_input"
ATTR_AGENT_LOG: Final = "langchain.agent.log"
ATTR_AGENT_OUTPUT: Final = "langchain.agent.output"
ATTR_TEXT: Final = "langchain.text"
ATTR_RETRY_ATTEMPT: Final = "langchain.retry.attempt"
ATTR_RETRY_ERROR: Final = "langchain.retry.error"
ATTR_CUSTOM_EVENT_NAME: Final = "langchain.custom_event.name"
ATTR_CUSTOM_EVENT_DATA: Final = "langchain.custom_event.data"

# --- context keys other instrumentations read (to not trace a model call twice) ----------------------------------
# OpenLLMetry's provider instrumentations skip a call while this key is truthy (opentelemetry.semconv_ai).
CTX_SUPPRESS_LANGUAGE_MODEL: Final = "suppress_language_model_instrumentation"
# opentelemetry-util-genai (>= 1.3b0) makes a nested inference "suppressed" (no span, metrics or events) while this
# key holds one of its InferenceData objects.
CTX_GENAI_CLIENT_INFERENCE: Final = "opentelemetry.genai.client.inference.context"

# --- environment variables -------------------------------------------------------------------------------------------
ENV_CAPTURE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_SEMCONV_OPT_IN: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
ENV_MAX_VALUE_LENGTH: Final = "OTEL_CALLBACKS_MAX_VALUE_LENGTH"
ENV_MAX_OPEN_RUNS: Final = "OTEL_CALLBACKS_MAX_OPEN_RUNS"
ENV_LEAN_SPANS: Final = "OTEL_CALLBACKS_LEAN_SPANS"
ENV_PROVIDER_SPANS: Final = "OTEL_CALLBACKS_PROVIDER_SPANS"
