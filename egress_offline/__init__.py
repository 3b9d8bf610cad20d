"""egress-offline: Elastic's hunt "Egress Network Connections with Total Bytes Greater than
Threshold" over exported endpoint logs, without a cluster.

The names below are loaded on first use, so that a light module (``egress_offline.ranges``,
``egress_offline.errors``) can be imported without Polars."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from egress_offline.engine import Counts, HuntResult, run_hunt
    from egress_offline.errors import (
        DataError,
        EgressError,
        InputError,
        OutputError,
        ScratchError,
        UsageError,
    )
    from egress_offline.pivot import PivotResult, run_pivot
    from egress_offline.spec import HuntSpec, SweepSpec
    from egress_offline.sweep import SweepResult, run_sweep

__version__ = "0.1.0"

_HOMES = {
    "Counts": "engine",
    "HuntResult": "engine",
    "run_hunt": "engine",
    "DataError": "errors",
    "EgressError": "errors",
    "InputError": "errors",
    "OutputError": "errors",
    "ScratchError": "errors",
    "UsageError": "errors",
    "PivotResult": "pivot",
    "run_pivot": "pivot",
    "HuntSpec": "spec",
    "SweepSpec": "spec",
    "SweepResult": "sweep",
    "run_sweep": "sweep",
}

__all__ = [
    "Counts",
    "DataError",
    "EgressError",
    "HuntResult",
    "HuntSpec",
    "InputError",
    "OutputError",
    "PivotResult",
    "ScratchError",
    "SweepResult",
    "SweepSpec",
    "UsageError",
    "__version__",
    "run_hunt",
    "run_pivot",
    "run_sweep",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"egress_offline.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'egress_offline' has no attribute {name!r}")
