"""``python -m otel_callbacks`` runs the CLI (same as the ``otel-callbacks`` script)."""

from otel_callbacks.cli import main

raise SystemExit(main())
