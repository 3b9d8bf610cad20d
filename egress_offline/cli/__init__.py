"""The ``egress-offline`` command (typer): ``app`` holds the commands, ``run`` is the
console script's entry point."""

from __future__ import annotations

from egress_offline.cli.commands import app, run
from egress_offline.cli.progress import ProgressDisplay, shortened

__all__ = ["ProgressDisplay", "app", "run", "shortened"]
