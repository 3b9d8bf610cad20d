"""A command stopped before its end (SIGTERM, SIGHUP, Ctrl-C), and what it says then: the
outputs it had written whole, if any (a write stopped midway leaves what it replaces as
it was).

One command runs in a process, and signals are taken in its main thread only, so the
record is the process's, begun again by each command (:func:`begin`: the tests run
several in one process).
"""

from __future__ import annotations

import signal
from pathlib import Path

__all__ = ["Terminated", "begin", "on_signal", "stopped", "written_before", "wrote"]


class Terminated(BaseException):
    """SIGTERM or SIGHUP: raised in the main thread, so that every ``with`` block (the
    scratch directory, a temporary output) is left as on Ctrl-C."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal_number)
        self.signal = signal_number
        self.name = signal.Signals(signal_number).name


#: The signal a command was stopped by, once: a second one while the first is answered
#: (the scratch directory removed, the exit path) is ignored, where it raised again, out
#: of the first's handling, as a traceback and exit 1.
_STOPPED: list[int] = []
#: The outputs the command has written whole so far (``--output out.csv``).
_WRITTEN: list[str] = []


def begin() -> None:
    """A command begins: nothing written, no signal taken."""
    _STOPPED.clear()
    _WRITTEN.clear()


def on_signal(signal_number: int, _frame: object) -> None:
    """The handler of SIGTERM and SIGHUP: :class:`Terminated`, the first time."""
    if _STOPPED:
        return
    _STOPPED.append(signal_number)
    raise Terminated(signal_number)


def wrote(option: str, path: Path | None) -> None:
    """``option``'s output (``path``; None: standard output) has been written whole."""
    if path is not None:
        _WRITTEN.append(f"{option} {path}")


def stopped(why: str) -> str:
    """The message of a command stopped by ``why``: which outputs it had written whole."""
    if not _WRITTEN:
        return f"{why}; no output file was written"
    return (
        f"{why} after {', '.join(_WRITTEN)} had been written; no other output file was "
        "written (each left as it was)"
    )


def written_before(message: str) -> str:
    """An output's failure (a full disk), with the outputs written whole before it."""
    if not _WRITTEN:
        return message
    return f"{message} ({', '.join(_WRITTEN)} had been written before it)"
