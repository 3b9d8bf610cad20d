"""``--engine spark``: the hunt and the sweep with the inputs read by Spark tasks, which
run this package's own readers and row predicate on each file; the same rows, counts and
reports as the local engine. An optional extra: ``pip install 'egress-offline[spark]'``.

    from egress_offline.spark import run_hunt
    result = run_hunt(["/data/exports"], spark=spark)   # a notebook's own session

Importing this module does not import PySpark; running without it raises
:class:`~egress_offline.errors.EngineError` with the install hint.
"""

from egress_offline.spark.run import run_hunt, run_sweep
from egress_offline.spark.session import DEFAULT_MASTER, require_spark, spark_session

__all__ = ["DEFAULT_MASTER", "require_spark", "run_hunt", "run_sweep", "spark_session"]
