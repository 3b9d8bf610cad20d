"""Scratch space: the one directory a run writes to besides its outputs, under the
temporary directory (``TMPDIR``), with a budget of bytes, and removed however the run
ends.

Everything a run writes there (candidate rows and timestamps past the spill's first
32 MiB, which stay in memory, a file's output held until its end, UTF-8 copies, standard
input) is charged to the budget as it is written; passing it stops
the run with a :class:`~egress_offline.errors.ScratchError` that says how much was needed
and where. The default budget leaves the scratch file system some room: its free space at
the start of the run less a tenth of its size (at least 1 GiB), so that a hostile input
cannot fill the disk (or, on a ``tmpfs``, the memory) it lives on.

The directory's name holds the process id (``egress-offline-<pid>-<8 hex digits>``), and
it holds a marker file (:data:`MARKER`) naming the process id namespace: a later run
removes the directories of processes that no longer exist (a run killed with SIGKILL,
or a machine that lost power, cannot remove its own), and only those: a name alone
(a user's ``egress-offline-2026-11-20`` of evidence or findings) was taken for one, and
removed; and a directory of another namespace (a container sharing ``/tmp``), whose
process this one cannot see, is left alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from stat import S_ISREG
from typing import Final, Generic, TypeVar

from egress_offline.errors import ScratchError

__all__ = [
    "PREFIX",
    "Scratch",
    "Writer",
    "default_limit",
    "remove_stale",
    "scratch_errors",
    "written",
]

PREFIX: Final = "egress-offline-"
_OURS: Final = re.compile(rf"^{re.escape(PREFIX)}(\d+)-[0-9a-f]{{8}}$")
#: The file a scratch directory holds from its making: the namespace of its process id.
MARKER: Final = ".egress-offline-scratch"
_UNKNOWN: Final = "pid namespace unknown\n"  # without /proc: never taken for another's
#: Room the default budget leaves on the scratch file system: a tenth of it, at least this.
_RESERVE: Final = 1 << 30

#: A disk or quota full: the scratch space's fault, not the input's nor the output's.
_FULL: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_OS_ERROR: Final = re.compile(r"\(os error (\d+)\)")
#: Writes handed to a :class:`Writer` and not yet made, at most: each holds its data
#: until it is made.
_IN_FLIGHT: Final = 1
_T = TypeVar("_T")


class Scratch:
    """One run's scratch directory (made when first needed) and its budget in bytes
    (``limit``; None: :func:`default_limit`). Use it as a context manager, or call
    :meth:`close`."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self._given = limit is not None
        self.used = 0  # bytes charged and not released
        self.peak = 0
        self._root: Path | None = None
        self._sizes: dict[Path, int] = {}
        # the spill's writer thread makes and charges files too
        self._lock = threading.RLock()
        self._closing: list[Callable[[], None]] = []
        self._closed = False

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def root(self) -> Path:
        """The directory, made now if it is not yet (once, whichever thread asks)."""
        with self._lock:
            return self._made()

    def _made(self) -> Path:
        if self._closed:  # a writer still at work as the run ends: nothing is made again
            raise ScratchError("the run is over: its scratch directory has been removed")
        if self._root is None:
            base = Path(tempfile.gettempdir())
            remove_stale(base)
            root = self._make_directory(base)
            if self.limit is None:
                self.limit = default_limit(root)
            return root
        return self._root

    def _make_directory(self, base: Path) -> Path:
        """A new directory in ``base`` named for this process, kept as the root before it
        is made. SIGTERM raises in the main thread wherever that thread is: taken between
        ``tempfile.mkdtemp`` making the directory and its name being kept, it left the
        directory behind; now :meth:`close` removes it, made or not."""
        for _ in range(100):
            self._root = root = base / f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            try:
                os.mkdir(root, 0o700)
            except FileExistsError:
                self._root = None  # another's: never removed
                continue
            except OSError as exc:
                self._root = None
                raise ScratchError(
                    f"cannot make a scratch directory in {base} ({exc.strerror}); set "
                    "TMPDIR to a writable directory with free space"
                ) from exc
            try:
                marker = os.open(root / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(marker, "w") as handle:
                    handle.write(_namespace())
            except OSError as exc:
                raise ScratchError(
                    f"cannot write in the scratch directory {root} ({exc.strerror}); set "
                    "TMPDIR to a writable directory with free space"
                ) from exc
            return root
        self._root = None
        raise ScratchError(
            f"cannot make a scratch directory in {base} (100 names were taken); set TMPDIR "
            "to another directory"
        )

    def path(self, name: str) -> Path:
        """A path for a new scratch file (or directory) named ``name``."""
        return self.root / name

    def charge(self, path: Path, count: int | None = None) -> None:
        """Count ``count`` more bytes of ``path`` against the budget (by default, what it
        has grown by since it was last charged), as it is written."""
        with self._lock:
            before = self._sizes.get(path, 0)
            if count is None:
                try:
                    count = path.stat().st_size - before
                except OSError:
                    return
            self._sizes[path] = before + count
            self.used += count
            self.peak = max(self.peak, self.used)
        limit = self.limit if self.limit is not None else default_limit(self.root)
        if self.used > limit:
            which = "--scratch-limit" if self._given else _default_words(self.root)
            raise ScratchError(
                f"the run needs more than {limit:,} bytes ({_size(limit)}) of scratch space "
                f"in {self.root.parent} ({which}); raise --scratch-limit, or set TMPDIR to "
                "a disk with more free space"
            )

    def release(self, path: Path) -> None:
        """Remove a scratch file (or directory), and its size from the count."""
        with self._lock:
            self.used -= self._sizes.pop(path, 0)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def on_close(self, finish: Callable[[], None]) -> None:
        """Call ``finish`` (which must not raise) when the directory is about to be
        removed: a writer that may still be writing into it stops first."""
        self._closing.append(finish)

    def close(self) -> None:
        """Remove the directory and everything in it, once the writers told of with
        :meth:`on_close` have stopped, or however waiting for them ends (a second Ctrl-C):
        from then on no directory is made again."""
        try:
            while self._closing:
                self._closing.pop()()
        finally:
            with self._lock:
                self._closed = True
                root, self._root = self._root, None
                self._sizes.clear()
                self.used = 0
            if root is not None:
                with _uninterrupted():
                    shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """A second Ctrl-C (or a SIGTERM, SIGHUP) while the directory is removed is not taken
    (in the main thread, where Python takes signals): it interrupted the removal,
    leaving the directory behind (two Ctrl-Cs 10 to 20 ms apart left an empty one every
    time). The removal takes milliseconds, and the run is already ending."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    try:
        before = [signal.signal(number, signal.SIG_IGN) for number in taken]
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        for number, handler in zip(taken, before, strict=True):
            signal.signal(number, handler)


class Writer(Generic[_T]):
    """Writes of scratch files (the spill's parts, a file's held output), in order, one
    at a time on a thread of their own: encoding and compressing a frame (a third of a
    4 GB Parquet sweep's reduction) overlaps the reading of the next ones, on the core
    that reading leaves idle. At most :data:`_IN_FLIGHT` writes wait. Once one fails,
    none after it is made (the scratch budget stays bounded), and its failure is raised
    by the next hand-over or when its result is asked for (:func:`written`)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._waiting: deque[Future[_T]] = deque()
        self._failure: BaseException | None = None

    def submit(self, write: Callable[[], _T]) -> Future[_T]:
        while len(self._waiting) >= _IN_FLIGHT:
            self._waiting.popleft().result()  # raises the write's failure
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=self._name)
        future = self._pool.submit(self._run, write)
        self._waiting.append(future)
        return future

    def _run(self, write: Callable[[], _T]) -> _T:
        if self._failure is not None:  # refused: the first failure is every later one's
            raise self._failure
        try:
            return write()
        except BaseException as exc:
            self._failure = exc
            raise

    def stop(self) -> None:
        """End the thread: the writes not yet begun are cancelled, the one under way is
        waited for."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)
        self._waiting.clear()


def written(items: Iterable[_T | Future[_T]]) -> list[_T]:
    """``items``, each write among them waited for, in order (its failure raised), and
    replaced by its result."""
    return [item.result() if isinstance(item, Future) else item for item in items]


def _default_words(directory: Path) -> str:
    """The default limit, said with the free space it was found from."""
    try:
        free = f", {_size(shutil.disk_usage(directory).free)},"
    except OSError:
        free = ""
    return (
        f"the default limit: the free space{free} less a tenth of the disk's size, at least "
        f"{_size(_RESERVE)}, kept free"
    )


def default_limit(directory: Path) -> int:
    """The default budget: the free space of ``directory``'s file system less a tenth of
    its size (at least 1 GiB)."""
    try:
        usage = shutil.disk_usage(directory)
    except OSError:
        return 0
    return max(0, usage.free - max(_RESERVE, usage.total // 10))


def remove_stale(base: Path) -> None:
    """Remove the scratch directories in ``base`` of processes that no longer exist: a
    directory named as one, of this user, holding the marker of this process id
    namespace (nothing else is ever removed)."""
    try:
        entries = list(os.scandir(base))
    except OSError:
        return
    ours = _namespace()
    if ours == _UNKNOWN:  # no process id means anything here: nothing is taken for stale
        return
    for entry in entries:
        found = _OURS.match(entry.name)
        if found is None or int(found.group(1)) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != os.getuid():
                continue
            if _marked(Path(entry.path) / MARKER) != ours or _alive(int(found.group(1))):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)


def _namespace() -> str:
    """This process's process id namespace (the inode of ``/proc/self/ns/pid``): a
    process id means something only within it."""
    try:
        return f"pid namespace {os.stat('/proc/self/ns/pid').st_ino}\n"
    except OSError:
        return _UNKNOWN


def _marked(marker: Path) -> str | None:
    """The marker's text: a regular file of this user, not a link; else None."""
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        stat = os.fstat(handle.fileno())
        if not (S_ISREG(stat.st_mode) and stat.st_uid == os.getuid()):
            return None
        return handle.read(256).decode("utf-8", errors="replace")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@contextlib.contextmanager
def scratch_errors(scratch: Scratch) -> Iterator[None]:
    """Writing to the scratch directory: a full disk (or quota) is the scratch space's,
    not the output's, and the message says so."""
    try:
        yield
    except Exception as exc:  # Polars words an OS error as text ("(os error 28)")
        code = exc.errno if isinstance(exc, OSError) else None
        if code is None and (found := _OS_ERROR.search(str(exc))):
            code = int(found[1])
        if code not in _FULL:
            raise
        where = scratch.root.parent if scratch._root is not None else tempfile.gettempdir()
        raise ScratchError(
            f"the scratch directory in {where} is full ({os.strerror(code)}, after "
            f"{_size(scratch.used)} of scratch); set TMPDIR to a disk with more free space"
        ) from exc


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"  # pragma: no cover
