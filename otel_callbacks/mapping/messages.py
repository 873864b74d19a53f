"""LangChain messages, tool specs and documents in the GenAI semconv JSON shapes (content capture only).

Schemas: ``gen_ai.input.messages`` = ``[{role, parts}]``, ``gen_ai.output.messages`` = ``[{role, parts,
finish_reason}]``, ``gen_ai.system_instructions`` = ``[part]``, ``gen_ai.tool.definitions`` = ``[{type, name,
description, parameters}]``; parts are ``text``, ``tool_call`` and ``tool_call_response``. Pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from otel_callbacks.mapping.content import safe_str
from otel_callbacks.mapping.values import _get

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool",
          "developer": "system", "chat": "user"}
_FINISH = {"stop": "stop", "end_turn": "stop", "STOP": "stop", "length": "length", "max_tokens": "length",
           "MAX_TOKENS": "length", "tool_calls": "tool_call", "tool_use": "tool_call", "function_call": "tool_call",
           "content_filter": "content_filter", "SAFETY": "content_filter"}


def _parts_from_content(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, list) else [content]:
        if isinstance(block, str):
            parts.append({"type": "text", "content": block})
        elif isinstance(block, Mapping):
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                parts.append({"type": "text", "content": block["text"]})
            elif kind in ("reasoning", "thinking"):
                text = block.get("reasoning") or block.get("thinking") or block.get("text")
                parts.append({"type": "reasoning", "content": text})
            elif kind not in ("tool_use", "tool_call", "tool_call_chunk"):  # tool calls come from message.tool_calls
                parts.append(dict(block))
        elif block is not None:
            parts.append({"type": "text", "content": safe_str(block)})
    return parts


def _tool_call_parts(message: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    calls = _get(message, "tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, Mapping):
            parts.append({"type": "tool_call", "id": call.get("id"), "name": call.get("name"),
                          "arguments": call.get("args")})
    return parts


def message_dict(message: Any) -> dict[str, Any]:
    """One LangChain message (or a ``(role, text)`` tuple, or a plain string) as a semconv message."""
    if isinstance(message, str):
        return {"role": "user", "parts": [{"type": "text", "content": message}]}
    if isinstance(message, tuple) and len(message) == 2:
        role, content = message
        role_name = safe_str(role)
        return {"role": _ROLES.get(role_name, role_name), "parts": _parts_from_content(content)}
    msg_type = _get(message, "type") or _get(message, "role")
    type_name = safe_str(msg_type) if msg_type else "user"
    role = _ROLES.get(type_name, type_name)
    if role == "tool":
        result = _get(message, "content")
        return {"role": "tool", "parts": [{"type": "tool_call_response", "id": _get(message, "tool_call_id"),
                                           "result": _maybe_json(result)}]}
    out: dict[str, Any] = {"role": role, "parts": _parts_from_content(_get(message, "content"))
                           + _tool_call_parts(message)}
    name = _get(message, "name")
    if isinstance(name, str) and name:
        out["name"] = name
    return out


def input_messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Chat history -> (system instruction parts, input messages); LangChain batches are flattened in order."""
    system: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    batches = messages if isinstance(messages, list) else []
    for batch in batches:
        for message in batch if isinstance(batch, list) else [batch]:
            converted = message_dict(message)
            if converted["role"] == "system":
                system.extend(converted["parts"])
            else:
                history.append(converted)
    return system, history


def prompt_messages(prompts: Any) -> list[dict[str, Any]]:
    """Completion prompts (strings) as user messages."""
    return [message_dict(p) for p in prompts] if isinstance(prompts, list) else []


def output_messages(response: Any) -> list[dict[str, Any]]:
    """One output message per generation (choice), with its finish reason."""
    out: list[dict[str, Any]] = []
    generations = _get(response, "generations")
    for gen_list in generations if isinstance(generations, list) else ():
        for gen in gen_list if isinstance(gen_list, list) else ():
            message = _get(gen, "message")
            if message is not None:
                converted = message_dict(message)
                converted["role"] = "assistant"
            else:
                converted = {"role": "assistant", "parts": _parts_from_content(_get(gen, "text"))}
            meta = _get(message, "response_metadata") if message is not None else None
            info = _get(gen, "generation_info")
            reason = None
            for source in (meta, info):
                if isinstance(source, Mapping):
                    reason = source.get("finish_reason") or source.get("stop_reason")
                    if reason:
                        break
            if not reason:
                reason = "tool_call" if _get(message, "tool_calls") else "stop"
            reason_name = safe_str(reason)
            converted["finish_reason"] = _FINISH.get(reason_name, reason_name)
            out.append(converted)
    return out


def tool_definitions(invocation_params: Any) -> list[dict[str, Any]]:
    """OpenAI-style ``tools`` of the request as semconv tool definitions."""
    tools = invocation_params.get("tools") if isinstance(invocation_params, Mapping) else None
    out: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function")
        fn: Mapping[str, Any] = function if isinstance(function, Mapping) else tool
        out.append({"type": tool.get("type") or "function", "name": fn.get("name"),
                    "description": fn.get("description") or "",
                    "parameters": fn.get("parameters") or fn.get("input_schema")})
    return out


def documents(docs: Any) -> list[dict[str, Any]]:
    """Retrieved documents as ``[{id, score, content, metadata}]``."""
    out: list[dict[str, Any]] = []
    for doc in docs if isinstance(docs, list) else ():
        entry: dict[str, Any] = {}
        doc_id = _get(doc, "id")
        if doc_id is not None:
            entry["id"] = safe_str(doc_id)
        meta = _get(doc, "metadata")
        if isinstance(meta, Mapping):
            score = meta.get("score", meta.get("relevance_score"))
            if isinstance(score, int | float) and not isinstance(score, bool):
                entry["score"] = float(score)
            entry["metadata"] = meta
        entry["content"] = _get(doc, "page_content")
        out.append(entry)
    return out


def _maybe_json(value: Any) -> Any:
    """Tool outputs are often JSON text; record them as structure when they parse."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def tool_arguments(input_str: Any, inputs: Any) -> Any:
    """Tool arguments as data: LangChain's ``inputs`` dict when given, else ``input_str`` (parsed if JSON)."""
    if isinstance(inputs, Mapping):
        return inputs
    return _maybe_json(input_str)


def tool_result(output: Any) -> Any:
    """A tool's result: a ``ToolMessage``'s content (parsed if JSON), else the value itself."""
    content = _get(output, "content") if _get(output, "tool_call_id") is not None else output
    return _maybe_json(content)
