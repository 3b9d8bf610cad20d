"""The progress display on standard error: bytes read of each file, once a run has
taken two seconds, on a terminal only."""

from __future__ import annotations

import time
from typing import Any

from egress_offline.writers import inert

__all__ = ["ProgressDisplay", "shortened"]


class ProgressDisplay:
    """Bytes read of each file, on standard error, once a run has taken two seconds. One
    line whatever the terminal's width: the bar, the bytes and the time keep their room,
    and a long file name gives up its start (the name's end tells files apart)."""

    _DELAY = 2.0
    _OTHERS = 26  # "12.3/45.6 GB", "0:00:01" and the gaps between the columns

    def __init__(self, *, enabled: bool, console: Any = None) -> None:
        self._enabled = enabled
        self._console = console  # standard error, unless given (tests)
        self._started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        self._file: int | None = None  # the number of the file shown; 0 is the sampling
        self._width = 20  # the bar's

    def __call__(self, name: str, number: int, files: int, fraction: float, size: int) -> None:
        if not self._enabled or time.monotonic() - self._started < self._DELAY:
            return
        if self._bar is None:
            self._bar = self._start()
        if number != self._file:
            if self._task is not None:
                self._bar.remove_task(self._task)
            counter = "" if number == 0 else f"[{number}/{files}] "
            room = max(12, self._bar.console.width - self._width - self._OTHERS - len(counter))
            # a file's name gives up its start; the sampling's own label, its end
            label = shortened(inert(name), room) if number else name[:room]
            self._task = self._bar.add_task(counter + label, total=size)
            self._file = number
        self._bar.update(self._task, completed=int(fraction * size))

    def _start(self) -> Any:
        from rich.console import Console  # noqa: PLC0415 - only when shown
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.table import Column  # noqa: PLC0415

        def one_line() -> Any:
            return Column(no_wrap=True, overflow="ellipsis")

        console = self._console or Console(stderr=True)
        # a bar of 20 columns, narrower on a narrow terminal: the file's name keeps 30
        self._width = max(6, min(20, console.width - self._OTHERS - 30))
        bar = Progress(
            TextColumn("{task.description}", markup=False, table_column=one_line()),  # data
            BarColumn(bar_width=self._width),
            DownloadColumn(table_column=one_line()),
            TimeElapsedColumn(table_column=one_line()),
            console=console,
            transient=True,
        )
        bar.start()
        return bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def shortened(label: str, room: int) -> str:
    """``label`` in at most ``room`` characters: its start gives way to an ellipsis."""
    return label if len(label) <= room else "\u2026" + label[len(label) - room + 1 :]
