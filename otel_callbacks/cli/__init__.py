"""The ``otel-callbacks`` command line (``demo``, ``view``, ``send``) and the trace tree it prints.

Nothing here is loaded by ``import otel_callbacks``: the commands import setup and exporters when they run.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from otel_callbacks.cli.commands import main as run

    return run(argv)
