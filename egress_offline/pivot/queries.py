"""Queries for a live cluster, to go on from a pivot: ES|QL and KQL for the same ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = ["esql_query", "kql_filter"]

_KEEP: Final = (
    "@timestamp, event.category, event.action, process.entity_id, process.parent.entity_id, "
    "process.executable, process.command_line, destination.address, destination.ip, "
    "destination.port, source.bytes, destination.bytes"
)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def esql_query(ids: Sequence[str]) -> str:
    """An ES|QL query for the ids' events and their children's, in time order."""
    listed = ", ".join(_quoted(i) for i in ids)
    return (
        "FROM logs-endpoint.events.*\n"
        f"| WHERE process.entity_id IN ({listed}) OR process.parent.entity_id IN ({listed})\n"
        "| SORT @timestamp\n"
        f"| KEEP {_KEEP}\n"
        "| LIMIT 10000"
    )


def kql_filter(ids: Sequence[str]) -> str:
    """A KQL filter (Discover, Timeline) for the same events."""
    listed = " or ".join(_quoted(i) for i in ids)
    return f"process.entity_id : ({listed}) or process.parent.entity_id : ({listed})"
