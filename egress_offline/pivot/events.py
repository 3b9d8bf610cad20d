"""The pivot's fields and the tests on them, shared by its other modules."""

from __future__ import annotations

from typing import Final

import polars as pl

from egress_offline import fields as f

__all__ = [
    "DEST_BYTES",
    "EVENT_TYPE",
    "PARENT_ID",
    "PIVOT_FIELDS",
    "PROCESS_FIELDS",
    "any_of",
    "has",
    "has_any",
    "is_start",
]

EVENT_TYPE: Final = "event.type"
PARENT_ID: Final = "process.parent.entity_id"
DEST_BYTES: Final = "destination.bytes"


#: What a process start event tells, in output order (ECS names).
PROCESS_FIELDS: Final = (
    f.TIMESTAMP,
    f.EXECUTABLE,
    "process.name",
    "process.pid",
    "process.command_line",
    PARENT_ID,
    "process.parent.executable",
    "process.hash.sha256",
    "process.hash.sha1",
    "process.hash.md5",
    "process.code_signature.exists",
    "process.code_signature.subject_name",
    "process.code_signature.trusted",
    "process.code_signature.status",
    f.USER_NAME,
    "user.domain",
    f.HOST_NAME,
)
PIVOT_FIELDS: Final = f.FieldSet(
    (
        *PROCESS_FIELDS,
        f.CATEGORY,
        f.ACTION,
        EVENT_TYPE,
        f.ENTITY_ID,
        f.DEST_ADDRESS,
        f.DEST_IP,
        f.DEST_PORT,
        f.SOURCE_BYTES,
        DEST_BYTES,
    ),
    reader="pivot",
    export="Endpoint export",
)


def any_of(name: str, values: list[str]) -> pl.Expr:
    return pl.col(name).list.eval(pl.element().is_in(values)).list.any().fill_null(False)


def has(name: str, value: str) -> pl.Expr:
    return pl.col(name).list.contains(value).fill_null(False)


def has_any(name: str, values: tuple[str, ...]) -> pl.Expr:
    """Does the text list hold any of ``values``."""
    return pl.any_horizontal([has(name, value) for value in values])


def is_start() -> pl.Expr:
    return has(f.CATEGORY, "process") & (has(EVENT_TYPE, "start") | has(f.ACTION, "start"))
