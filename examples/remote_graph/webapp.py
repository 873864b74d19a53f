"""The web app of the ``http.app`` set-up (``langgraph.http.json``): the OpenTelemetry ASGI middleware, so every
request to the server becomes a SERVER span (``POST /threads/{thread_id}/runs/stream``) that joins the caller's
trace; with ``OTEL_ENABLED=true`` langgraph-api hands that span to its queue worker, whose ``worker.stream_run``
span the graph's root run then nests under.

    pip install opentelemetry-instrumentation-asgi      # in langgraph's env
"""

from __future__ import annotations

import server_tracing  # noqa: F401  (here, in the server's main thread: SIGTERM then flushes pending spans)
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware

# The per-message "http send" / "http receive" spans would outnumber the graph's own.
app = Starlette(middleware=[Middleware(OpenTelemetryMiddleware, exclude_spans=["receive", "send"])])
