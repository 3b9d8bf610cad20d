"""Output files (``-o``, ``--report``): where a result may go, and writing it there
without harming what is already there.

An output path names one of three things, told by what is there now:

- a regular file, or none yet (through any symlinks): the result is written to a
  temporary file beside the file, which is then renamed over it, so that a crash, Ctrl-C
  or a full disk never leaves a partial or damaged file. A symlink stays a symlink: its
  target is replaced. A replaced file keeps its permission bits; a new one gets the
  umask's (0644 under umask 022);
- a character device (``/dev/null``, a terminal), a FIFO, or an open descriptor
  (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``, through any symlinks): opened and
  written through, never replaced (a rename would put a regular file where
  ``/dev/null`` was);
- anything else (a directory, a socket, a block device, a path whose directory does not
  exist) is refused with a :class:`UsageError`. Commands ask :func:`output_target` before
  they read any input, and :func:`write_output` asks again when it writes.

An OS error met while an output is written becomes an :class:`OutputError` naming the
output, so that it is never taken for an error of the inputs or the scratch directory.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from egress_offline.errors import OutputError, UsageError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["OutputTarget", "output_target", "write_output", "write_stream"]

#: the directories whose entries are a process's open descriptors, once resolved
_DESCRIPTOR_DIR: Final = re.compile(r"/proc/(?:self|thread-self|\d+)(?:/task/\d+)?/fd|/dev/fd")
_MAX_LINKS: Final = 40  # as the kernel's own limit of symlinks in one lookup
_BUFFER: Final = 1 << 20
_BINARY: Final = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_NOCTTY: Final = getattr(os, "O_NOCTTY", 0)  # a terminal written to never becomes ours
_FIXES: Final = {
    errno.ENOSPC: "free space on its disk, or write elsewhere",
    errno.EDQUOT: "free space within your disk quota, or write elsewhere",
    errno.EROFS: "its file system is read-only; write elsewhere",
    errno.EACCES: "check its permissions, or write elsewhere",
    errno.EPERM: "check its permissions, or write elsewhere",
    errno.EIO: "the disk may be failing; write elsewhere",
    errno.EPIPE: "the program reading it stopped first",
}


@dataclass(frozen=True)
class OutputTarget:
    """Where an output path leads, as found when it was checked."""

    #: the path as the user gave it (messages name it)
    given: Path
    #: the file written: the regular file replaced or created (symlinks resolved), or
    #: the path opened and written through
    file: Path
    #: written through (a character device, a FIFO, a descriptor), not replaced
    through: bool
    #: a character device, which any number of outputs may share (``/dev/null``)
    device: bool
    #: the permission bits of the regular file replaced; None for a new file
    mode: int | None
    #: what the path leads to: (device, inode) when it exists, else the file's path
    identity: tuple[int, int] | str


def output_target(path: Path, *, option: str = "--output") -> OutputTarget:
    """Where ``path`` leads, or a :class:`UsageError` naming it when it may not be
    written: a directory, a socket, a block device, a missing or unwritable directory,
    an unwritable file, a store's URI. ``option`` (``--output``, ``--report``) words the
    fix."""
    _refuse_uri(path, option)
    if _names_a_descriptor(path):
        return _through(path, path, option)
    real = Path(os.path.realpath(path))
    try:
        found = os.stat(real)
    except (FileNotFoundError, NotADirectoryError):
        return _new_file(path, real, option)
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot be used for {option} ({exc.strerror}); check the path"
        ) from exc
    if stat.S_ISREG(found.st_mode):
        if not os.access(real, os.W_OK):
            raise UsageError(
                f"{path}: is not writable (no permission, or a read-only file system); "
                f"change its permissions, or give {option} another file"
            )
        _check_directory(path, real, option)
        return OutputTarget(path, real, through=False, device=False,
                            mode=stat.S_IMODE(found.st_mode) & 0o777,
                            identity=(found.st_dev, found.st_ino))  # fmt: skip
    if stat.S_ISCHR(found.st_mode) or stat.S_ISFIFO(found.st_mode):
        return _through(path, real, option)
    raise UsageError(_refusal(path, found.st_mode, option))


def _refuse_uri(path: Path, option: str) -> None:
    """An output named by a store's URI (``s3a://bucket/rows.csv``, which a path reads as
    ``s3a:/bucket/rows.csv``) is a usage error, unless a local directory has that name:
    the tool writes on this machine only."""
    first, _, rest = str(path).partition("/")
    if not first.endswith(":"):
        return
    from egress_offline.readers.remote import SCHEMES  # noqa: PLC0415 - rarely needed

    scheme = first[:-1].lower()
    if scheme in SCHEMES and not os.path.lexists(first):
        raise UsageError(
            f"{scheme}://{rest.lstrip('/')}: a URI; egress-offline writes its outputs on "
            f"this machine only and never touches the network: give {option} a local "
            "file, and copy it to the store afterwards"
        )


def write_output(path: Path, write: Callable[[IO[bytes]], None], *,
                 option: str = "--output") -> None:  # fmt: skip
    """Write a result to ``path`` through ``write``, which is given a binary sink: a
    regular file is replaced atomically, a device or FIFO written through (see the
    module's docstring). An OS error on the way is an :class:`OutputError` naming
    ``path``; on any failure (a full disk, Ctrl-C) no temporary file is left."""
    try:
        target = output_target(path, option=option)
    except UsageError as exc:  # it changed since the command checked it
        raise OutputError(str(exc), file=str(path)) from exc
    if target.through:
        _write_through(target, write)
    else:
        _replace(target, write)


# ------------------------------------------------------------------------ what a path is


def _names_a_descriptor(path: Path) -> bool:
    """Does ``path`` lead, through symlinks, to an entry of a descriptor directory
    (``/dev/stdout`` -> ``/proc/self/fd/1``)? Those entries are links the kernel makes
    to whatever the descriptor holds, a pipe too: they are written through, never
    resolved and replaced."""
    current = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        parent, name = os.path.split(current)
        parent = os.path.realpath(parent)
        if _DESCRIPTOR_DIR.fullmatch(parent):
            return True
        current = os.path.join(parent, name)
        if not os.path.islink(current):
            return False
        current = os.path.join(parent, os.readlink(current))
    return False


def _through(path: Path, file: Path, option: str) -> OutputTarget:
    try:
        found = os.stat(file)
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot be used for {option} ({exc.strerror}); check the path"
        ) from exc
    mode = found.st_mode
    if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISREG(mode)):
        raise UsageError(_refusal(path, mode, option))
    if not os.access(file, os.W_OK):
        raise UsageError(f"{path}: is not writable (no permission); give {option} another file")
    return OutputTarget(path, file, through=True, device=stat.S_ISCHR(mode), mode=None,
                        identity=(found.st_dev, found.st_ino))  # fmt: skip


def _new_file(path: Path, real: Path, option: str) -> OutputTarget:
    if os.path.islink(path):
        directory = real.parent
        try:
            is_directory = directory.is_dir()
        except OSError:
            is_directory = False
        if not is_directory:
            raise UsageError(
                f"{path}: is a symlink to {real}, whose directory does not exist; "
                f"fix the link, or give {option} another path"
            )
    _check_directory(path, real, option)
    return OutputTarget(path, real, through=False, device=False, mode=None,
                        identity=str(real))  # fmt: skip


def _check_directory(path: Path, real: Path, option: str) -> None:
    """The directory of the file that will be replaced or created exists and takes new
    files (the temporary file is made there). Named as given, unless a symlink leads
    elsewhere."""
    given = os.path.dirname(path) or "."
    shown = given if os.path.realpath(given) == str(real.parent) else str(real.parent)
    try:
        found = os.stat(real.parent)
    except OSError:
        raise UsageError(
            f"{path}: the directory {shown} does not exist; create it, or fix the path "
            f"given to {option}"
        ) from None
    if not stat.S_ISDIR(found.st_mode):
        raise UsageError(f"{path}: {shown} is not a directory; fix the path given to {option}")
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise UsageError(
            f"{path}: cannot create files in {shown} (no permission, or a read-only file "
            f"system); give {option} a directory you can write to"
        )


def _refusal(path: Path, mode: int, option: str) -> str:
    if stat.S_ISDIR(mode):
        return f"{path}: is a directory; give {option} the path of a file"
    kind = (
        "a socket" if stat.S_ISSOCK(mode)
        else "a block device" if stat.S_ISBLK(mode)
        else "not a regular file"
    )  # fmt: skip
    return (
        f"{path}: is {kind}; give {option} a regular file, a FIFO or a character device "
        "such as /dev/null"
    )


# ------------------------------------------------------------------------------ writing


class _Sink(io.RawIOBase):
    """A descriptor (or an open stream) as a raw binary stream that writes all it is
    given and keeps the first OS error: Polars reports a failed write as its own error
    (Parquet) or as an ``OSError`` without ``errno``, and the message needs the cause.
    It has no ``fileno``, so that Polars writes through it rather than around it."""

    def __init__(self, fd: int, stream: IO[bytes] | None = None) -> None:
        super().__init__()
        self._fd = fd
        self._stream = stream
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        if self.closed:
            return False
        return self._stream.isatty() if self._stream is not None else os.isatty(self._fd)

    def write(self, data: ReadableBuffer, /) -> int:
        if self.closed:  # never write a stale buffer to a descriptor number reused since
            raise ValueError("write to a closed output")
        view = memoryview(data).cast("B")
        total = len(view)
        try:
            if self._stream is not None:
                self._stream.write(view)
            else:
                while view:
                    view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.error = self.error or exc
            raise
        return total


def write_stream(stream: IO[bytes], write: Callable[[IO[bytes]], None], *,
                 name: str = "standard output") -> None:  # fmt: skip
    """Write a result to an open binary ``stream`` (standard output) through ``write``;
    an OS error on the way is an :class:`OutputError` naming ``name``, but for a closed
    pipe (``| head``), which stays a ``BrokenPipeError``."""
    sink = _Sink(-1, stream)
    try:
        buffered = io.BufferedWriter(sink, _BUFFER)
        write(buffered)
        buffered.flush()
        stream.flush()
    except BaseException as exc:
        cause = sink.error or (exc if isinstance(exc, OSError) else None)
        if cause is None:
            raise
        if isinstance(cause, BrokenPipeError):
            raise cause from None
        reason = cause.strerror or str(cause)
        fix = _FIXES.get(cause.errno or 0, "check where it goes")
        raise OutputError(f"{name}: cannot be written ({reason}); {fix}") from exc
    finally:
        sink.close()


def _replace(target: OutputTarget, write: Callable[[IO[bytes]], None]) -> None:
    directory = target.file.parent
    named: list[Path] = []  # the temporary file's name, from before it is created
    sink: _Sink | None = None
    try:
        fd, temporary = _create_beside(target, named)
        sink = _Sink(fd)
        try:
            buffered = io.BufferedWriter(sink, _BUFFER)
            write(buffered)
            buffered.flush()
            os.fsync(fd)
        finally:
            sink.close()
            os.close(fd)
        _check_still_a_file(target)
        os.replace(temporary, target.file)
    except BaseException as exc:
        # a signal (Ctrl-C, SIGTERM) raises wherever the main thread is, also between
        # the file's creation and its name's return
        for name in named:
            with contextlib.suppress(OSError):
                name.unlink(missing_ok=True)
        if isinstance(exc, OutputError):
            raise
        cause = (sink.error if sink is not None else None) or (
            exc if isinstance(exc, OSError) else None
        )
        if cause is None:
            raise
        left = "the file is unchanged" if target.mode is not None else "no file was left"
        raise OutputError(_cannot_write(target, cause, left), file=str(target.given)) from exc
    with contextlib.suppress(OSError):  # the rename itself, on disk; best effort
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)


def _create_beside(target: OutputTarget, named: list[Path]) -> tuple[int, Path]:
    """A new temporary file beside the target: with the replaced file's permission bits
    (set before anything is written), or the umask's for a new file, as any program
    that creates a file gives it. Its name is in ``named`` before it is created, so that
    a signal taken as it is made cannot leave it behind."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC | _BINARY
    try:
        for _ in range(100):
            temporary = target.file.parent / f".{target.file.name[:64]}.{secrets.token_hex(6)}.tmp"
            named[:] = [temporary]
            try:
                fd = os.open(temporary, flags, 0o666 if target.mode is None else 0o600)
            except FileExistsError:
                named.clear()  # another's: never removed
                continue
            if target.mode is not None and hasattr(os, "fchmod"):
                with contextlib.suppress(OSError):  # a file system without modes
                    os.fchmod(fd, target.mode)
            return fd, temporary
        raise FileExistsError(errno.EEXIST, "no free temporary name")
    except OSError as exc:
        raise OutputError(
            _cannot_write(target, exc, "nothing was written"), file=str(target.given)
        ) from exc


def _check_still_a_file(target: OutputTarget) -> None:
    """Just before the rename: what is there now is still a regular file, or nothing."""
    try:
        mode = os.lstat(target.file).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise OutputError(
            f"{target.given}: is no longer a regular file; nothing was written, give another path",
            file=str(target.given),
        )


def _write_through(target: OutputTarget, write: Callable[[IO[bytes]], None]) -> None:
    # O_APPEND: /dev/stdout redirected with >> to a file is added to, not truncated.
    flags = os.O_WRONLY | os.O_APPEND | _NOCTTY | _CLOEXEC | _BINARY
    try:
        fd = os.open(target.file, flags)
    except OSError as exc:
        raise OutputError(
            _cannot_write(target, exc, "nothing was written"), file=str(target.given)
        ) from exc
    sink = _Sink(fd)
    try:
        buffered = io.BufferedWriter(sink, _BUFFER)
        write(buffered)
        buffered.flush()
    except BaseException as exc:
        cause = sink.error or (exc if isinstance(exc, OSError) else None)
        if cause is None:
            raise
        raise OutputError(
            _cannot_write(target, cause, "what was written may be incomplete"),
            file=str(target.given),
        ) from exc
    finally:
        sink.close()
        os.close(fd)


def _cannot_write(target: OutputTarget, cause: OSError, left: str) -> str:
    reason = cause.strerror or str(cause)
    fix = _FIXES.get(cause.errno or 0, "check the path and its disk")
    return f"{target.given}: cannot be written ({reason}); {fix}; {left}"
