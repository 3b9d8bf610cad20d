"""The one boundary where errors met while a file is read become an
:class:`~egress_offline.errors.InputError` naming the file (:func:`translated`), and the
way an error that is not the file's passes it untouched (:func:`not_the_file`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl

from egress_offline.errors import EgressError, InputError, first_line
from egress_offline.readers.model import InputFile

__all__ = ["ColumnNotText", "not_the_file", "translated"]


class ColumnNotText(ValueError):
    """A column read holds values that are not text and cannot be made text (bytes that
    are not UTF-8, JSON, UUIDs): the file is refused, naming the column, and how to
    write it instead (not damage: the copy is as it was written)."""


class _NotTheFile(Exception):
    """An error met while a file is read that is not the file's (a scratch write's, the
    caller's), carried through :func:`translated` as it is."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@contextmanager
def not_the_file() -> Iterator[None]:
    """Errors raised here pass :func:`translated` untouched."""
    try:
        yield
    except EgressError:
        raise
    except Exception as exc:
        raise _NotTheFile(exc) from exc


@contextmanager
def translated(file: InputFile) -> Iterator[None]:
    """The one boundary where errors of Polars, pyarrow and the OS met while ``file`` is
    read become an :class:`InputError` naming it; the original is kept as the cause.
    (An error that is not the file's, :func:`not_the_file`, leaves as it came.)"""
    try:
        yield
    except _NotTheFile as carried:
        raise carried.error from carried.error.__cause__
    except EgressError:
        raise
    except OSError as exc:
        if exc.errno is None and file.format == "parquet":  # pyarrow's, on its data
            raise InputError(
                f"{file.name}: Parquet data cannot be read ({first_line(exc)}); "
                "the copy may be damaged, export it again",
                file=file.name,
            ) from exc
        reason = exc.strerror or first_line(exc)
        raise InputError(
            f"{file.name}: cannot be read ({reason}); check the file and its permissions",
            file=file.name,
        ) from exc
    except ColumnNotText as exc:
        raise InputError(f"{file.name}: {exc}", file=file.name) from exc
    except MemoryError as exc:
        raise InputError(
            f"{file.name}: reading it needs more memory than there is; split the file "
            "or free memory",
            file=file.name,
        ) from exc
    except Exception as exc:
        if not _bad_data(exc):
            raise
        what = "Parquet data" if file.format == "parquet" else "the data"
        raise InputError(
            f"{file.name}: {what} cannot be read ({first_line(exc)}); "
            "the copy may be damaged, export it again",
            file=file.name,
        ) from exc
    except pl.exceptions.PanicException as exc:  # a BaseException: Polars failed inside
        raise InputError(
            f"{file.name}: Polars failed while reading it ({first_line(exc)}); the file "
            "may be damaged or hostile: export it again, and report this if it persists",
            file=file.name,
        ) from exc


def _bad_data(error: Exception) -> bool:
    """Did Polars or pyarrow fail on the data: a ``PolarsError``, a ``ValueError``, or any
    of pyarrow's errors (``pyarrow.lib.ArrowException``: some, such as
    ``ArrowNotImplementedError``, are not ``ValueError``s; asked without importing
    pyarrow, which a run without Parquet never loads)?"""
    if isinstance(error, (pl.exceptions.PolarsError, ValueError)):
        return True
    return any(
        kind.__name__ == "ArrowException" and kind.__module__ == "pyarrow.lib"
        for kind in type(error).__mro__
    )
