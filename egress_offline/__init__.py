"""egress-offline: Elastic's hunt "Egress Network Connections with Total Bytes Greater than
Threshold" over exported endpoint logs, without a cluster."""

from egress_offline.engine import Counts, HuntResult, run_hunt
from egress_offline.errors import DataError, EgressError, InputError, UsageError
from egress_offline.spec import HuntSpec, SweepSpec
from egress_offline.sweep import SweepResult, run_sweep

__version__ = "0.1.0"

__all__ = [
    "Counts",
    "DataError",
    "EgressError",
    "HuntResult",
    "HuntSpec",
    "InputError",
    "SweepResult",
    "SweepSpec",
    "UsageError",
    "__version__",
    "run_hunt",
    "run_sweep",
]
