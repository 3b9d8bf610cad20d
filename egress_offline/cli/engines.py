"""``--engine local|spark`` and ``--spark-master``: which engine runs hunt and sweep.
The Spark engine (an optional extra) is imported only when asked for."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

import typer

from egress_offline.errors import UsageError

__all__ = ["EngineName", "SparkMaster", "engine_runner"]

EngineName = Annotated[
    Literal["local", "spark"],
    typer.Option(
        "--engine",
        help="'local' (this machine, the default) or 'spark': the inputs read by Spark "
        "tasks (pip install 'egress-offline\\[spark]'); the same rows and report.",
    ),
]

SparkMaster = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        metavar="URL",
        help="With --engine spark: the master of the session made for the run "
        "(local[N], spark://host:port, yarn, ...). Default: the active session, else local[*].",
        show_default=False,
    ),
]


def engine_runner(engine: str, master: str | None, command: Literal["hunt", "sweep"],
                  local: Any) -> Any:  # fmt: skip
    """The function that runs ``command`` on ``engine``: ``local`` for the local engine,
    else the Spark engine's, bound to ``master``. Raises :class:`UsageError` for
    ``--spark-master`` without ``--engine spark``, and
    :class:`~egress_offline.errors.EngineError` when PySpark or Java is missing."""
    if engine == "local":
        if master is not None:
            raise UsageError("--spark-master: only with --engine spark; add --engine spark")
        return local
    from egress_offline import spark  # noqa: PLC0415  (an optional extra: imported when asked)

    spark.require_spark()
    runner = spark.run_hunt if command == "hunt" else spark.run_sweep
    return partial(runner, master=master)
