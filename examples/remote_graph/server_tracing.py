"""Tracing for the LangGraph server process, set up once by whichever module the server imports first.

Import it from the web app module when there is one (``webapp.py``): the server imports that in its main thread,
before its own signal handling starts, so the SIGTERM flush is installed and no pending span is lost when the server
is stopped. The graph module imports it too (the only set-up without ``http.app``); langgraph-api imports graph
modules in a worker thread, where no signal handler can be installed, so there the last batch of spans pending at
SIGTERM is lost (export is batched: every 5 s by default, ``OTEL_BSP_SCHEDULE_DELAY``).
"""

from __future__ import annotations

import otel_callbacks

otel_callbacks.setup_tracing(service_name="remote-graph-server")  # or OTEL_SERVICE_NAME, OTEL_TRACES_EXPORTER, ...
otel_callbacks.instrument()
