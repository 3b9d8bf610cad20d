"""Long texts in the candidate rows, held once in a scratch file instead of in every step
that groups, joins or sorts by them.

An export is attacker-controlled, and a key can be as long as a line (100 MB) or a
Parquet page (64 MiB): 17 rows of 40 MiB executables, 22 KB of zstd, took over 3 GB,
each step that groups by the keys holding several copies of them. No real key is that
long (Elasticsearch's keyword fields keep at most 1,024 characters), so a text longer
than :data:`~egress_offline.readers.tuning.LONG_TEXT` is replaced, as the candidate rows
are spilled, by a token naming its length, SHA-256 and a secret drawn for the run
(:meth:`LongTexts.token`): equal texts have equal tokens, different ones different
tokens, so every group, join and count is the same, and no input, written before the
run, can pose as a token (replacing every text that starts like one instead cost a
Python step a row: 2 million such rows, over 120 s against 5.5). Its text goes once to
a scratch file, charged to the scratch budget, and comes back into the flagged rows
(:meth:`LongTexts.restore`), verbatim.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable, Sequence
from typing import IO, Final

import polars as pl

from egress_offline.readers import tuning
from egress_offline.scratch import Scratch, scratch_errors

__all__ = ["PREFIX", "LongTexts", "replace_long"]

#: How a token starts (``⟨long text ``), and ends.
PREFIX: Final = "\u27e8long text "
_END: Final = "\u27e9"
#: A column marking the rows that hold a token, and their order.
_LONG: Final = "__long"
_ROW: Final = "__long_row"
#: Texts (or rows of them) passed through Python at a time: their copies there.
_SLICE: Final = 16


def _is_long(text: pl.Expr) -> pl.Expr:
    return text.str.len_bytes() > tuning.LONG_TEXT


def _is_token(text: pl.Expr) -> pl.Expr:
    return text.str.starts_with(PREFIX)


def _row_is(frame: pl.DataFrame, column: str, test: Callable[[pl.Expr], pl.Expr]) -> pl.Expr:
    value = pl.col(column)
    if isinstance(frame.schema[column], pl.List):
        return value.list.eval(test(pl.element())).list.any().fill_null(False)
    return test(value).fill_null(False)


def _any(frame: pl.DataFrame, columns: Sequence[str],
         test: Callable[[pl.Expr], pl.Expr]) -> list[pl.Expr]:  # fmt: skip
    """Whether each of ``columns`` holds a long text anywhere: one pass over its values,
    cheaper than marking each row (200,000 candidate rows of 9 columns: 14 ms, against
    21)."""
    found = []
    for name in columns:
        value = pl.col(name).explode() if isinstance(frame.schema[name], pl.List) else pl.col(name)
        found.append(test(value).any().alias(name))
    return found


def replace_long(frame: pl.DataFrame, columns: Sequence[str],
                 each: Callable[[str], str]) -> pl.DataFrame:  # fmt: skip
    """``frame`` with each long text of ``columns`` replaced by ``each(text)``, in order.
    Only the distinct long texts pass through Python, once each, :data:`_SLICE` at a
    time (each is a copy there while it is hashed); no text of a real export is one.
    (Each row's went through Python before: 8,192 rows sharing one 1 MiB executable, a
    3.5 KB Parquet file, hashed 8 GiB.)"""
    present = [name for name in columns if name in frame.schema]
    if (
        frame.height == 0
        or not present
        or not any(frame.select(_any(frame, present, _is_long)).row(0))
    ):
        return frame
    swaps = []
    for name in present:
        listed = isinstance(frame.schema[name], pl.List)
        value = pl.col(name).explode() if listed else pl.col(name)
        found = frame.select(
            value.filter(_is_long(value).fill_null(False)).unique(maintain_order=True)
        ).to_series()
        if found.len() == 0:
            continue
        # each slice's texts leave Python as a Series of their own (restored, they are
        # the long ones)
        swapped = pl.concat(
            [pl.Series([each(text) for text in found.slice(at, _SLICE).to_list()],
                       dtype=pl.String)
             for at in range(0, found.len(), _SLICE)],
            rechunk=False,
        )  # fmt: skip
        if listed:
            swaps.append(pl.col(name).list.eval(pl.element().replace(found, swapped)))
        else:
            swaps.append(pl.col(name).replace(found, swapped))
    return frame.with_columns(swaps) if swaps else frame


def _restored_rows(frame: pl.DataFrame, columns: Sequence[str],
                   each: Callable[[str], str]) -> pl.DataFrame:  # fmt: skip
    """``frame`` with each text of ``columns`` in the rows holding a token (or a text like
    one) replaced by ``each(text)``; the other rows as they are, in order. Those rows'
    texts pass through Python :data:`_SLICE` rows at a time: restored, each row holds
    its own texts once (replaced as :func:`replace_long` replaces, the restored texts were
    held twice: 800 flagged rows of 1 MiB keys, 2,565 MB against 1,902)."""
    present = [name for name in columns if name in frame.schema]
    test = _is_token
    if frame.height == 0 or not present or not any(frame.select(_any(frame, present, test)).row(0)):
        return frame
    marked = frame.with_columns(
        pl.any_horizontal(_row_is(frame, name, test) for name in present).alias(_LONG)
    )
    marked = marked.with_row_index(_ROW)
    found = marked.filter(pl.col(_LONG))

    def swapped(part: pl.DataFrame, name: str) -> pl.Series:
        values = part.get_column(name).to_list()
        if isinstance(frame.schema[name], pl.List):
            out: list[object] = [
                None if row is None else [None if v is None else each(v) for v in row]
                for row in values
            ]
        else:
            out = [None if v is None else each(v) for v in values]
        return pl.Series(name, out, dtype=frame.schema[name])

    found = pl.concat([
        part.with_columns(swapped(part, name) for name in present)
        for part in found.iter_slices(_SLICE)
    ])  # fmt: skip
    return pl.concat([marked.filter(~pl.col(_LONG)), found]).sort(_ROW).drop(_ROW, _LONG)


def _long(text: str) -> bool:
    """Is ``text`` replaced by its token? (Of at most a quarter of the bytes in
    characters, it is not long.)"""
    return len(text) > tuning.LONG_TEXT // 4 and len(text.encode()) > tuning.LONG_TEXT


class LongTexts:
    """The long texts of one run's candidate rows: each one's bytes once, in the scratch
    file ``long-texts``, found by its token."""

    def __init__(self, scratch: Scratch) -> None:
        self._scratch = scratch
        self._lock = threading.Lock()
        self._at: dict[str, tuple[int, int]] = {}  # token -> (offset, length)
        self._file: IO[bytes] | None = None
        self._size = 0
        self._secret = secrets.token_hex(8)  # no file, written before, knows it

    def token(self, text: str) -> str:
        """The token standing for ``text``: ``⟨long text 41,943,044 bytes, sha256 …, run
        …⟩``."""
        return self._named(text.encode())

    def _named(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        return f"{PREFIX}{len(data):,} bytes, sha256 {digest}, run {self._secret}{_END}"

    def as_tokens(self, frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
        """``frame`` with the long texts of ``columns`` as their tokens (nothing stored):
        to find a restored row's events among the spilled ones."""
        return replace_long(frame, columns, lambda text: self.token(text) if _long(text) else text)

    def tokens(self, frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
        """``frame`` with each long text of ``columns`` (lists of texts, or texts) as its
        token, the text stored."""
        return replace_long(frame, columns, self._stored)

    def restore(self, frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
        """``frame`` with each token of ``columns`` as the text it stands for."""
        if not self._at:
            return frame
        return _restored_rows(frame, columns, self._text)

    def _stored(self, text: str) -> str:
        if not _long(text):
            return text
        data = text.encode()
        name = self._named(data)
        with self._lock:
            if name not in self._at:
                path = self._scratch.path("long-texts")
                # charged first: past the limit, it is never written (a 40 MiB text
                # written, then charged, took the scratch 14 MiB past a 500 MiB limit)
                self._scratch.charge(path, len(data))
                with scratch_errors(self._scratch):
                    if self._file is None:
                        self._file = path.open("w+b")
                        self._scratch.on_close(self._close)
                    self._file.seek(self._size)
                    self._file.write(data)
                self._at[name] = (self._size, len(data))
                self._size += len(data)
        return name

    def _text(self, text: str) -> str:
        found = self._at.get(text) if text.startswith(PREFIX) else None
        if found is None:
            return text
        at, length = found
        with self._lock:
            assert self._file is not None
            self._file.flush()
            self._file.seek(at)
            return self._file.read(length).decode()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
