"""Arrow data read from Parquet, made what the readers take: dictionaries decoded to their
values (after they are sized, :func:`decoded_bytes`), list views made lists, and many
small chunks made one. Sizes are measured without decoding: a read of a few rows may
stand for gigabytes of text through its dictionaries (see ``parquet_batches``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from egress_offline.readers.boundary import ColumnNotText

__all__ = [
    "as_text",
    "decoded_bytes",
    "dictionaries_held",
    "dictionary_sizes",
    "holds_dictionary",
    "leaf_count",
    "understood",
]

#: Chunks of a batch past which they are made one (:func:`as_text`).
_FEW_CHUNKS = 16


def as_text(table: Any) -> Any:
    """``table`` with its dictionary columns, at any depth, decoded to their values, its
    list views made lists, and its bytes and 256-bit decimals made text
    (:func:`_bytes_as_text`). A nested column's parts are made compact first: a cast of
    a slice of a list decodes the whole of its values (a one-row slice of 20 rows of a
    million elements, all)."""
    if any(_holds_view(field.type) for field in table.schema):
        table = _without_views(table)
    if any(holds_dictionary(field.type) for field in table.schema):
        import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

        columns = [_column_as_text(field.type, column)
                   for field, column in zip(table.schema, table.columns, strict=True)]  # fmt: skip
        table = pa.Table.from_arrays(columns, names=table.column_names)
    if any(_holds_untaken(field.type) for field in table.schema):
        table = _bytes_as_text(table)
    _check_text(table)
    return _compact(table)


def _check_text(table: Any) -> None:
    """Raise if a text column of ``table`` holds bytes that are not UTF-8: pyarrow reads
    a Parquet text column's bytes unchecked, and Polars took them so (a traceback when
    the spill read them back; for ``@timestamp``, a panic)."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    for field, column in zip(table.schema, table.columns, strict=True):
        if _holds_text(field.type):
            try:
                column.validate(full=True)
            except pa.ArrowInvalid as exc:
                leaf = _failing_leaf(field.name, column, _not_utf8)
                raise ValueError(f"the text column {leaf} holds bytes that are not UTF-8") from exc


def _bytes_as_text(table: Any) -> Any:
    """``table`` with each bytes column (Parquet ``BINARY`` without the UTF-8 annotation,
    as Impala, older Hive and some other writers store text), at any depth, read as
    UTF-8 text, as Spark's ``binaryAsString`` reads it: the fields read are texts, and
    such a column read as no value made every row of the file a record without them.
    Bytes that are not UTF-8 are no text: the file is refused, naming the column. A
    256-bit decimal, which Polars cannot take (it panicked), is its number's text, as
    a number in a string is read."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if not _holds_untaken(field.type):
            columns.append(column)
            continue
        extension = _extension_in(field.type)
        if extension is not None:
            raise ColumnNotText(
                f"the Parquet column {field.name} holds {extension}, not text; write its "
                "values as plain text"
            )
        try:
            columns.append(column.cast(_texted(column.type)))
        except pa.ArrowInvalid as exc:
            leaf = _failing_leaf(field.name, column, _not_utf8)
            raise ColumnNotText(
                f"the Parquet column {leaf} holds bytes that are not UTF-8 text "
                "(bytes without the UTF-8 annotation); write its values as UTF-8 strings"
            ) from exc
    return pa.Table.from_arrays(columns, names=table.column_names)


def _failing_leaf(name: str, column: Any, fails: Callable[[Any], bool]) -> str:
    """The dotted path (from the column ``name``) of the first leaf of ``column`` whose
    values ``fails`` says fail, within structs and lists; the column's name if none."""
    for chunk in column.chunks:
        for path, leaf in _leaves(name, chunk):
            if fails(leaf):
                return path
    return name


def _leaves(path: str, array: Any) -> Iterator[tuple[str, Any]]:
    """Each leaf array of ``array`` (a struct's fields, a list's values), with its path."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    kind = array.type
    if pa.types.is_struct(kind):
        for field, child in zip(kind, array.flatten(), strict=True):
            yield from _leaves(f"{path}.{field.name}", child)
    elif (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    ):
        yield from _leaves(path, array.flatten())
    else:
        yield path, array


def _not_utf8(leaf: Any) -> bool:
    """Does a leaf array of text or bytes hold bytes that are not UTF-8?"""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    try:
        if _holds_text(leaf.type):
            leaf.validate(full=True)
        elif _is_bytes(leaf.type):
            leaf.cast(_texted(leaf.type))
    except pa.ArrowInvalid:
        return True
    return False


def _extension_in(kind: Any) -> str | None:
    """What the first extension type in this Arrow type holds, in words, at any depth
    (``arrow.json``: JSON text, whose values would be its quoted texts; ``arrow.uuid``:
    UUIDs as 16 bytes); None when there is none."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    if isinstance(kind, pa.BaseExtensionType):
        name = kind.extension_name
        return {"arrow.json": "JSON text (the JSON type)",
                "arrow.uuid": "UUIDs (16 bytes each)"}.get(name, f"values of the type {name}")  # fmt: skip
    if pa.types.is_dictionary(kind):
        return _extension_in(kind.value_type)
    for i in range(kind.num_fields):
        found = _extension_in(kind.field(i).type)
        if found is not None:
            return found
    return None


@lru_cache(maxsize=256)
def _holds_untaken(kind: Any) -> bool:
    """Is there a bytes type (binary, large or a view) or a 256-bit decimal in this
    Arrow type, at any depth?"""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    if _is_bytes(kind) or pa.types.is_decimal256(kind):
        return True
    if isinstance(kind, pa.BaseExtensionType):  # Polars read it as no value: refused
        return True
    if pa.types.is_dictionary(kind):
        return _holds_untaken(kind.value_type)
    return any(_holds_untaken(kind.field(i).type) for i in range(kind.num_fields))


def _is_bytes(kind: Any) -> bool:
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    return bool(
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_binary_view(kind)
        or pa.types.is_fixed_size_binary(kind)
    )


@lru_cache(maxsize=256)
def _holds_text(kind: Any) -> bool:
    """Is there a text type in this Arrow type, at any depth?"""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return True
    if pa.types.is_string_view(kind):
        return True
    if pa.types.is_dictionary(kind):
        return _holds_text(kind.value_type)
    return any(_holds_text(kind.field(i).type) for i in range(kind.num_fields))


@lru_cache(maxsize=256)
def _texted(kind: Any) -> Any:
    """An Arrow type with each bytes type in it, at any depth, its text type, and each
    256-bit decimal text."""
    return _mapped(kind, _text_type)


def _text_type(kind: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    if pa.types.is_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return pa.string()
    if pa.types.is_decimal256(kind):
        return pa.string()
    if pa.types.is_large_binary(kind):
        return pa.large_string()
    if pa.types.is_binary_view(kind):
        return pa.string_view()
    return None


def _mapped(kind: Any, leaf: Callable[[Any], Any]) -> Any:
    """An Arrow type rebuilt with ``leaf``'s type wherever it gives one (not None), at any
    depth within structs, lists and maps."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    found = leaf(kind)
    if found is not None:
        return found
    if pa.types.is_struct(kind):
        return pa.struct([field.with_type(_mapped(field.type, leaf)) for field in kind])
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_mapped(kind.value_type, leaf)))
    if pa.types.is_large_list(kind):
        return pa.large_list(kind.value_field.with_type(_mapped(kind.value_type, leaf)))
    if pa.types.is_fixed_size_list(kind):
        value = kind.value_field.with_type(_mapped(kind.value_type, leaf))
        return pa.list_(value, kind.list_size)
    if pa.types.is_map(kind):
        return pa.map_(
            kind.key_field.with_type(_mapped(kind.key_type, leaf)),
            kind.item_field.with_type(_mapped(kind.item_type, leaf)),
        )
    return kind


def _column_as_text(kind: Any, column: Any) -> Any:
    """One column of :func:`as_text`: a flat dictionary column decoded in one call,
    whatever its chunks (a read's each, in a stretch of many small row groups); a
    nested one chunk by chunk, each made compact first."""
    if not holds_dictionary(kind):
        return column
    if not kind.num_fields:
        return _decoded(column)
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    return pa.chunked_array([_decoded(pa.concat_arrays([chunk])) for chunk in column.chunks],
                            type=_plain(kind))  # fmt: skip


def _compact(table: Any) -> Any:
    """``table`` in one chunk when it has many: a stretch's small row groups are a chunk
    each, and each chunk a step of every query on the batch after it (65,536 one-row
    chunks: 2.5 s for a query of 0.1 s); made one, a copy of at most PARQUET_BYTES."""
    if table.num_columns and table.column(0).num_chunks > _FEW_CHUNKS:
        return table.combine_chunks()
    return table


def _without_views(table: Any) -> Any:
    """``table`` with each list view in it, at any depth, a list of the same values: a
    file whose stored Arrow schema says ``list_view`` (pyarrow writes one for such an
    array) is read as one, which Polars cannot take (``"+vl" is still not supported``),
    and pyarrow 26's cast of one to a list makes an invalid array."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    columns = [pa.chunked_array([_listed(chunk) for chunk in column.chunks],
                                type=_unviewed(column.type))
               for column in table.columns]  # fmt: skip
    return pa.Table.from_arrays(columns, names=table.column_names)


def _listed(array: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader
    from pyarrow._compute import call_function  # noqa: PLC0415 - see parquet._arrow_filter

    kind = array.type
    if not _holds_view(kind):
        return array
    if pa.types.is_struct(kind):
        children = [_listed(child) for child in array.flatten()]  # the struct's slice
        return pa.StructArray.from_arrays(children, fields=list(_unviewed(kind)),
                                          mask=array.is_null())  # fmt: skip
    # a list or a view: its values in the rows' order, each row's count of them
    values = _listed(array.flatten())
    lengths = call_function("list_value_length", [array])
    sizes = call_function("coalesce", [lengths, pa.scalar(0, lengths.type)])
    large = pa.types.is_large_list(kind) or pa.types.is_large_list_view(kind)
    index = pa.int64() if large else pa.int32()
    offsets = pa.concat_arrays([pa.array([0], index),
                                call_function("cumulative_sum", [sizes.cast(index)])])  # fmt: skip
    made = pa.LargeListArray if large else pa.ListArray
    return made.from_arrays(offsets, values, type=_unviewed(kind), mask=array.is_null())


@lru_cache(maxsize=256)
def _unviewed(kind: Any) -> Any:
    """An Arrow type with each list view in it, at any depth, a list."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    if pa.types.is_struct(kind):
        return pa.struct([field.with_type(_unviewed(field.type)) for field in kind])
    if pa.types.is_list(kind) or pa.types.is_list_view(kind):
        return pa.list_(kind.value_field.with_type(_unviewed(kind.value_type)))
    if pa.types.is_large_list(kind) or pa.types.is_large_list_view(kind):
        return pa.large_list(kind.value_field.with_type(_unviewed(kind.value_type)))
    return kind


@lru_cache(maxsize=256)
def _holds_view(kind: Any) -> bool:
    """Is there a list view in this Arrow type, within structs and lists?"""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    if pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind):
        return True
    if pa.types.is_struct(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return any(_holds_view(kind.field(i).type) for i in range(kind.num_fields))
    return False


def _decoded(array: Any) -> Any:
    """``array`` with each dictionary in it, at any depth, decoded."""
    from pyarrow._compute import CastOptions, call_function  # noqa: PLC0415 - see parquet._arrow_filter

    return call_function("cast", [array], CastOptions.safe(_plain(array.type)))


def understood(read: Any) -> Any:
    """``read`` with any column whose dictionaries :func:`decoded_bytes` cannot size (in
    a map, say) decoded now, as pyarrow would have."""
    if all(_sized(field.type) for field in read.schema):
        return read
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    columns = [
        column if _sized(field.type) else _decoded(column)
        for field, column in zip(read.schema, read.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, names=read.schema.names)


@lru_cache(maxsize=256)
def _sized(kind: Any) -> bool:
    """Can :func:`decoded_bytes` size an array of this type without decoding it: no
    dictionary, or dictionaries of flat values in structs and lists only?"""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    if not holds_dictionary(kind):
        return True
    if pa.types.is_dictionary(kind):
        return not holds_dictionary(kind.value_type) and kind.value_type.num_fields == 0
    if _is_list(kind) or pa.types.is_struct(kind):
        return all(_sized(kind.field(i).type) for i in range(kind.num_fields))
    return False


def _is_list(kind: Any) -> bool:
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    return bool(
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    )


@lru_cache(maxsize=256)
def _plain(kind: Any) -> Any:
    """An Arrow type with each dictionary in it, at any depth, its value type."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    return _mapped(kind, lambda found: _plain(found.value_type)
                   if pa.types.is_dictionary(found) else None)  # fmt: skip


def decoded_bytes(record_batch: Any) -> int:
    """The bytes a record batch's rows take once they are text: its size, with each
    dictionary column, flat or nested, counted as decoded (each row its value's own
    copy), without decoding it."""
    return sum(_array_bytes(column) for column in record_batch.columns)


def _array_bytes(array: Any) -> int:
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    kind = array.type
    if pa.types.is_dictionary(kind):
        return _dictionary_bytes(array)
    if not holds_dictionary(kind):
        return int(array.nbytes)
    # a struct's children (``flatten`` applies its offset), or a list's values
    children = array.flatten()
    parts = children if isinstance(children, list) else [children]
    return len(array) * 8 + sum(_array_bytes(child) for child in parts)


def dictionaries_held(record_batch: Any) -> int:
    """The bytes of the dictionaries, at any depth, that a record batch holds."""
    return sum(_held(column) for column in record_batch.columns)


def _held(array: Any) -> int:
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    kind = array.type
    if pa.types.is_dictionary(kind):
        return int(array.dictionary.nbytes)
    if not holds_dictionary(kind):
        return 0
    if pa.types.is_struct(kind):  # its fields whole: their dictionaries are what counts
        return sum(_held(array.field(i)) for i in range(kind.num_fields))
    return _held(array.values)  # a list's (maps' are decoded by understood)


def dictionary_sizes(array: Any) -> list[int | None]:
    """Per leaf column of an Arrow array (a record batch's column), depth first, as a
    Parquet schema numbers its leaves: the entries of its dictionary, or None where it
    is not one."""
    sizes: list[int | None] = []
    _sizes(array, sizes)
    return sizes


def _sizes(array: Any, sizes: list[int | None]) -> None:
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    kind = array.type
    if pa.types.is_dictionary(kind):
        sizes.append(len(array.dictionary))
    elif not holds_dictionary(kind):
        sizes.extend([None] * leaf_count(kind))
    elif pa.types.is_struct(kind):
        for i in range(kind.num_fields):
            _sizes(array.field(i), sizes)
    elif pa.types.is_map(kind):
        _sizes(array.keys, sizes)
        _sizes(array.items, sizes)
    else:  # a list's values
        _sizes(array.values, sizes)


@lru_cache(maxsize=256)
def leaf_count(kind: Any) -> int:
    """The leaf columns of an Arrow type (a Parquet column's leaves): an extension type
    is its storage's."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    if isinstance(kind, pa.BaseExtensionType):
        return leaf_count(kind.storage_type)
    return max(1, sum(leaf_count(kind.field(i).type) for i in range(kind.num_fields)))


def _dictionary_bytes(array: Any) -> int:
    """A dictionary array's size decoded: each row its value's bytes (texts, binaries)
    and an offset; a value of a fixed width, that width."""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader
    from pyarrow._compute import call_function  # noqa: PLC0415 - see parquet._arrow_filter

    values = array.dictionary
    kind = values.type
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    ):
        lengths = call_function("take", [call_function("binary_length", [values]), array.indices])
        return len(array) * 8 + int(call_function("sum", [lengths]).as_py() or 0)
    if len(values) == 0:
        return int(array.indices.nbytes)
    return len(array) * max(1, _array_bytes(values) // len(values))


@lru_cache(maxsize=256)
def holds_dictionary(kind: Any) -> bool:
    """Is there a dictionary in this Arrow type, at any depth?"""
    import pyarrow as pa  # noqa: PLC0415 - loaded already by the reader

    if pa.types.is_dictionary(kind):
        return True
    if isinstance(kind, pa.BaseExtensionType):  # read as its storage
        return holds_dictionary(kind.storage_type)
    return any(holds_dictionary(kind.field(i).type) for i in range(kind.num_fields))
