"""The Elastic Common Schema fields the hunt reads, and where a document may hold them.

An export may write a field nested (``{"host": {"os": {"family": ...}}}``), dotted
(``{"host.os.family": ...}``) or any mix of the two (``{"host.os": {"family": ...}}``).
Elasticsearch indexes all of these as the same field, so the reader looks in every one of
those places and merges what it finds, as the cluster would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Final

import polars as pl

__all__ = [
    "ACTION",
    "CATEGORY",
    "CONTEXT_FIELDS",
    "DEST_ADDRESS",
    "DEST_AS_ORG",
    "DEST_IP",
    "DEST_PORT",
    "ENTITY_ID",
    "EXECUTABLE",
    "FIELDS",
    "GROUP_FIELDS",
    "HOST_NAME",
    "HUNT",
    "KEYWORD_FIELDS",
    "META_ID",
    "META_INDEX",
    "OS_FAMILY",
    "SOURCE_BYTES",
    "TEXT_LIST",
    "TIMESTAMP",
    "USER_NAME",
    "FieldSet",
    "key_paths",
    "nested_path",
]

TIMESTAMP: Final = "@timestamp"
OS_FAMILY: Final = "host.os.family"
CATEGORY: Final = "event.category"
ACTION: Final = "event.action"
DEST_IP: Final = "destination.ip"
ENTITY_ID: Final = "process.entity_id"
DEST_ADDRESS: Final = "destination.address"
EXECUTABLE: Final = "process.executable"
SOURCE_BYTES: Final = "source.bytes"
HOST_NAME: Final = "host.name"
USER_NAME: Final = "user.name"
DEST_PORT: Final = "destination.port"
DEST_AS_ORG: Final = "destination.as.organization.name"

#: The grouping keys of the query, in its output order.
GROUP_FIELDS: Final = (ENTITY_ID, DEST_ADDRESS, EXECUTABLE)
#: Fields reported beside each flagged group to help triage.
CONTEXT_FIELDS: Final = (HOST_NAME, USER_NAME, DEST_PORT, DEST_AS_ORG)
#: Every field the hunt decodes; nothing else in a document is looked at.
FIELDS: Final = (
    TIMESTAMP,
    OS_FAMILY,
    CATEGORY,
    ACTION,
    DEST_IP,
    *GROUP_FIELDS,
    SOURCE_BYTES,
    *CONTEXT_FIELDS,
)
#: Keyword-like fields: Elasticsearch stores their values as a sorted set, so a value
#: repeated in one document counts once. ``source.bytes`` (a long) keeps repeats.
KEYWORD_FIELDS: Final = frozenset(FIELDS) - {SOURCE_BYTES, TIMESTAMP}

#: Where a record says which document it is (a search hit, an esArchiver entry, a _bulk
#: action): the same ``_index`` and ``_id`` are the same document, counted once.
META_INDEX: Final = "_index"
META_ID: Final = "_id"

#: Every value is decoded as a list of its JSON text: a scalar becomes a one-element list,
#: numbers keep their digits, so no field's type can make a document unreadable.
TEXT_LIST: Final = pl.List(pl.String)


@cache
def key_paths(field: str) -> tuple[tuple[str, ...], ...]:
    """Every way of splitting ``field`` into object keys.

    ``host.os.family`` -> ``(host, os, family)``, ``(host, os.family)``,
    ``(host.os, family)``, ``(host.os.family,)``.
    """
    parts = field.split(".")
    paths = []
    for mask in range(1 << (len(parts) - 1)):
        path: list[str] = [parts[0]]
        for i, part in enumerate(parts[1:]):
            if mask >> i & 1:
                path[-1] += "." + part
            else:
                path.append(part)
        paths.append(tuple(path))
    return tuple(paths)


def _struct_of(paths: list[tuple[str, ...]]) -> pl.Struct:
    """The nested struct dtype holding a text list at each of ``paths``."""
    tree: dict[str, object] = {}
    for path in paths:
        node = tree
        for key in path[:-1]:
            child = node.setdefault(key, {})
            assert isinstance(child, dict), f"{'.'.join(path)} collides with a leaf at {key}"
            node = child
        node[path[-1]] = TEXT_LIST

    def build(node: dict[str, object]) -> pl.Struct:
        return pl.Struct(
            {k: build(v) if isinstance(v, dict) else v for k, v in sorted(node.items())}  # type: ignore[misc]
        )

    return build(tree)


def nested_path(field: str) -> tuple[str, ...]:
    """The fully nested path of a field, as Elasticsearch stores ``_source``."""
    return key_paths(field)[0]


@dataclass(frozen=True)
class FieldSet:
    """The fields a reader decodes, each as a text list; nothing else in a document is
    looked at. The hunt and sweep read :data:`HUNT`; ``pivot`` reads more."""

    names: tuple[str, ...]
    reader: str = "the hunt"  # what reads them, and what it expects, for messages
    export: str = "Endpoint network export"

    @cached_property
    def nested_dtype(self) -> pl.Struct:
        """The fields at their nested paths only: what most lines of a real export hold."""
        return _struct_of([nested_path(name) for name in self.names])

    @cached_property
    def document_dtype(self) -> pl.Struct:
        """The struct one JSON record is decoded into: every way of writing each field, at
        the top level (a document), under ``_source`` (a search hit), under ``fields`` (a
        hit of the fields API: flat dotted names, every value an array) and under
        ``value.source`` (a Kibana esArchiver entry); and the document's ``_index`` and
        ``_id`` where the record carries them (a hit's own, or an entry's ``value.index``
        and ``value.id``)."""
        source = _struct_of([path for name in self.names for path in key_paths(name)])
        return pl.Struct(
            {
                **{f.name: f.dtype for f in source.fields},
                "_source": source,
                "fields": pl.Struct({name: TEXT_LIST for name in self.names}),
                "value": pl.Struct({"index": pl.String, "id": pl.String, "source": source}),
                META_INDEX: pl.String,
                META_ID: pl.String,
            }
        )

    @cached_property
    def hit_dtype(self) -> pl.Struct:
        """:attr:`document_dtype` without the wrappers of the fields API and of Kibana's
        archives: what a line that names neither (``"fields"``, ``"value"``) is decoded
        into, at less cost (their dozens of empty columns are not made)."""
        kept = ("fields", "value")
        return pl.Struct(
            {f.name: f.dtype for f in self.document_dtype.fields if f.name not in kept}
        )

    #: Lines that may hold a record wrapped as a fields-API hit or an esArchiver entry.
    wrapped: str = r'"(?:fields|value)"'

    @cached_property
    def general(self) -> str:
        """A pattern for lines that may hold a field somewhere other than its nested
        path: a hit's ``_source``, a ``\\u`` escape, or a dotted key that starts one of
        the fields (``"host.``, ``"os.``, ...)."""
        heads = sorted({part for name in self.names for part in name.split(".")[:-1]})
        dotted = [r'|"(?:' + "|".join(map(re.escape, heads)) + r")\."] if heads else []
        wrapped = r'|"(?:_id|_index|fields|value)"'  # hits and esArchiver entries
        return "".join([r"_source|\\u", wrapped, *dotted])


HUNT: Final = FieldSet(FIELDS)
