"""Checks on the paths a command is given, before anything is read or written."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from egress_offline.errors import InputError, UsageError
from egress_offline.outputs import OutputTarget, output_target
from egress_offline.readers import FileReport
from egress_offline.readers.walk import GLOB_CHARS, glob_matches

__all__ = ["check_not_an_input", "check_outputs", "check_outside_inputs", "names_input"]


def names_input(argument: str) -> bool:
    """Does ``argument`` name an input: an existing path, or a glob that matches one."""
    if Path(argument).exists():
        return True
    if not GLOB_CHARS & set(argument):
        return False
    skipped: list[str] = []
    try:  # bounded, where glob.glob searched for ever through links to their own directory
        return bool(glob_matches(argument, skipped) or skipped)
    except InputError:
        return True  # reading it says what cannot be read


def check_outputs(outputs: dict[str, Path | None], paths: list[str],
                  read: Sequence[Path] = ()) -> dict[str, OutputTarget]:  # fmt: skip
    """Before reading: every output (by its option: ``--output``, ``--report``, ``--html``) is
    outside the inputs and the other files the run reads (``read``: a CIDR file), may be
    written (:func:`~egress_offline.outputs.output_target`: not a directory, its
    directory exists...), and no two are the same file, however spelled (a character
    device such as ``/dev/null`` may take several). Returns where each leads, by option."""
    checked: list[tuple[str, OutputTarget]] = []
    if "--output" in outputs and outputs["--output"] is None and _stdout_is_a_file():
        # the rows go to standard output, which the shell opened on a file (`> out.csv`,
        # `>> evidence.ndjson`): the same checks, by the file it is
        check_outside_inputs(Path(_STDOUT), paths, read, shown="standard output")
    for option, path in outputs.items():
        if path is None:
            continue
        check_outside_inputs(path, paths, read)
        target = output_target(path, option=option)
        for other_option, other in checked:
            if target.identity == other.identity and not target.device:
                raise UsageError(
                    f"{path}: is the same file as {other_option} {other.given}; "
                    f"give {option} another file"
                )
        checked.append((option, target))
    return dict(checked)


def check_outside_inputs(target: Path | None, paths: list[str], read: Sequence[Path] = (),
                         *, shown: str | None = None) -> None:  # fmt: skip
    """Before reading: an output file is never an input, nor inside an input directory
    (the evidence is never written to), nor another file the run reads (``read``: a
    CIDR file); a glob counts as what it matches, ``-`` as the file standard input
    reads, if it is one. A file is known by its device and inode, not its name: a hard
    link, a bind mount or ``/dev/stdout`` appending to it is the same file. ``shown``
    names the output in messages (default: its path)."""
    if target is None:
        return
    name = shown or str(target)
    resolved = _real(target)
    written = _identity(target)  # the file written, through any link or descriptor

    def same(place: Path) -> bool:
        return _same_file(place, resolved, written)

    if "-" in paths and written is not None and written == _stdin_identity():
        raise _an_input(name)
    for given in read:
        if same(given):
            raise UsageError(
                f"{name}: is the file of CIDR ranges the run reads ({given}); write the "
                "result to another file"
            )
    above = _directories_above(resolved)
    for raw, given in _input_places(paths):
        if same(given):
            raise _an_input(name)
        if given.is_dir() and (resolved.is_relative_to(_real(given)) or _identity(given) in above):
            raise UsageError(
                f"{name}: is inside the input directory {raw}; write the result outside "
                "it (input directories are never written to)"
            )


def _same_file(place: Path, resolved: Path, written: tuple[int, int] | None) -> bool:
    """Is ``place`` the output whose path resolves to ``resolved`` and whose identity is
    ``written``: by its path, or by its device and inode?"""
    return _real(place) == resolved or (written is not None and written == _identity(place))


def _an_input(name: str | Path) -> UsageError:
    return UsageError(
        f"{name}: is one of the inputs; write the result to another file (evidence is "
        "never modified)"
    )


#: Where standard output leads, as a path (Linux: a link to the descriptor's file).
_STDOUT = "/dev/stdout"


def _stdout_is_a_file() -> bool:
    """Does standard output write to a regular file (a shell's ``>``, ``>>``)?"""
    try:
        found = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISREG(found.st_mode) and os.path.exists(_STDOUT)


def _identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the regular file or directory ``path`` leads to; None for
    anything else (a device such as ``/dev/null``, which any run may share) or nothing."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    if not (stat.S_ISREG(found.st_mode) or stat.S_ISDIR(found.st_mode)):
        return None
    return found.st_dev, found.st_ino


def _stdin_identity() -> tuple[int, int] | None:
    """The (device, inode) of the file standard input reads, if it reads one."""
    try:
        found = os.fstat(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return (found.st_dev, found.st_ino) if stat.S_ISREG(found.st_mode) else None


def _directories_above(resolved: Path) -> set[tuple[int, int]]:
    """The identities of the directories holding ``resolved``, up to the root."""
    found = set()
    for directory in resolved.parents:
        identity = _identity(directory)
        if identity is not None:
            found.add(identity)
    return found


def _input_places(paths: list[str]) -> Iterator[tuple[str, Path]]:
    """The existing files and directories ``paths`` name, a glob as its matches (as the
    readers take them: a path that exists is itself, even with ``*`` in its name)."""
    for raw in paths:
        given = Path(raw)
        if raw == "-":
            continue
        if given.exists():
            yield raw, given
        elif GLOB_CHARS & set(raw):
            try:
                matches = glob_matches(raw, [])
            except InputError:
                continue  # reading it says what cannot be read
            for match in matches:
                yield str(match), match


def check_not_an_input(target: Path | None, files: list[FileReport]) -> None:
    """After reading: an output is none of the files read (by name or by identity)."""
    if target is None:
        return
    resolved = _real(target)
    written = _identity(target)
    for file in files:
        if file.name == "<stdin>":
            continue
        if _same_file(Path(file.name), resolved, written):
            raise _an_input(target)


def _real(path: Path) -> Path:
    """``path`` with its symlinks resolved; unlike ``Path.resolve`` (before Python 3.13),
    a symlink loop is no error here: the output check names it."""
    return Path(os.path.realpath(path))
