"""``pivot ENTITY_ID... PATH...``: which argument is an id, which a path.

An argument that names an existing file, directory or glob match (or ``-``) is a path.
Any other is an id, unless it has the shape of a path, which no entity id has: then it is
a mistyped path, a usage error (exit 2), not an id that "was not found". Entity ids are
base64 (Elastic Endpoint: ``MTE3MDMx...NQ==``, the base64 of ``<agent id>-<pid>-<time>``),
base64url, hex or a GUID (Sysmon's ``{42FC7E13-...}``): none of them holds ``\\``,
``*``, ``?``, ``[``, a dot, ``~`` or a drive letter; standard base64 may hold ``/``, but
then only base64's own characters, never first or last, and a length base64 can have.

What stays ambiguous is a long string of base64's alphabet with a ``/`` inside
(``cases/acme/export2024``): it is taken for an id (refusing a real id would leave no way
to pivot on it), unless what comes before its first ``/`` exists (``cases``), which
makes it a path. Such an id, not found, is said so, with exit 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

from egress_offline.errors import UsageError

__all__ = ["EXPORT_EXTENSIONS", "looks_like_path", "split_arguments"]

#: The endings of the files an export comes in: an argument ending so is a file's name.
EXPORT_EXTENSIONS: Final = (
    ".ndjson", ".jsonl", ".json", ".gz", ".zst", ".zstd", ".parquet", ".csv", ".log", ".txt",
)  # fmt: skip
_GLOB: Final = frozenset("*?[")
#: ``/``, ``~``, ``./`` or ``../`` first, or a drive letter: where a path starts
_PATH_START: Final = re.compile(r"(/|~|\.\.?/|[A-Za-z]:/)")
#: standard base64: its alphabet, then at most two ``=`` of padding
_BASE64: Final = re.compile(r"[A-Za-z0-9+/]+={0,2}")
#: a base64 string this short, unpadded, with a ``/``, is taken for a path (``dump/day1``)
_SHORTEST_BASE64_ID: Final = 20


def looks_like_path(argument: str) -> bool:
    """Is ``argument`` shaped as a path, as no entity id is: it holds ``\\`` or a glob
    character (``*`` ``?`` ``[``); ends with an export's extension (``.ndjson``,
    ``.json.gz``...) or ``/``; starts with ``/``, ``~``, ``./``, ``../`` or a drive
    letter (``C:/``); or holds a ``/`` without being base64 that is padded (``=``) or at
    least 20 characters long, of a length base64 can have (not 4n + 1): ``dump/day1``,
    ``exports/2024-05-01``, ``cases/acme/export2024``."""
    if "\\" in argument or _GLOB & set(argument):
        return True
    if argument.lower().endswith(EXPORT_EXTENSIONS) or argument.endswith("/"):
        return True
    if _PATH_START.match(argument):
        return True
    if "/" not in argument:
        return False
    if _BASE64.fullmatch(argument) is None:
        return True
    if argument.endswith("="):  # padded: an id
        return False
    return len(argument) < _SHORTEST_BASE64_ID or len(argument) % 4 == 1


def split_arguments(arguments: Sequence[str], exists: Callable[[str], bool]) -> tuple[
    list[str], list[str]
]:  # fmt: skip
    """``pivot ENTITY_ID... PATH...``: an argument naming an existing file, directory or
    glob match (``exists``), or ``-``, is a path; one that :func:`looks_like_path`, or
    that holds a ``/`` after something that exists (``cases/acme/export2024`` where
    ``cases`` does), but names nothing is a mistyped path: a :class:`UsageError`, as
    pivot's other misplaced arguments are; any other is an entity id. Ids keep their
    order, repeats once."""
    ids: list[str] = []
    paths: list[str] = []
    for argument in arguments:
        if argument == "-" or exists(argument):
            paths.append(argument)
        elif looks_like_path(argument) or _under_something(argument, exists):
            raise UsageError(_missing(argument), file=argument)
        elif argument not in ids:
            ids.append(argument)
    if not ids:
        raise UsageError(
            "pivot: no entity id given (every argument names a file); "
            "give process.entity_id values before the export paths"
        )
    if not paths:
        raise UsageError(
            "pivot: no export given (no argument names an existing file, directory or glob "
            f"match; read as entity ids: {', '.join(ids[:3])}); check the paths"
        )
    return ids, paths


def _under_something(argument: str, exists: Callable[[str], bool]) -> bool:
    """Does ``argument`` hold a ``/`` after a name that exists (a directory, likely)?"""
    first, slash, _ = argument.partition("/")
    return bool(slash and first and exists(first))


def _missing(argument: str) -> str:
    from egress_offline.readers.remote import uri_scheme  # noqa: PLC0415 - an error's path

    if uri_scheme(argument) is not None:
        return (
            f"{argument}: a URI; pivot reads files on this machine only and never touches "
            "the network: copy the objects here and name the copies"
        )
    if _GLOB & set(argument):
        return (
            f"{argument}: the pattern matches no file; check the pattern "
            "(an entity id never holds *, ? or [)"
        )
    return (
        f"{argument}: no such file or directory; check the path "
        "(an entity id never looks like a path)"
    )
