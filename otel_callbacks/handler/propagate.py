"""Trace context for remote graphs: the requests a traced run makes to a LangGraph server carry its span context."""

from __future__ import annotations


def install() -> None:
    """Called once per handler made; makes outgoing remote-graph requests carry the current trace context."""
