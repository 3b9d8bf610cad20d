"""A streaming query's pieces pulled on a thread of their own, a bounded few ahead of the
reader that takes them.

Polars' ``collect_batches`` runs its query only a little ahead of the caller: while the
main thread accounts for a batch of the line scan's pieces (a few Polars queries, which
release the interpreter), the scan soon stops with nowhere to put its output, and the
two cores sit partly idle. A thread that takes the pieces as they come keeps the scan
going (4 GB of NDJSON: the hunt 11% faster, see ``tuning.SCAN_AHEAD_BYTES``).

What is held ahead is bounded by its bytes (Polars' estimate of each piece), whatever the
pieces: the thread asks the query for another piece only while less than the bound is
waiting, so at most the bound and one piece are held besides the caller's. The pieces
come in the query's order; a failure of the query is raised, as itself, to the caller
once the pieces before it are taken. Leaving the ``with`` block, by an error or early,
stops the thread: it asks for no more pieces, and the block waits for the piece being
made, if any, so no query outlives the read.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from types import TracebackType

import polars as pl

__all__ = ["PulledAhead"]

#: Seconds the caller waits at a time, for a piece or for the thread to end: importing
#: Polars makes an untimed wait deaf to Ctrl-C (its SIGINT handler restarts the call).
_STEP = 0.1


class PulledAhead:
    """``with PulledAhead(query.collect_batches(), most) as pieces: for piece in
    pieces: ...``: the pieces, taken from the query on a thread while at most ``most``
    bytes of them wait."""

    def __init__(self, pieces: Iterator[pl.DataFrame], most: int) -> None:
        self._source = pieces
        self._most = most
        self._waiting: deque[tuple[pl.DataFrame, int]] = deque()
        self._bytes = 0
        self._failure: BaseException | None = None
        self._done = self._stopped = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self._pull, name="egress-offline-scan-ahead", daemon=True
        )

    def __enter__(self) -> Iterator[pl.DataFrame]:
        self._thread.start()
        return self._taken()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        with self._changed:
            self._stopped = True
            self._waiting.clear()
            self._changed.notify_all()
        while self._thread.is_alive():  # in steps: Ctrl-C is not lost while it waits
            self._thread.join(_STEP)

    def _pull(self) -> None:
        try:
            while True:
                with self._changed:
                    # room for one piece at least, whatever the bound
                    while self._waiting and self._bytes >= self._most and not self._stopped:
                        self._changed.wait()
                    if self._stopped:
                        return
                piece = next(self._source, None)
                if piece is None:
                    return
                size = int(piece.estimated_size())
                with self._changed:
                    if self._stopped:
                        return
                    self._waiting.append((piece, size))
                    self._bytes += size
                    self._changed.notify_all()
                del piece  # a failure's traceback would hold it
        except BaseException as exc:  # the caller's to raise (a panic too)
            with self._changed:
                self._failure = exc
        finally:
            self._source = iter(())  # the query is dropped on this thread: it stops
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def _taken(self) -> Iterator[pl.DataFrame]:
        while True:
            with self._changed:
                while not self._waiting and not self._done:
                    self._changed.wait(_STEP)  # in steps: Ctrl-C is not lost
                if not self._waiting:
                    if self._failure is not None:
                        raise self._failure
                    return
                piece, size = self._waiting.popleft()
                self._bytes -= size
                self._changed.notify_all()
            yield piece
