"""Checks on the paths a command is given, before anything is read or written."""

from __future__ import annotations

import glob
from pathlib import Path

from egress_offline.errors import UsageError
from egress_offline.readers import FileReport

__all__ = ["check_not_an_input", "check_outside_inputs", "names_input"]


def names_input(argument: str) -> bool:
    """Does ``argument`` name an input: an existing path, or a glob that matches one."""
    if Path(argument).exists():
        return True
    return bool(set("*?[") & set(argument)) and bool(glob.glob(argument, recursive=True))


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
