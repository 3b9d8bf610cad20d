"""What a command writes besides its rows: the ``--html`` page, and the record of each
output file (its SHA-256) for the run report, which is written last."""

from __future__ import annotations

import hashlib
import os
from importlib import import_module
from pathlib import Path
from typing import IO, Any, Literal

from egress_offline.errors import OutputError
from egress_offline.outputs import output_target, write_output

__all__ = ["output_record", "require_html", "write_html"]


def require_html(path: Path | None) -> None:
    """Before reading: ``--html`` needs plotly (an optional dependency); without it, a
    :class:`~egress_offline.errors.UsageError` (exit 2) says how to install it."""
    if path is not None:
        import_module("egress_offline.html").require_plotly()


def write_html(path: Path, command: Literal["hunt", "sweep", "pivot"], result: Any, *,
               version: str, outputs: list[dict[str, Any]]) -> None:  # fmt: skip
    """The run's HTML page to ``path``, written as ``-o`` writes (atomically); it lists
    ``outputs``, the files written before it (:func:`output_record`)."""
    renderer = getattr(import_module("egress_offline.html"), f"{command}_html")
    page: bytes = renderer(result, version=version, outputs=list(outputs))

    def write(sink: IO[bytes]) -> None:
        sink.write(page)

    write_output(path, write, option="--html")


def output_record(option: str, path: Path) -> dict[str, Any]:
    """An output the run wrote, for the report: its path as given, and the size and
    SHA-256 of the file written; a device or FIFO, written through, has none."""
    target = output_target(path, option=option)
    record: dict[str, Any] = {"option": option, "path": str(path)}
    if target.through:
        return {**record, "written_through": True, "size_bytes": None, "sha256": None}
    try:
        with open(target.file, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise OutputError(
            f"{path}: was written, but cannot be read back for its SHA-256 ({exc.strerror}); "
            "check the file",
            file=str(path),
        ) from exc
    return {**record, "written_through": False, "size_bytes": size, "sha256": digest}
