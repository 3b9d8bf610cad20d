"""``_bulk`` request bodies: an action line (``index``, ``create``, ``update``,
``delete``), then, but for ``delete``, the document (for ``update``, its ``doc``). The
documents are the records; the action lines are not, and give each document its
``_index`` and ``_id``. A body is read a block of whole lines at a time, vectorised."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Final

import polars as pl

from egress_offline.fields import META_ID, META_INDEX, FieldSet
from egress_offline.readers.decode import (
    BAD,
    doc_field_exprs,
    lone_surrogates,
    python_fields,
    python_frame,
    strict_load,
)
from egress_offline.readers.lines import line_blocks
from egress_offline.readers.linescan import record_texts
from egress_offline.readers.model import POS, FileReport, InputFile

__all__ = ["ACTIONS", "is_action", "read_bulk"]

#: The actions of a _bulk body, and those followed by a document line.
ACTIONS: Final = ("index", "create", "update", "delete")
_WITH_DOCUMENT: Final = ("index", "create", "update")
#: The actions that change or remove a document, which are not applied.
_CHANGES: Final = ("delete", "update")


def is_action(value: Any) -> bool:
    """Is a parsed line a _bulk action line (one action key, its metadata an object)?"""
    return (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in ACTIONS
        and isinstance(next(iter(value.values())), dict)
    )


@lru_cache(maxsize=8)
def _line_dtype(fields: FieldSet) -> pl.Struct:
    document = fields.document_dtype
    meta = pl.Struct({META_INDEX: pl.String, META_ID: pl.String})
    return pl.Struct(
        {
            **{f.name: f.dtype for f in document.fields},
            **{action: meta for action in ACTIONS},
            "doc": document,
        }
    )


def read_bulk(
    file: InputFile, report: FileReport, *, strict: bool, fields: FieldSet
) -> Iterator[pl.DataFrame]:
    """Field frames (``__pos``, the document's line, ``__index``, ``__id`` and the
    fields) of the documents of a _bulk body; malformed lines noted in ``report``."""
    waiting: tuple[str, str | None, str | None] | None = None  # an action line's, unpaired
    changes = dict.fromkeys(_CHANGES, 0)  # the actions not applied, counted
    for lines in line_blocks(file, report, strict=strict):
        undecodable = lines.filter(pl.col("line").is_null()).get_column(POS).to_list()
        texts = record_texts(lines)
        rows = _vectorised(texts, fields, waiting, changes)
        if rows is None:
            frame, waiting = _in_python(texts, report, fields, waiting, changes, strict=strict)
        else:
            frame, waiting = rows
            report.records += frame.height
            for pos, reason in frame.filter(pl.col(BAD).is_not_null()).select(POS, BAD).rows():
                report.note_malformed(pos, reason, strict=strict)
            frame = frame.filter(pl.col(BAD).is_null()).drop(BAD)
        for pos in undecodable:  # counted as records: what they were is unknown
            report.records += 1
            report.note_malformed(pos, "bytes that are not UTF-8", strict=strict)
        if frame.height:
            yield frame
    if any(changes.values()):
        report.notes.append(_not_applied(changes))


def _not_applied(changes: dict[str, int]) -> str:
    """What the user must know of a body's update and delete actions."""
    told = " and ".join(
        f"{n:,} {action} action{'s' if n != 1 else ''}" for action, n in changes.items() if n
    )
    effects = {
        "delete": "a deleted document still counts",
        "update": "an update's doc is read as a document of its own, not merged into the "
        "one it updates (and dropped as the same document when that was read first)",
    }
    said = "; ".join(effects[action] for action, n in changes.items() if n)
    verb, them = ("is", "it") if sum(changes.values()) == 1 else ("are", "them")
    return (
        f"the _bulk body's {told} {verb} not applied as the cluster would apply {them}: {said}; "
        "the cluster's rows may differ"
    )


def _vectorised(texts: pl.DataFrame, fields: FieldSet,
                waiting: tuple[str, str | None, str | None] | None, changes: dict[str, int]
                ) -> tuple[pl.DataFrame, tuple[str, str | None, str | None] | None] | None:  # fmt: skip
    """The documents of a block (``__pos``, :data:`BAD` as a reason or null, ``__index``,
    ``__id``, the fields), and the block's last action line when its document is in the
    next block; None when the block does not decode vectorised."""
    if texts.height == 0:
        return texts.select(POS).clear().with_columns(pl.lit(None, pl.String).alias(BAD)), waiting
    if texts.select(lone_surrogates(pl.col("line")).any()).item():
        return None
    try:
        decoded = texts.select(POS, pl.col("line").str.json_decode(_line_dtype(fields)).alias("v"))
    except pl.exceptions.PolarsError:
        return None
    line = pl.col("v")
    action = pl.coalesce(
        [pl.when(line.struct.field(a).is_not_null()).then(pl.lit(a)) for a in ACTIONS]
    )
    meta = pl.coalesce([line.struct.field(a) for a in ACTIONS])
    marked = decoded.with_columns(
        action.alias("__action"),
        meta.struct.field(META_INDEX).alias("__a_index"),
        meta.struct.field(META_ID).alias("__a_id"),
    )
    if waiting is not None:  # the previous block's last action line
        first = pl.DataFrame(
            {"__action": [waiting[0]], "__a_index": [waiting[1]], "__a_id": [waiting[2]]},
            schema={"__action": pl.String, "__a_index": pl.String, "__a_id": pl.String},
        )
        before = pl.concat([first, marked.select("__action", "__a_index", "__a_id").head(-1)])
    else:
        before = marked.select("__action", "__a_index", "__a_id").shift(1)
    paired = marked.with_columns(before.rename(lambda c: "__prev" + c).get_columns())
    prev = pl.col("__prev__action")
    document = pl.col("__action").is_null() | prev.is_in(_WITH_DOCUMENT).fill_null(False)
    # the action lines' (a document may hold a key named "update" or "delete")
    for action, n in paired.filter(~document).group_by("__action").len().iter_rows():
        if action in changes:
            changes[action] += n
    record = (
        pl.when(prev == "update")
        .then(line.struct.field("doc"))
        .otherwise(pl.struct([line.struct.field(f.name) for f in fields.document_dtype.fields]))
    )
    reason = (
        pl.when(line.is_null())
        .then(pl.lit("not a JSON object (null)"))
        .when(prev.is_null() | (prev == "delete"))
        .then(pl.lit("a document line with no index, create or update line before it"))
        .when((prev == "update") & line.struct.field("doc").is_null())
        .then(pl.lit("an update without a doc (a script or an upsert alone)"))
    )
    docs = paired.filter(document).select(POS, reason.alias(BAD), record.alias("__doc"),
                                          "__prev__a_index", "__prev__a_id")  # fmt: skip
    frame = docs.select(POS, BAD, *doc_field_exprs(pl.col("__doc"), fields)).with_columns(
        pl.coalesce(docs.get_column("__prev__a_index"), pl.col("__index")).alias("__index"),
        pl.coalesce(docs.get_column("__prev__a_id"), pl.col("__id")).alias("__id"),
    )
    last = marked.tail(1).row(0, named=True)
    carried = None
    if last["__action"] in _WITH_DOCUMENT:
        carried = (last["__action"], last["__a_index"], last["__a_id"])
    return frame, carried


def _in_python(texts: pl.DataFrame, report: FileReport, fields: FieldSet,
               waiting: tuple[str, str | None, str | None] | None,
               changes: dict[str, int], *,
               strict: bool) -> tuple[pl.DataFrame, tuple[str, str | None, str | None] | None]:  # fmt: skip
    """A block read line by line (damage, lone surrogate escapes)."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for pos, text in texts.iter_rows():
        try:
            value = strict_load(text)
        except (ValueError, RecursionError) as exc:
            report.records += 1
            report.note_malformed(pos, f"not valid JSON ({str(exc).split(':')[0]})", strict=strict)
            waiting = None
            continue
        if waiting is None and is_action(value):  # after an action, its document
            action, meta = next(iter(value.items()))
            if action in changes:
                changes[action] += 1
            waiting = (
                (action, meta.get(META_INDEX), meta.get(META_ID))
                if action in _WITH_DOCUMENT
                else None
            )
            continue
        report.records += 1
        if waiting is None:
            report.note_malformed(
                pos, "a document line with no index, create or update line before it", strict=strict
            )
            continue
        action, index, ident = waiting
        waiting = None
        record = value.get("doc") if action == "update" and isinstance(value, dict) else value
        if action == "update" and record is None:
            report.note_malformed(
                pos, "an update without a doc (a script or an upsert alone)", strict=strict
            )
            continue
        result = python_fields(record, fields)
        if isinstance(result, str):
            report.note_malformed(pos, result, strict=strict)
            continue
        result["__index"] = index if index is not None else result["__index"]
        result["__id"] = ident if ident is not None else result["__id"]
        rows.append((pos, result))
    return python_frame(rows, fields).drop(BAD), waiting
