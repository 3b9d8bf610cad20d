"""A streaming query's pieces taken on a thread of their own, a bounded few ahead of the
reader that takes them.

Polars' ``collect_batches`` runs its query only a little ahead of the caller: while the
main thread accounts for a batch of the line scan's pieces (a few Polars queries, which
release the interpreter), the scan soon stops with nowhere to put its output, and the
two cores sit partly idle. A thread that takes the pieces as they come keeps the scan
going (see ``tuning.SCAN_AHEAD_BYTES``). The thread runs the query with ``sink_batches``:
under ``collect_batches`` a panic of Polars' streaming engine ends the pieces quietly, as
if the input ended there (Polars 2.1), where ``sink_batches`` raises it.

What is held ahead is bounded by its bytes (Polars' estimate of each piece), whatever the
pieces: a piece made while the bound is reached waits to be handed on, and the query
with it, so at most the bound and two pieces are held besides the caller's (one
waiting for room, one being made). The query runs on the streaming engine whatever
Polars' engine affinity says (the in-memory engine would make the whole result first).
The pieces come in the query's order; a failure of the query is raised, as itself, to
the caller once the pieces before it are taken. Leaving the ``with`` block, by an error
or early, stops the query (its next piece is refused) and waits for it to end, so no
query outlives the read; so does the interpreter's exit for a read left open (a
generator never closed), as Polars' thread would otherwise take the interpreter back
after it is gone and abort the process.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from types import TracebackType

import polars as pl

__all__ = ["THREAD_NAME", "PulledAhead"]

#: The name of the thread that runs a query
THREAD_NAME = "egress-offline-scan-ahead"

#: Seconds the caller waits at a time, for a piece or for the thread to end: importing
#: Polars makes an untimed wait deaf to Ctrl-C (its SIGINT handler restarts the call).
_STEP = 0.1
#: The reads under way, stopped at the interpreter's exit
_OPEN: weakref.WeakSet[PulledAhead] = weakref.WeakSet()


class PulledAhead:
    """``with PulledAhead(query, most) as pieces: for piece in pieces: ...``: the pieces
    of ``query`` (in ``chunk_size`` rows, as ``sink_batches`` makes them), made on a
    thread while at most ``most`` bytes of them wait."""

    def __init__(self, query: pl.LazyFrame, most: int, *, chunk_size: int | None = None) -> None:
        self._query = query  # the thread's: it lets go of it once it ends
        self._most, self._chunk_size = most, chunk_size
        self._waiting: deque[tuple[pl.DataFrame, int]] = deque()
        self._bytes = 0
        self._failure: BaseException | None = None
        self._done = self._stopped = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def __enter__(self) -> Iterator[pl.DataFrame]:
        _OPEN.add(self)
        self._thread.start()
        return self._taken()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self.stop()

    def stop(self) -> None:
        """Refuse the query's next piece and wait for its thread to end."""
        with self._changed:
            self._stopped = True
            self._waiting.clear()
            self._bytes = 0
            self._changed.notify_all()
        while self._thread.is_alive():  # in steps: Ctrl-C is not lost while it waits
            self._thread.join(_STEP)
        _OPEN.discard(self)

    def _run(self) -> None:
        query = self._query
        del self._query  # held by this frame alone, let go below (a failure keeps the frame)
        try:
            query.sink_batches(self._take, chunk_size=self._chunk_size, engine="streaming")
        except BaseException as exc:  # the caller's to raise (a panic too)
            with self._changed:
                self._failure = exc
        finally:
            del query
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def _take(self, piece: pl.DataFrame) -> bool:
        """One piece of the query, on its thread: True (no more) once the reader left."""
        size = int(piece.estimated_size())
        with self._changed:
            # room for one piece at least, whatever the bound
            while self._waiting and self._bytes >= self._most and not self._stopped:
                self._changed.wait()
            if self._stopped:
                return True
            self._waiting.append((piece, size))
            self._bytes += size
            self._changed.notify_all()
        return False

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


@atexit.register
def _stop_open() -> None:
    for pulled in list(_OPEN):
        pulled.stop()
