"""What reading found, checked before the hunt goes on: a run that read nothing it could
use is an error, never a silent zero; and the warnings each file's reading left."""

from __future__ import annotations

from egress_offline.engine.results import Counts
from egress_offline.errors import InputError
from egress_offline.readers import FileReport

__all__ = ["check_understood", "file_warnings"]


def check_understood(files: list[FileReport], counts: Counts, *, reader: str = "the hunt") -> None:
    """Raise :class:`InputError` when every record read is malformed, or when no record
    holds a field ``reader`` reads: "0 rows" would then say nothing of the data."""
    if counts.records and counts.valid == 0:
        first = next((f for f in files if f.positions), None)
        where = f" (first: {first.name}, {first.positions[0]})" if first else ""
        raise InputError(
            f"every one of the {counts.records:,} records read is malformed{where}, so "
            f"{reader} read nothing; check the files' layout and encoding (an export "
            "re-saved by another tool?) and export them again",
            file=first.name if first else None,
        )
    if counts.valid and not any(f.understood for f in files):
        raise InputError(
            f"none of the {counts.valid:,} records read holds a field {reader} reads, in "
            "any layout this tool knows; see the inputs' layout in the report, or export "
            "Elastic Defend network events (logs-endpoint.events.network-*)"
        )


def file_warnings(files: list[FileReport]) -> list[str]:
    """Each file's: every record malformed; no record holding a field read; values read
    as missing; what its reader noted; documents read twice, counted once."""
    notes: list[str] = []
    for file in files:
        if file.records and file.malformed == file.records:
            notes.append(f"{file.name}: every one of its {file.records:,} records is malformed")
        elif file.records > file.malformed and not file.understood:
            notes.append(
                f"{file.name}: none of its {file.records - file.malformed:,} records holds a "
                "field the hunt reads (its layout is none this tool knows?)"
            )
        if file.unreadable:
            first = "; ".join(file.unreadable_first)
            notes.append(
                f"{file.name}: {file.unreadable:,} values could not be read as their field's "
                f"type and were read as missing (first: {first})"
            )
        notes.extend(f"{file.name}: {note}" for note in dict.fromkeys(file.notes))
    return notes
