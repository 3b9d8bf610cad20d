"""Sniffing: what a file holds, told from its first bytes, never from its name."""

from __future__ import annotations

import json
from pathlib import Path

from egress_offline.errors import InputError
from egress_offline.readers import tuning
from egress_offline.readers.compression import PARQUET_MAGIC, compression_of, decompressed
from egress_offline.readers.model import Compression, Format, InputFile

__all__ = ["describe", "peek_text", "sniff_json"]

#: Layouts named in messages about a file that is none of them.
KNOWN_LAYOUTS = "NDJSON (optionally .gz or .zst), a JSON array or _search response, or Parquet"


def describe(path: Path, *, name: str, explicit: bool) -> InputFile | str:
    """Sniff a file. An unsupported file is an error if named (``explicit``), else the
    reason to skip it."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise InputError(
            f"{name}: cannot be read ({exc.strerror}); check its permissions", file=name
        ) from exc
    if head == PARQUET_MAGIC:
        return InputFile(path, name, size, "parquet", "none")
    compression = compression_of(head)
    if size == 0:
        if name.endswith((".gz", ".zst", ".parquet")):
            reason = "is empty (0 bytes); the copy is incomplete, export it again"
            if explicit:
                raise InputError(f"{name}: {reason}", file=name)
            return reason
        return InputFile(path, name, size, "ndjson", "none")
    try:
        peek, produced, consumed = peek_text(path, compression, size)
    except OSError as exc:
        raise InputError(
            f"{name}: cannot be read ({exc.strerror}); check its permissions", file=name
        ) from exc
    fmt = sniff_json(peek)
    if fmt is None:
        if explicit:
            raise InputError(f"{name}: not a supported format; give {KNOWN_LAYOUTS}", file=name)
        return "not an NDJSON, JSON or Parquet export (skipped)"
    lines = peek.count(b"\n")
    return InputFile(
        path, name, size, fmt, compression,
        text_size=size * produced // consumed if consumed else 0,
        line_bytes=len(peek) // lines if lines else 0,
    )  # fmt: skip


def peek_text(path: Path, compression: Compression, size: int) -> tuple[bytes, int, int]:
    """The first :data:`~tuning.PEEK` bytes of a file's text, how much text was
    decompressed to get it, and from how many bytes of the file (their ratio estimates
    the file's text size). A compressed file is read a piece at a time and only as far as
    that needs (see :data:`~tuning.PEEK_STEP`); damage ends the peek where it is."""
    with path.open("rb") as handle:
        if compression == "none":
            head = handle.read(tuning.PEEK)
            return head, len(head), len(head)
        step = tuning.PEEK if size > tuning.PEEK_LARGE else tuning.PEEK_STEP
        out = bytearray()
        for piece in decompressed(handle, compression, lambda _damage: None, read_size=step):
            out += piece
            if len(out) >= tuning.PEEK:
                break
        return bytes(out[: tuning.PEEK]), len(out), handle.tell()


def sniff_json(peek: bytes) -> Format | None:
    """NDJSON, one JSON document, or neither, from the first bytes of text.

    In order: a first line that is only ``{`` or ``[`` opens a pretty-printed document;
    any complete line that is a JSON object on its own makes the file NDJSON (so a
    damaged first line does not decide); a compact ``_search`` response or array on one
    line is a document; a long first line that opens an object is an NDJSON record.
    """
    text = peek.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return "ndjson"  # nothing but white space: an empty export
    lines = text.split(b"\n")
    complete = lines if len(peek) < tuning.PEEK else lines[:-1]
    first = lines[0].strip()
    if first in (b"{", b"["):
        return "json"
    for line in complete:  # the first complete object decides
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            hits = doc.get("hits")
            if len(complete) == 1 and isinstance(hits, dict) and isinstance(hits.get("hits"), list):
                return "json"
            return "ndjson"
    if first.startswith(b"["):
        return "json"
    if first.startswith(b"{"):
        return (
            "json" if first.endswith((b"{", b"[", b",", b":")) and len(complete) > 1 else "ndjson"
        )
    return None
