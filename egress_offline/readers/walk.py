"""Walking: the files under a directory, or that a glob matches, each entry accounted for.

Nothing met on the way is passed over in silence. An entry that cannot be read (a
directory that cannot be listed, an entry whose status cannot be read) is an error naming
it, as a named file that cannot be read is. What is met and not read is listed, with the
reason: a symlink to nothing (dangling) or one that leads back to itself (a loop), a
symlink to a directory (not followed, so that no loop can make a walk run forever and no
link lead it out of the evidence; name the directory to read it), and what is not a
regular file (a FIFO would make opening it wait forever).

A walk goes depth first in name order (a directory's files, then its subdirectories),
with a stack of its own: a tree deeper than Python's recursion limit is walked too.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Final, Literal

from egress_offline.errors import InputError

__all__ = ["GLOB_CHARS", "Kind", "glob_matches", "kind_of_named", "walk"]

GLOB_CHARS: Final = frozenset("*?[")
#: What a walk or a glob reads an entry as: a file, or a directory to walk.
Kind = Literal["file", "directory"]
#: Errors that say there is nothing at a path (a missing name, or a file taken for a
#: directory), as opposed to something there that cannot be read.
_ABSENT: Final = frozenset({errno.ENOENT, errno.ENOTDIR})
_HINTS: Final = {
    errno.EACCES: "check its permissions",
    errno.EPERM: "check its permissions",
    errno.ENAMETOOLONG: "its path is longer than the system allows; name a directory nearer it",
}
_SPECIAL: Final = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def unreadable(name: str, exc: OSError) -> InputError:
    """The error for an entry that is there but cannot be read."""
    hint = _HINTS.get(exc.errno or 0, "check the disk or file system it is on")
    return InputError(f"{name}: cannot be read ({exc.strerror or exc}); {hint}", file=name)


def kind_of_named(raw: str) -> Kind | None:
    """What a path the user named is: a file (or a symlink to one), a directory (or a
    symlink to one), or None when nothing is there (it may be a glob). Raises
    :class:`InputError` for what is there and cannot be read: a dangling symlink, a
    symlink loop, a FIFO, device or socket, an entry without permission."""
    path = Path(raw)
    try:
        status = os.lstat(path)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise unreadable(raw, exc) from exc
    if stat.S_ISLNK(status.st_mode):
        target = _target(path, raw)
        if isinstance(target, str):
            raise InputError(f"{raw}: {target}; name the file itself", file=raw)
        status = target
    if stat.S_ISREG(status.st_mode):
        return "file"
    if stat.S_ISDIR(status.st_mode):
        return "directory"
    raise InputError(f"{raw}: not a regular file or directory; name a file", file=raw)


def walk(root: Path, skipped: list[str]) -> Iterator[Path]:
    """The regular files under the directory ``root`` (and symlinks to one), depth first
    in name order. What is not read goes to ``skipped`` with the reason; an entry that
    cannot be read raises :class:`InputError` naming it."""
    pending = [root]
    while pending:
        directory = pending.pop()
        subdirectories = []
        for path in _listing(directory):
            kind = _kind_found(path, skipped, follow=False)
            if kind == "file":
                yield path
            elif kind == "directory":
                subdirectories.append(path)
        pending.extend(reversed(subdirectories))


def glob_matches(pattern: str, skipped: list[str]) -> list[Path]:
    """What ``glob.glob(pattern, recursive=True)`` matches, in name order, read as if
    named: a match that is a directory, or a symlink to one, is walked. Unlike
    ``glob``, which passes over what it cannot list and follows every symlink (three
    links to their own directory made ``**`` search for ever): a directory the pattern
    must list and cannot is an error naming it; ``**`` does not go down symlinks to
    directories, and lists them in ``skipped`` unless they match; a match that is a
    dangling symlink, a loop or not a regular file is listed there too."""
    parts = PurePath(pattern).parts
    literal = next((i for i, part in enumerate(parts) if GLOB_CHARS & set(part)), len(parts))
    passed: dict[Path, str] = {}
    found = sorted(set(_expand(Path(*parts[:literal]), parts[literal:], passed)), key=str)
    matches = []
    for path in found:
        kind = _kind_found(path, skipped, follow=True)
        if kind is not None:
            matches.append(path)
    skipped.extend(f"{path}: {reason}" for path, reason in passed.items() if path not in found)
    return matches


def _expand(base: Path, parts: tuple[str, ...], passed: dict[Path, str]) -> Iterator[Path]:
    """The paths under ``base`` that the pattern's remaining ``parts`` may match (those
    that do not exist are dropped by the caller). Names starting with ``.`` match only a
    part that starts with one, and ``**`` passes over them, as ``glob`` does."""
    if not parts:
        if _exists(base):
            yield base
        return
    head, rest = parts[0], parts[1:]
    if head == "**":
        if not rest:  # the directory itself: walking it reads all that is below
            yield from _expand(base, rest, passed)
            return
        for directory in _directories(base, passed):
            yield from _expand(directory, rest, passed)
    elif GLOB_CHARS & set(head):
        hidden = head.startswith(".")
        for path in _listing(base, missing_ok=True):
            name = path.name
            if (hidden or not name.startswith(".")) and fnmatch.fnmatchcase(name, head):
                yield from _expand(path, rest, passed)
    else:
        yield from _expand(base / head, rest, passed)


def _directories(base: Path, passed: dict[Path, str]) -> Iterator[Path]:
    """``base`` and every directory below it whose name does not start with ``.``, for
    ``**``; symlinks to directories are not gone down, but noted in ``passed``."""
    if not _is_directory(base):
        return
    pending = [base]
    while pending:
        directory = pending.pop()
        yield directory
        below = []
        for path in _listing(directory):
            if path.name.startswith("."):
                continue
            try:
                status = os.lstat(path)
            except OSError as exc:
                raise unreadable(str(path), exc) from exc
            if stat.S_ISDIR(status.st_mode):
                below.append(path)
            elif stat.S_ISLNK(status.st_mode):
                target = _target(path, str(path))
                if not isinstance(target, str) and stat.S_ISDIR(target.st_mode):
                    passed[path] = _directory_link(path)
        pending.extend(reversed(below))


def _listing(directory: Path, *, missing_ok: bool = False) -> list[Path]:
    """The entries of ``directory`` in name order. One that cannot be listed is an
    error; with ``missing_ok``, one that is not there or not a directory holds nothing
    (a glob's part may name any path)."""
    try:
        with os.scandir(directory) as entries:
            names = sorted(entry.name for entry in entries)
    except OSError as exc:
        if missing_ok and exc.errno in (*_ABSENT, errno.ELOOP):
            return []  # a loop here is listed where the pattern matches it, if it does
        raise unreadable(str(directory), exc) from exc
    return [directory / name for name in names]


def _kind_found(path: Path, skipped: list[str], *, follow: bool) -> Kind | None:
    """What an entry met in a walk, or matched by a glob (``follow``: a symlink to a
    directory is then walked), is read as; None, with the reason in ``skipped``, when it
    is not read."""
    try:
        status = os.lstat(path)
    except OSError as exc:
        raise unreadable(str(path), exc) from exc
    if stat.S_ISLNK(status.st_mode):
        target = _target(path, str(path))
        if isinstance(target, str):
            skipped.append(f"{path}: {target} (skipped)")
            return None
        if stat.S_ISDIR(target.st_mode) and not follow:
            skipped.append(f"{path}: {_directory_link(path)}")
            return None
        status = target
    if stat.S_ISREG(status.st_mode):
        return "file"
    if stat.S_ISDIR(status.st_mode):
        return "directory"
    kind = next((name for test, name in _SPECIAL if test(status.st_mode)), "special")
    skipped.append(f"{path}: not a regular file but {kind} (skipped)")
    return None


def _target(link: Path, name: str) -> os.stat_result | str:
    """The status of what the symlink ``link`` leads to, or why it leads nowhere."""
    try:
        return os.stat(link)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return f"a dangling symlink (to {_link_text(link)}: no such file or directory)"
        if exc.errno == errno.ELOOP:
            return "a symlink loop (following it never reaches a file)"
        raise unreadable(name, exc) from exc


def _directory_link(link: Path) -> str:
    """Why a symlink to a directory is not followed."""
    here = Path(os.path.realpath(link.parent))
    if here.is_relative_to(os.path.realpath(link)):
        return "a symlink loop (to a directory that holds it), not followed (skipped)"
    return "a symlink to a directory, not followed; name the directory to read it (skipped)"


def _link_text(link: Path) -> str:
    try:
        return os.readlink(link)
    except OSError:
        return "?"


def _exists(path: Path) -> bool:
    try:
        os.lstat(path)
    except OSError as exc:
        if exc.errno in (*_ABSENT, errno.ELOOP):  # a path through a loop holds nothing
            return False
        raise unreadable(str(path), exc) from exc
    return True


def _is_directory(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as exc:
        if exc.errno in (*_ABSENT, errno.ELOOP):
            return False
        raise unreadable(str(path), exc) from exc
