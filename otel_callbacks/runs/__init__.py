"""Run bookkeeping (``registry``: run id -> open run, per handler, deduplicated per tracer provider) and the
OpenTelemetry context around each run (``context``: the only module that touches the current context)."""
