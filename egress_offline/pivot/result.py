"""What a pivot gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from egress_offline.pivot.queries import esql_query, kql_filter
from egress_offline.readers import FileReport

__all__ = ["EntityPivot", "PivotResult"]


@dataclass
class EntityPivot:
    """What the export holds about one ``process.entity_id``."""

    entity_id: str
    events: int = 0  # its own events (network, process, any other)
    started: str | None = None  # its start event's @timestamp; None without one
    first_seen: str | None = None  # the @timestamp of the first of its own events
    process: dict[str, Any] | None = None  # its start event, else what its events say
    process_source: str | None = None  # "start event" or "other events"
    parent: dict[str, Any] | None = None  # the parent's start event
    children: list[dict[str, Any]] = field(default_factory=list)
    network: list[dict[str, Any]] = field(default_factory=list)  # per destination

    @property
    def found(self) -> bool:
        return self.events > 0 or bool(self.children)

    def as_dict(self) -> dict[str, Any]:
        return {
            "entity_id": self.entity_id,
            "found": self.found,
            "events": self.events,
            "started": self.started,
            "first_seen": self.first_seen,
            "process": self.process,
            "process_source": self.process_source,
            "parent": self.parent,
            "children": self.children,
            "network": self.network,
            "esql": esql_query([self.entity_id]),
            "kql": kql_filter([self.entity_id]),
        }


@dataclass
class PivotResult:
    entities: list[EntityPivot]
    files: list[FileReport]
    skipped: list[str]
    records: int = 0
    malformed: int = 0
    elapsed_seconds: float = 0.0
    started_ms: int | None = None  # when the run started, epoch ms (UTC)

    @property
    def unknown(self) -> list[str]:
        return [e.entity_id for e in self.entities if not e.found]

    def as_dict(self) -> dict[str, Any]:
        ids = [e.entity_id for e in self.entities]
        return {
            "entities": [e.as_dict() for e in self.entities],
            "unknown": self.unknown,
            "esql": esql_query(ids),
            "kql": kql_filter(ids),
        }
