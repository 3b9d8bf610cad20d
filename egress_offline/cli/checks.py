"""Checks on the paths a command is given, before anything is read or written."""

from __future__ import annotations

from pathlib import Path

from egress_offline.errors import InputError, UsageError
from egress_offline.readers import FileReport
from egress_offline.readers.walk import GLOB_CHARS, glob_matches

__all__ = ["check_not_an_input", "check_outside_inputs", "names_input"]


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


def check_outside_inputs(target: Path | None, paths: list[str]) -> None:
    """Before reading: an output file is never an input, nor inside an input directory
    (the evidence is never written to)."""
    if target is None:
        return
    resolved = target.resolve()
    for raw in paths:
        given = Path(raw)
        if raw == "-" or not given.exists():
            continue
        place = given.resolve()
        if place == resolved:
            raise UsageError(
                f"{target}: is one of the inputs; write the result to another file "
                "(evidence is never modified)"
            )
        if given.is_dir() and resolved.is_relative_to(place):
            raise UsageError(
                f"{target}: is inside the input directory {raw}; write the result outside "
                "it (input directories are never written to)"
            )


def check_not_an_input(target: Path | None, files: list[FileReport]) -> None:
    if target is None:
        return
    resolved = target.resolve()
    for file in files:
        if file.name != "<stdin>" and Path(file.name).resolve() == resolved:
            raise UsageError(
                f"{target}: is one of the inputs; write the result to another file "
                "(evidence is never modified)"
            )
