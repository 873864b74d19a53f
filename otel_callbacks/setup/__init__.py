"""One-line provider set-up: ``setup_tracing`` and ``setup_metrics``, their environment, exporters and lifecycle.

Loaded on first use of ``otel_callbacks.setup_tracing`` / ``setup_metrics``, never by ``import otel_callbacks``.
"""
