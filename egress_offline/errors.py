"""The exceptions egress-offline raises for anything a user can cause.

    EgressError            base; carries the exit code the CLI uses
    ├── UsageError         a bad option value, or an output path refused (exit 2)
    ├── InputError         an input that cannot be read at all (exit 1)
    │   └── DataError      a malformed record under --strict (exit 1)
    ├── OutputError        an output that could not be written: a full disk (exit 1)
    ├── ScratchError       the scratch space is full or over --scratch-limit (exit 1)
    └── EngineError        --engine spark cannot run: no PySpark, no Java, a failed
                           Spark job (exit 3)

Every message says what went wrong, where (file and line when known) and how to fix it;
``file`` and ``position`` carry the place as data too, for a caller that wants it. An
error from Polars, pyarrow or the OS met while reading becomes one of these at one
boundary (``egress_offline.readers.session``), with the original kept as its cause; one
met while an output is written becomes an ``OutputError`` naming it
(``egress_offline.outputs``), so that it is never confused with the scratch directory's.
Anything else that escapes the library is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "EgressError",
    "EngineError",
    "InputError",
    "OutputError",
    "ScratchError",
    "UsageError",
    "first_line",
]


class EgressError(Exception):
    """Base of the tree; ``exit_code`` is what the command exits with."""

    exit_code = 1

    def __init__(self, message: str, *, file: str | None = None, position: int | None = None):
        super().__init__(message)
        #: the input the error is about, as the user named it, when there is one
        self.file = file
        #: its line, record or row, when known
        self.position = position


class UsageError(EgressError):
    """An option or argument value the tool cannot use."""

    exit_code = 2


class InputError(EgressError):
    """An input that cannot be read at all: missing, unsupported, corrupt."""

    exit_code = 1


class DataError(InputError):
    """A malformed record met while ``--strict`` is on."""


class OutputError(EgressError):
    """An output file (``-o``, ``--report``) that could not be written: a full disk, an
    I/O error. ``file`` is the output's path as the user gave it."""

    exit_code = 1


class ScratchError(EgressError):
    """The run needs more scratch space than its budget, or the scratch disk is full."""

    exit_code = 1


class EngineError(EgressError):
    """The engine asked for cannot run: ``--engine spark`` without PySpark or Java, a
    Spark session that cannot start, a Spark job that failed for a reason that is not the
    input's. The message says how to install or configure what is missing."""

    exit_code = 3


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (at most ``limit`` characters), or its
    type's name: the cause, shown inside one of this tree's messages."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if limit is None else line[:limit]
