"""The text check: before Polars scans a file's lines, make sure that no line is longer
than :data:`~tuning.FAST_LINE`. Polars holds a line whole, several times over (a 600 MB
line took gigabytes, a 10 GB one aborted the process); a file that has a longer line is
read by the careful reader, which holds lines up to :data:`~tuning.LINE_LIMIT` and skips
longer ones unread.

An uncompressed file is checked where it lies, in no time: every window of half the limit
at a multiple of it must hold a line end. A compressed file is decompressed once, a
bounded piece at a time (ISA-L: about 0.45 s a GB of text, on one core), before Polars
reads it. That pass also finds what only reading the whole file can: the exact size of
its text, damage in its stream, and its last lines, which give ``--now latest`` the
file's newest timestamps before its lines are scanned, as an uncompressed file's end
does (:mod:`~egress_offline.readers.timefloor`)."""

from __future__ import annotations

import codecs
import mmap
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Final

from egress_offline.readers import tuning
from egress_offline.readers.compression import decompressed
from egress_offline.readers.model import InputFile

__all__ = ["TextCheck", "TextChecks", "check_text", "checked_whole", "needs_check"]


@dataclass(frozen=True)
class TextCheck:
    """What the check found: a line over the limit; the file's last bytes of text
    (compressed files only: an uncompressed file's end is read where it lies); the damage
    in a compressed stream, if any; the size of the text in bytes."""

    long_line: bool
    tail: bytes = b""
    damage: str | None = None
    text_size: int = 0
    #: a compressed file's text holds bytes that are not UTF-8
    not_utf8: bool = False

    @property
    def fast(self) -> bool:
        """Can the fast reader read the file? Not with a long line, nor with damage or
        bytes that are not UTF-8: Polars would fail there, after reading (and holding)
        the text before it for nothing."""
        return not self.long_line and self.damage is None and not self.not_utf8

    @property
    def why_not(self) -> str:
        if self.long_line:
            return f"a line longer than {tuning.FAST_LINE:,} bytes"
        return self.damage or "bytes that are not UTF-8"


class TextChecks:
    """The checks of one read session's files, each file checked once. The tails are
    handed out once (:meth:`tail`) and not kept: a directory of many files would hold
    them all; with ``keep_tails`` False (a fixed anchor samples no file's end) they are
    not kept at all."""

    def __init__(self, *, keep_tails: bool = True) -> None:
        self.keep_tails = keep_tails
        self._done: dict[InputFile, TextCheck] = {}
        self._tails: dict[InputFile, bytes] = {}
        #: checks made ahead (:meth:`ahead`), each with its file's size and time when it
        #: began; and the files whose turn has not come
        self._running: dict[InputFile, tuple[Future[TextCheck], _Stamp]] = {}
        self._next: deque[InputFile] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._depth = tuning.CHECKS_AHEAD
        self._stop = threading.Event()

    def of(self, file: InputFile) -> TextCheck:
        found = self._done.get(file)
        if found is None:
            found = self._made_ahead(file) or check_text(file)
            if found.tail:
                if self.keep_tails:
                    self._tails[file] = found.tail
                found = replace(found, tail=b"")
            self._done[file] = found
        self._top_up()
        return found

    def _made_ahead(self, file: InputFile) -> TextCheck | None:
        """The check made ahead of ``file``, unless the file has changed since it began
        (it is checked again, as it is now)."""
        made = self._running.pop(file, None)
        if made is None:
            return None
        running, stamp = made
        if stamp is None or _stamp_of(file) != stamp:
            running.cancel()
            return None
        return running.result()

    @contextmanager
    def ahead(self, files: Sequence[InputFile], depth: int = tuning.CHECKS_AHEAD
              ) -> Iterator[None]:  # fmt: skip
        """While the caller asks for the checks of ``files`` (:meth:`of`, in their
        order), the next ones are made on threads, ``depth`` at a time: the decompressors
        release the GIL, so a directory of compressed files is checked on every core
        (``--now latest`` checks them all before reading any), or the next file while one
        is read. At the end, checks not asked for are stopped and dropped. Only files
        whose check is a whole pass (:func:`checked_whole`) are checked ahead, and not one
        smaller than :data:`~tuning.CHECK_AHEAD_SIZE`: its check is mostly Python, which a
        thread only slows. Inside another ``ahead`` (the reader samples one file's ends
        while the session checks ahead), this one adds nothing."""
        own = [
            file
            for file in dict.fromkeys(files)
            if checked_whole(file)
            and file.size >= tuning.CHECK_AHEAD_SIZE
            and file not in self._done
        ]
        if not own or self._pool is not None:
            yield
            return
        self._next.extend(own)
        self._depth = depth
        self._stop = stop = threading.Event()
        self._pool = pool = ThreadPoolExecutor(depth, "egress-offline-check")
        try:
            self._top_up()
            yield
        finally:
            self._pool = None
            self._next.clear()
            self._running.clear()
            # a check under way ends after the input chunk in hand; not waited for
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)

    def _top_up(self) -> None:
        while self._pool is not None and self._next and len(self._running) < self._depth:
            file = self._next.popleft()
            if file in self._done or file in self._running:
                continue
            stamp = _stamp_of(file)
            try:
                self._running[file] = (self._pool.submit(check_text, file, self._stop), stamp)
            except RuntimeError:  # no thread to be had (a process limit): checked when asked
                self._pool = None
                self._next.clear()

    def tail(self, file: InputFile) -> bytes:
        """The last bytes of a compressed file's text (checked now if not yet)."""
        self.of(file)
        return self._tails.pop(file, b"")


#: A file's size and modification time (ns), or None when it cannot be seen
_Stamp = tuple[int, int] | None


def _stamp_of(file: InputFile) -> _Stamp:
    try:
        seen = os.stat(file.path)
    except OSError:
        return None
    return seen.st_size, seen.st_mtime_ns


def checked_whole(file: InputFile) -> bool:
    """Is a file's check a whole pass over its text? A compressed NDJSON file's, but one
    named by URI or copied before it is read (its check is of the copy)."""
    return (
        file.format == "ndjson"
        and file.compression != "none"
        and file.layout == "documents"
        and not file.needs_copy
        and file.uri is None
    )


def needs_check(file: InputFile) -> bool:
    """Could ``file`` hold a line over the limit? Only a compressed one, or one larger
    than half the limit."""
    return file.compression != "none" or file.size > tuning.FAST_LINE // 2


#: The damage of a check stopped before its end: its result is void, never used.
_STOPPED: Final = "the check was stopped"


def check_text(file: InputFile, stop: threading.Event | None = None) -> TextCheck:
    """Check ``file``'s lines (see the module docstring). Once ``stop`` is set the check
    ends after the piece in hand, its result void (:meth:`TextChecks.ahead` drops it)."""
    if file.compression == "none":
        return TextCheck(long_line=_long_line_in_place(file), text_size=file.size)
    limit = tuning.FAST_LINE
    since = 0  # bytes since the last line end
    size = 0
    tail = b""
    damage: list[str] = []
    utf8 = codecs.getincrementaldecoder("utf-8")()
    valid = True
    with file.path.open("rb") as handle:
        for piece in decompressed(handle, file.compression, damage.append, stop=stop):
            if stop is not None and stop.is_set():
                return TextCheck(long_line=False, damage=_STOPPED)
            size += len(piece)
            if valid and (not piece.isascii() or utf8.getstate()[0]):
                try:  # a character may be cut by the piece's end: the decoder keeps it
                    utf8.decode(piece)
                except UnicodeDecodeError:
                    valid = False
            end = piece.rfind(b"\n")
            if end < 0:
                since += len(piece)
            else:
                if since + piece.find(b"\n") > limit:
                    return TextCheck(long_line=True, text_size=size)
                since = len(piece) - end - 1
            if since > limit:
                return TextCheck(long_line=True, text_size=size)
            tail = (tail + piece[-tuning.SAMPLE :])[-tuning.SAMPLE :]
    if stop is not None and stop.is_set():  # the text may have ended early for it
        return TextCheck(long_line=False, damage=_STOPPED)
    if valid and not damage:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            valid = False
    return TextCheck(long_line=False, tail=tail, damage=next(iter(damage), None),
                     text_size=size, not_utf8=not valid)  # fmt: skip


def _long_line_in_place(file: InputFile) -> bool:
    """Does an uncompressed file hold a line over the limit? Every line that long covers
    a whole window of half the limit starting at a multiple of it: such a window with no
    line end is looked for (a few hundred memchr calls for a 4 GB file, each ending at
    the window's first line end)."""
    step = tuning.FAST_LINE // 2
    if file.size <= step:
        return False
    with file.path.open("rb") as handle:
        try:
            view = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # not mappable (a special file): read it
            return _long_line_by_reading(file)
        with view:
            return any(
                view.find(b"\n", start, start + step) < 0
                for start in range(0, len(view) - step + 1, step)
            )


def _long_line_by_reading(file: InputFile) -> bool:
    since = 0
    with file.path.open("rb") as handle:
        while piece := handle.read(tuning.BLOCK):
            end = piece.rfind(b"\n")
            if end < 0:
                since += len(piece)
            else:
                if since + piece.find(b"\n") > tuning.FAST_LINE:
                    return True
                since = len(piece) - end - 1
            if since > tuning.FAST_LINE:
                return True
    return False
