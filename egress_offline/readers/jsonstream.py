"""A JSON document file as a stream of the values that hold its records, read a bounded
piece at a time: the elements of an array, the hits of a ``_search`` or
``_async_search`` response, or each value of a file of values one after another (a
Kibana esArchiver archive). Memory holds one such value at a time, never the file: a
value longer than :data:`~tuning.LINE_LIMIT` (Elasticsearch refuses requests over 100 MB)
is an error.

Only the containers are walked here, key by key; each value is found whole by Python's
JSON scanner (its end is all that is kept) and decoded later, many at a time, by Polars.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from egress_offline.errors import InputError
from egress_offline.readers import tuning
from egress_offline.readers.compression import decompressed
from egress_offline.readers.model import FileReport, InputFile

__all__ = ["json_values", "text_values"]

_SPACE: Final = re.compile(r"[ \t\n\r]*")
#: Keys of a value that may hold records rather than be one (a response, an esArchiver
#: entry, an ES|QL response); a value without any of them is one record.
_HOLDER_KEYS: Final = re.compile(r'"(?:hits|columns|is_running|response|type)"\s*:')


def _nothing(*_: Any) -> None:
    return None


#: Finds where a value ends, building as little as it can on the way.
_SCANNER: Final = json.JSONDecoder(
    object_pairs_hook=_nothing, parse_float=_nothing, parse_int=_nothing,
    parse_constant=_nothing,
)  # fmt: skip


@dataclass
class _Window:
    """The file's text from the reading point on, a piece at a time."""

    file: InputFile
    report: FileReport
    pieces: Iterator[bytes]
    text: str = ""
    at: int = 0  # the reading point in ``text``
    lines: int = 0  # line ends before ``text``
    eof: bool = False
    utf8: Any = field(default_factory=codecs.getincrementaldecoder("utf-8"))
    bytes_read: int = 0

    def more(self) -> bool:
        """Add the next piece of text; False at the end of the file."""
        for piece in self.pieces:
            try:
                added = self.utf8.decode(piece)
            except UnicodeDecodeError as exc:
                raise self.error(
                    f"byte {self.bytes_read + exc.start} is not UTF-8, so the JSON document "
                    "cannot be read; re-export it as UTF-8"
                ) from exc
            self.bytes_read += len(piece)
            if not self.text and not self.lines and added.startswith("\ufeff"):
                added = added[1:]
            self.lines += self.text.count("\n", 0, self.at)
            self.text = self.text[self.at :] + added
            self.at = 0
            if added:
                return True
        self.eof = True
        return False

    def peek(self) -> str | None:
        """The next character that is not white space, or None at the end."""
        while True:
            self.at = _SPACE.match(self.text, self.at).end()  # type: ignore[union-attr]
            if self.at < len(self.text):
                return self.text[self.at]
            if not self.more():
                return None

    def expect(self, character: str) -> None:
        if self.peek() != character:
            raise self.invalid(f"expected {character!r}")
        self.at += 1

    def value(self) -> str:
        """The text of the next value (after white space)."""
        self.peek()
        wanted = len(self.text) - self.at  # text to have before trying again
        while True:
            try:
                _, end = _SCANNER.raw_decode(self.text, self.at)
            except json.JSONDecodeError as exc:
                if len(self.text) - self.at > tuning.LINE_LIMIT:
                    raise self.too_long() from None
                if self.eof:
                    raise self.invalid(exc.msg) from None
                wanted *= 2
                while len(self.text) - self.at < wanted and self.more():
                    pass
                continue
            except RecursionError as exc:
                raise self.error("the JSON document is nested too deeply to read") from exc
            if end - self.at > tuning.LINE_LIMIT:
                raise self.too_long()
            text = self.text[self.at : end]
            self.at = end
            return text

    @property
    def line(self) -> int:
        return self.lines + self.text.count("\n", 0, self.at) + 1

    def too_long(self) -> InputError:
        return self.error(
            f"a JSON value at line {self.line} is longer than {tuning.LINE_LIMIT:,} "
            "characters, which no Elasticsearch export holds; it was not read"
        )

    def error(self, message: str) -> InputError:
        return InputError(f"{self.file.name}: {message}", file=self.file.name)

    def invalid(self, reason: str) -> InputError:
        return InputError(
            f"{self.file.name}: not valid JSON at line {self.line} ({reason}); if it holds "
            "one document per line, each line must be a complete JSON object",
            file=self.file.name,
            position=self.line,
        )


def json_values(file: InputFile, report: FileReport) -> Iterator[tuple[str, bool]]:
    """The texts of the values of ``file`` that hold its records (see the module
    docstring), each with whether it is one record (a document or a hit) rather than a
    value that may hold some; damage in a compressed stream ends the text there and is
    noted in ``report``."""
    damage: list[str] = []
    with file.path.open("rb") as handle:
        window = _Window(file, report, decompressed(handle, file.compression, damage.append))
        try:
            yield from _values(window)
        finally:
            if damage:
                report.damage = damage[0]


def text_values(file: InputFile, report: FileReport, text: bytes) -> Iterator[tuple[str, bool]]:
    """:func:`json_values` of one text held already (a long line of a file of values)."""
    yield from _values(_Window(file, report, iter([text])))


def _values(window: _Window) -> Iterator[tuple[str, bool]]:
    while (start := window.peek()) is not None:
        if start == "[":  # an element that is an array is a record, malformed
            for element in _elements(window):
                if element.startswith("["):
                    yield f"[{element}]", False
                else:
                    yield element, not _HOLDER_KEYS.search(element)
        elif start == "{":  # a document, an archive entry, a response
            shell: list[str] = []
            for hit in _object(window, shell):
                yield hit, True
            yield "".join(shell), False  # a response's, without its hits: its notes
        else:
            yield window.value(), False


def _elements(window: _Window) -> Iterator[str]:
    """Each element of the array at the reading point."""
    window.expect("[")
    if window.peek() == "]":
        window.at += 1
        return
    while True:
        yield window.value()
        following = window.peek()
        window.at += 1
        if following == "]":
            return
        if following != ",":
            window.at -= 1
            raise window.invalid("expected ',' or ']' after an array element")


#: Where a response keeps its hits, and the objects on the way there.
_HITS: Final = frozenset({("hits", "hits"), ("response", "hits", "hits")})
_ON_THE_WAY: Final = frozenset(path[:end] for path in _HITS for end in range(1, len(path)))


def _object(window: _Window, shell: list[str], path: tuple[str, ...] = ()) -> Iterator[str]:
    """Walk the object at the reading point (at ``path`` in the file's top-level object).
    The hits of a response are yielded one by one; every other member's text goes to
    ``shell``, which then holds the object's text with its hits left out (an empty list)."""
    window.expect("{")
    shell.append("{")
    size = 0
    if window.peek() == "}":
        window.at += 1
        shell.append("}")
        return
    while True:
        key_text = window.value()
        window.expect(":")
        key = json.loads(key_text) if key_text.startswith('"') else ""
        start = window.peek()
        inner = (*path, key)
        if inner in _HITS and start == "[":
            yield from _elements(window)
            member = "[]"
        elif inner in _ON_THE_WAY and start == "{":
            parts: list[str] = []
            yield from _object(window, parts, inner)
            member = "".join(parts)
        else:
            member = window.value()
        shell.append(f"{key_text}:{member}")
        size += len(key_text) + len(member)
        if size > tuning.LINE_LIMIT:
            raise window.too_long()
        following = window.peek()
        window.at += 1
        if following == "}":
            shell.append("}")
            return
        if following != ",":
            window.at -= 1
            raise window.invalid("expected ',' or '}' after an object member")
        shell.append(",")
