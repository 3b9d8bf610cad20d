"""The exceptions egress-offline raises for anything a user can cause.

    EgressError            base; carries the exit code the CLI uses
    ├── UsageError         a bad option value (exit 2)
    └── InputError         an input that cannot be read at all (exit 1)
        └── DataError      a malformed record under --strict (exit 1)

Every message says what went wrong, where (file and line when known) and how to fix it.
Anything else that escapes the library is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["DataError", "EgressError", "InputError", "UsageError"]


class EgressError(Exception):
    """Base of the tree; ``exit_code`` is what the command exits with."""

    exit_code = 1


class UsageError(EgressError):
    """An option or argument value the tool cannot use."""

    exit_code = 2


class InputError(EgressError):
    """An input that cannot be read at all: missing, unsupported, corrupt."""

    exit_code = 1


class DataError(InputError):
    """A malformed record met while ``--strict`` is on."""
