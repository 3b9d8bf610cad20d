"""An NDJSON file's output held until the file has been read to its end (see
``ReadSession``): in memory up to :data:`~egress_offline.readers.tuning.HELD_OUTPUT`,
the rest written to the scratch directory on a writer thread and read back in order."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import polars as pl

from egress_offline.readers import tuning
from egress_offline.readers.batching import frame_bytes
from egress_offline.readers.boundary import not_the_file
from egress_offline.readers.model import StampBatch
from egress_offline.scratch import Scratch, Writer, scratch_errors, written

__all__ = ["FileOutput"]


class FileOutput:
    """An NDJSON file's output, held until the file has been read to its end: the fast
    reader may still give up on the file, and then none of it may have been handed on.
    (Polars' streaming scan, meeting invalid UTF-8, first hands on lines of later parts of
    the file, misnumbered, and only then fails: what it gave is not even a prefix.)
    Up to :data:`~tuning.HELD_OUTPUT` bytes wait in memory; the rest in compressed Arrow
    files in the scratch directory, charged to its budget."""

    def __init__(self, scratch: Scratch) -> None:
        self._scratch = scratch
        self._items: list[pl.DataFrame | StampBatch | Future[Path]] = []
        self._held = 0
        self._writer: Writer[Path] | None = None  # made with the first file written

    def add(self, item: pl.DataFrame | StampBatch) -> None:
        frame = item.ms.to_frame() if isinstance(item, StampBatch) else item
        if frame.height == 0:
            return
        size = frame_bytes(frame)  # Polars' estimate leaves out null list elements
        if self._held + size <= tuning.HELD_OUTPUT:
            self._items.append(item)
            self._held += size
            return
        kind = "stamps" if isinstance(item, StampBatch) else "fields"
        path = self._scratch.path(f"{kind}-{id(self)}-{len(self._items):06d}.arrow")
        if self._writer is None:  # written on a thread of its own, as the spill is
            self._writer = Writer("egress-offline-output")
            self._scratch.on_close(self._writer.stop)
        with not_the_file():  # an earlier write's failure: the scratch space's
            self._items.append(self._writer.submit(lambda: self._write(frame, path)))

    def _write(self, frame: pl.DataFrame, path: Path) -> Path:
        with scratch_errors(self._scratch):
            frame.write_ipc(path, compression=tuning.SCRATCH_COMPRESSION)
        self._scratch.charge(path)
        return path

    def discard(self) -> None:
        self._stop()
        for item in self._items:
            path = _made(item) if isinstance(item, Future) else item
            if isinstance(path, Path):
                self._scratch.release(path)
        self._items, self._held = [], 0

    def release(self) -> Iterator[pl.DataFrame | StampBatch]:
        """Everything held, in the order it came. (Reading the next file ahead on a
        thread saved 0.05 to 0.1 s of a 4 GB hunt and held one more frame: a 10 GB
        file of matching events peaked higher by about as much.)"""
        # Future[Path] is not Future[DataFrame | StampBatch | Path] to mypy (invariant)
        with not_the_file():
            items: list[pl.DataFrame | StampBatch | Path] = written(self._items)  # type: ignore[arg-type]
        self._items, self._held = [], 0
        self._stop()
        for item in items:
            if not isinstance(item, Path):
                yield item
                continue
            frame = pl.read_ipc(item)
            self._scratch.release(item)
            yield StampBatch(frame.to_series()) if item.name.startswith("stamps") else frame

    def _stop(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer = None


def _made(write: Future[Path]) -> Path | None:
    """The file of a write that was made (it may have failed: its file, if any, goes
    with the scratch directory)."""
    if write.cancelled() or write.exception() is not None:
        return None
    return write.result()
