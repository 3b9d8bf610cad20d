"""Decoding: JSON text -> the field lists the hunt reads (``List(String)`` per field).

Lines are decoded vectorised by Polars, with a small schema where a line can hold each
field only at its nested path and the general one (every nested, dotted and mixed place,
also under ``_source``) elsewhere. A part that does not decode is bisected down to its
bad lines, which are decoded in Python one by one (:func:`python_fields`, the same rules)
so that one broken line never costs the rest.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

import polars as pl

from egress_offline.fields import (
    HUNT,
    META_ID,
    META_INDEX,
    TEXT_LIST,
    FieldSet,
    key_paths,
    nested_path,
)
from egress_offline.normalise import in_pieces
from egress_offline.readers import tuning
from egress_offline.readers.model import ID, INDEX, POS

__all__ = [
    "BAD",
    "decode_bisect",
    "decode_lines",
    "doc_field_exprs",
    "fields_from_docs",
    "lone_surrogates",
    "merge_lists",
    "no_fields",
    "places_in",
    "python_fields",
    "python_frame",
    "strict_load",
]

#: Marks a decoded document that is null (a ``null`` line): malformed.
BAD: Final = "__bad"
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")  # in a decoded str, never paired
# JSON escapes of UTF-16 surrogates, and of a high one followed by a low one: a pair
_SURROGATE_ESCAPE: Final = r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
_SURROGATE_PAIR: Final = r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"

# ------------------------------------------------------------------ decoded doc -> fields


def merge_lists(exprs: list[pl.Expr]) -> pl.Expr:
    """One text list of every value found in the places ``exprs`` read (missing: none)."""
    empty = pl.lit([], dtype=TEXT_LIST)
    filled = [e.fill_null(empty) for e in exprs]
    return filled[0] if len(filled) == 1 else pl.concat_list(filled)


def _path_expr(root: pl.Expr, path: tuple[str, ...]) -> pl.Expr:
    expr = root
    for key in path:
        expr = expr.struct.field(key)
    return expr


#: Where a record may keep its document: in itself, or in one of its wrappers (see
#: :func:`doc_field_exprs`).
ROOTS: Final = ("_source", "value", "fields", "top")
#: Which (root, key path) places some record of a batch has: what
#: :func:`doc_field_exprs` needs to look in (None: every place).
Places = frozenset[tuple[str, tuple[str, ...]]] | None


def doc_field_exprs(doc: pl.Expr, fields: FieldSet = HUNT, places: Places = None
                    ) -> list[pl.Expr]:  # fmt: skip
    """The document's ``__index`` and ``__id`` and its field columns, from a decoded
    record (``fields.document_dtype``): from ``_source`` when it is there (an elasticdump
    or ``_search`` hit), else from an esArchiver entry's ``value.source``, else from a
    hit's ``fields`` (the fields API), else from the record itself. ``places``, when
    given, are the only places any record of the batch has (:func:`places_in`): looking
    in fewer costs less, and gives the same values."""
    source = doc.struct.field("_source")
    value = doc.struct.field("value")
    archived = value.struct.field("source")
    listed = doc.struct.field("fields")
    index, ident = doc.struct.field(META_INDEX), doc.struct.field(META_ID)
    hit = index.is_not_null() | ident.is_not_null()
    if places is None or there_wrapped(places):
        index = pl.coalesce(index, value.struct.field("index"))
        ident = pl.coalesce(ident, value.struct.field("id"))
    roots = {"_source": source, "value": archived, "top": doc}
    tests = {"_source": source.is_not_null(), "value": archived.is_not_null(),
             "fields": hit & listed.is_not_null()}  # fmt: skip
    if places is not None and not there_wrapped(places):  # decoded without the wrappers
        tests = {"_source": tests["_source"]}

    def there(root: str, path: tuple[str, ...] = ()) -> bool:
        if places is None:
            return True
        if not path:
            return any(place[0] == root for place in places)
        return (root, path) in places

    def merged(root: str, name: str) -> pl.Expr:
        if root == "fields":
            return merge_lists([listed.struct.field(name)])
        kept = [_path_expr(roots[root], p) for p in key_paths(name) if there(root, p)]
        return merge_lists(kept) if kept else pl.lit([], dtype=TEXT_LIST)

    exprs = [index.alias(INDEX), ident.alias(ID)]
    for name in fields.names:
        chosen: Any = pl
        for root in ("_source", "value", "fields"):
            if there(root):
                chosen = chosen.when(tests[root]).then(merged(root, name))
        top = merged("top", name)
        exprs.append((top if chosen is pl else chosen.otherwise(top)).alias(name))
    return exprs


_UNWRAPPED: Final = ("no wrappers", ())


def there_wrapped(places: frozenset[tuple[str, tuple[str, ...]]]) -> bool:
    """Were the records decoded with the wrappers (:attr:`FieldSet.document_dtype`)?"""
    return _UNWRAPPED not in places


def places_in(frame: pl.DataFrame, doc: str, fields: FieldSet) -> frozenset[
    tuple[str, tuple[str, ...]]
]:  # fmt: skip
    """The places (see :data:`Places`) that some decoded record ``doc`` of ``frame`` may
    have: each wrapper that some record has, and every path under it (one query; finding
    which paths some record has costs more than looking in all of them). Records decoded
    without the wrappers (:attr:`FieldSet.hit_dtype`) are told by a place of their own."""
    record = pl.col(doc)
    schema = frame.schema[doc]
    wrapped = isinstance(schema, pl.Struct) and "value" in {f.name for f in schema.fields}
    if wrapped:
        listed = record.struct.field("fields")
        hit = (
            record.struct.field(META_INDEX).is_not_null()
            | record.struct.field(META_ID).is_not_null()
        )
        checks = [
            record.struct.field("_source").is_not_null().any().alias("_source"),
            record.struct.field("value").struct.field("source").is_not_null().any().alias("value"),
            (hit & listed.is_not_null()).any().alias("fields"),
        ]
    else:
        checks = [
            record.struct.field("_source").is_not_null().any().alias("_source"),
            pl.lit(False).alias("value"),
            pl.lit(False).alias("fields"),
        ]
    found = frame.select(checks).row(0, named=True)
    paths = {path for name in fields.names for path in key_paths(name)}
    places = {("top", path) for path in paths}
    for root in ("_source", "value"):
        if found[root]:
            places |= {(root, ()), *((root, path) for path in paths)}
    if found["fields"]:
        places.add(("fields", ()))
    if not wrapped:
        places.add(_UNWRAPPED)
    return frozenset(places)


def fields_from_docs(frame: pl.DataFrame, doc: str, fields: FieldSet) -> pl.DataFrame:
    """``__pos``, :data:`BAD`, ``__index``, ``__id`` and the field columns of the
    decoded records ``doc``."""
    places = places_in(frame, doc, fields)
    return frame.select(POS, pl.col(doc).is_null().alias(BAD), *_whole_fields(fields, places, doc))


# ---------------------------------------------------------- the Python fallback decoder


class _Text(str):
    """A JSON float token kept as text until we know which field it is in."""


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        out.setdefault(key, value)  # as the vectorised decoder does
    return out


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


class _Digits(str):
    """A JSON integer longer than Python converts (``sys.get_int_max_str_digits()``),
    kept as its digits: no long holds it, and in a field the hunt does not read it must
    change nothing."""


def _int_or_digits(token: str) -> int | str:
    try:
        return int(token)
    except ValueError:  # JSON's digits: only too many of them fail
        return _Digits(token)


def strict_load(text: str | bytes) -> Any:
    """``json.loads`` as the vectorised decoder reads JSON: the first of duplicate keys
    wins, floats kept as their text, ``NaN`` and ``Infinity`` refused, and an integer
    too long for ``int()`` kept as its digits. Such an integer makes ``json.loads``
    fail (a ValueError, not a JSON error); only then is the text parsed again with a
    hook on every integer, which costs a Python call each."""
    try:
        return json.loads(
            text,
            object_pairs_hook=_first_wins,
            parse_float=_Text,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise
    return json.loads(
        text,
        object_pairs_hook=_first_wins,
        parse_float=_Text,
        parse_int=_int_or_digits,
        parse_constant=_reject_constant,
    )


def _float_text(token: str) -> str:
    # JSON floats are doubles in Elasticsearch, as in the vectorised decoder; write the
    # double's shortest round-trip value positionally, as that decoder does.
    value = float(token)
    if not math.isfinite(value):
        return token  # out of range for a double: stays text and parses to null
    return format(Decimal(repr(value)), "f")


def _texts(value: Any, out: list[str | None]) -> None:
    if value is None:
        out.append(None)
    elif isinstance(value, _Text):
        out.append(_float_text(value))
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, (str, int)):
        out.append(str(value))
    elif isinstance(value, list):
        for item in value:
            _texts(item, out)
    # an object where a value belongs is not indexable as this field: treated as missing


def _root(doc: dict[str, Any]) -> dict[str, Any] | str:
    """Where a record keeps its fields (see :func:`doc_field_exprs`), or the reason it
    keeps none."""
    source = doc.get("_source")
    if source is not None:
        return source if isinstance(source, dict) else "_source is not an object"
    value = doc.get("value")
    if isinstance(value, dict) and isinstance(value.get("source"), dict):
        return value["source"]
    listed = doc.get("fields")
    hit = doc.get(META_INDEX) is not None or doc.get(META_ID) is not None
    if hit and isinstance(listed, dict):
        return listed
    return doc


def _meta(doc: dict[str, Any], key: str, inner: str) -> str | None:
    value = doc.get(key)
    if value is None and isinstance(doc.get("value"), dict):
        value = doc["value"].get(inner)
    if value is None or isinstance(value, (dict, list)):
        return None
    return _float_text(value) if isinstance(value, _Text) else str(value)


def python_fields(doc: Any, fields: FieldSet = HUNT) -> dict[str, Any] | str:
    """``__index``, ``__id`` and the field lists of one parsed record, or the reason it
    is not a document."""
    if doc is None:
        return "not a JSON object (null)"  # as the vectorised decoder says it
    if not isinstance(doc, dict):
        return f"not a JSON object (a {type(doc).__name__.replace('dict', 'object')})"
    root = _root(doc)
    if isinstance(root, str):
        return root
    out: dict[str, Any] = {INDEX: _meta(doc, META_INDEX, "index"), ID: _meta(doc, META_ID, "id")}
    for name in fields.names:
        values: list[str | None] = []
        for path in key_paths(name):
            node: Any = root
            for key in path:
                node = node.get(key, None) if isinstance(node, dict) else None
                if node is None:
                    break
            if node is not None:
                _texts(node, values)
        # a lone surrogate escape (\ud800) holds no character: Elasticsearch indexes it
        # as U+FFFD, as Lucene writes an unpaired surrogate in UTF-8
        out[name] = [None if v is None else _LONE_SURROGATE.sub("\ufffd", v) for v in values]
    return out


def python_frame(rows: list[tuple[int, dict[str, Any]]], fields: FieldSet) -> pl.DataFrame:
    """``__pos``, ``__index``, ``__id`` and the field columns of records decoded in
    Python (:data:`BAD` too)."""
    schema: dict[str, Any] = {
        POS: pl.Int64,
        BAD: pl.Boolean,
        INDEX: pl.String,
        ID: pl.String,
        **{name: TEXT_LIST for name in fields.names},
    }
    return pl.DataFrame(
        {
            POS: [pos for pos, _ in rows],
            BAD: [False] * len(rows),
            **{name: [values.get(name) for _, values in rows] for name in (INDEX, ID)},
            **{name: [values[name] for _, values in rows] for name in fields.names},
        },
        schema=schema,
    )


def no_fields(fields: FieldSet) -> pl.DataFrame:
    """A frame of no records, with the columns of one that has some."""
    return python_frame([], fields).drop(BAD)


def _python_record(text: str, fields: FieldSet) -> dict[str, Any] | str:
    try:
        doc = strict_load(text)
    except RecursionError:
        return "nested too deeply to decode"
    except ValueError as exc:
        return f"not valid JSON ({str(exc).split(':')[0]})"
    return python_fields(doc, fields)


def _python_lines(
    lines: pl.DataFrame, out: list[pl.DataFrame], bad: list[tuple[int, str]], fields: FieldSet
) -> None:
    """Decode ``lines`` one by one in Python: a few lines (a damaged part bisected down to
    :data:`~tuning.BISECT_FLOOR`, or those of :func:`lone_surrogates`)."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for pos, text in lines.select(POS, pl.col("line").str.strip_chars()).iter_rows():
        result = _python_record(text, fields)
        if isinstance(result, str):
            bad.append((pos, result))
        else:
            rows.append((pos, result))
    if rows:
        out.append(python_frame(rows, fields))


# ------------------------------------------------------------------ vectorised decoding


def lone_surrogates(text: pl.Expr) -> pl.Expr:
    """Texts that may hold a lone UTF-16 surrogate escape (``\\ud800`` not followed by a
    low one): more surrogate escapes than twice the pairs. Polars' decoder reads a lone
    high one as NUL and fails on a lone low one, so these are decoded in Python, which
    writes U+FFFD as Elasticsearch does. (An escaped backslash before ``ud800`` counts too:
    such a text is only decoded more slowly.)"""
    return text.str.count_matches(_SURROGATE_ESCAPE) > 2 * text.str.count_matches(_SURROGATE_PAIR)


def decode_lines(lines: pl.DataFrame, bad: list[tuple[int, str]], fields: FieldSet) -> pl.DataFrame:
    """Field lists of ``lines`` (``__pos``, ``line``). Most hold each field only at its
    nested path and decode with a small schema; hits, escapes and dotted keys with the
    general one. A part that does not decode is bisected down to its bad lines (their
    positions and reasons go to ``bad``)."""
    text = pl.col("line")
    # in pieces, searched in parallel: on one chunk the search took longer than decoding
    pieces = in_pieces(lines, tuning.SEARCH_PIECE)
    general = pieces.select(text.str.contains(fields.general)).to_series().rechunk()
    doc = pl.col("__doc")
    nested = _nested_fields(fields)
    parts: list[pl.DataFrame] = []
    plan: tuple[tuple[pl.DataFrame, Any, tuple[pl.Expr, ...] | None], ...]
    if not general.any() and not general.has_nulls():
        # the usual case: every line with the small schema, in no further query (each
        # waits for the threads the scan keeps busy)
        plan = ((lines, fields.nested_dtype, nested),)
    else:
        escaped = lines.filter(general)  # only these can hold a \u escape
        lone = escaped.select(lone_surrogates(text)).to_series()
        if lone.any():
            _python_lines(escaped.filter(lone), parts, bad, fields)
            escaped = escaped.filter(~lone)
        wrapped = escaped.select(text.str.contains(fields.wrapped)).to_series()
        plan = (
            (lines.filter(~general), fields.nested_dtype, nested),
            (escaped.filter(~wrapped), fields.hit_dtype, None),
            (escaped.filter(wrapped), fields.document_dtype, None),
        )
    for part, dtype, columns in plan:
        if part.height == 0:
            continue
        try:
            decoded = _json_decode(part, dtype)
        except pl.exceptions.PolarsError:
            _bisect(_stripped(part), parts, bad, fields)
        else:
            chosen = columns or _whole_fields(fields, places_in(decoded, "__doc", fields))
            parts.append(decoded.select(POS, doc.is_null().alias(BAD), *chosen))
    if not parts:
        return no_fields(fields)
    merged = parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")
    if not merged.get_column(BAD).any():
        return merged.drop(BAD)
    bad.extend((p, "not a JSON object (null)") for p in merged.filter(pl.col(BAD))[POS])
    return merged.filter(~pl.col(BAD)).drop(BAD)


@lru_cache(maxsize=8)
def _nested_fields(fields: FieldSet) -> tuple[pl.Expr, ...]:
    """The field columns of lines decoded with the nested schema (each field at its
    nested path only). Built once per field set (about 2 ms each time)."""
    doc = pl.col("__doc")
    unknown = [pl.lit(None, dtype=pl.String).alias(name) for name in (INDEX, ID)]
    nested = [merge_lists([_path_expr(doc, nested_path(n))]).alias(n) for n in fields.names]
    return (*unknown, *nested)


@lru_cache(maxsize=64)
def _whole_fields(fields: FieldSet, places: Places, doc: str = "__doc") -> tuple[pl.Expr, ...]:
    """The field columns of records decoded with the general schema that have only
    ``places`` (see :func:`doc_field_exprs`), built once for each."""
    return tuple(doc_field_exprs(pl.col(doc), fields, places))


def _json_decode(lines: pl.DataFrame, dtype: Any) -> pl.DataFrame:
    """``__pos`` and ``__doc``, the lines decoded. Lines are decoded in pieces (see
    :data:`~tuning.DECODE_PIECE`); the result is made one chunk again, from which struct
    fields are read many times faster."""
    cut = in_pieces(lines, tuning.DECODE_PIECE)
    return cut.select(POS, pl.col("line").str.json_decode(dtype).alias("__doc")).rechunk()


def _stripped(lines: pl.DataFrame) -> pl.DataFrame:
    return lines.with_columns(pl.col("line").str.strip_chars())


def decode_bisect(
    frame: pl.DataFrame, out: list[pl.DataFrame], bad: list[tuple[int, str]], fields: FieldSet
) -> None:
    """Decode ``frame``'s lines with the general schema, bisecting a part that does not
    decode down to its bad lines; lines with a lone surrogate escape are decoded in
    Python. Frames of field columns (and :data:`BAD`) go to ``out``."""
    lone = frame.select(lone_surrogates(pl.col("line"))).to_series()
    if lone.any():
        _python_lines(frame.filter(lone), out, bad, fields)
        frame = frame.filter(~lone)
    _bisect(frame, out, bad, fields)


def _bisect(
    frame: pl.DataFrame, out: list[pl.DataFrame], bad: list[tuple[int, str]], fields: FieldSet
) -> None:
    if frame.height == 0:
        return
    if frame.height <= tuning.BISECT_FLOOR:
        _python_lines(frame, out, bad, fields)
        return
    try:
        decoded = _json_decode(frame, fields.document_dtype)
    except pl.exceptions.PolarsError:
        half = frame.height // 2
        _bisect(frame.slice(0, half), out, bad, fields)
        _bisect(frame.slice(half), out, bad, fields)
        return
    columns = fields_from_docs(decoded, "__doc", fields)
    bad.extend((p, "not a JSON object (null)") for p in columns.filter(pl.col(BAD))[POS])
    out.append(columns.filter(~pl.col(BAD)))
