"""Tracing for the LangGraph server process, set up once by whichever module the server imports first.

The graph module imports it (the only set-up without ``http.app``), and so does the web app module when there is one
(``webapp.py``). Either way a SIGTERM exports the pending spans once the server's graceful shutdown is done: from the
web app module (imported in the server's main thread) through the SIGTERM handler set-up installs; from the graph
module (langgraph-api imports it in a worker thread, where Python allows no signal handler) through the wrapped
``signal.raise_signal`` with which uvicorn ends its shutdown.
"""

from __future__ import annotations

import otel_callbacks

otel_callbacks.setup_tracing(service_name="remote-graph-server")  # or OTEL_SERVICE_NAME, OTEL_TRACES_EXPORTER, ...
otel_callbacks.instrument()
