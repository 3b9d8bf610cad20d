"""The HTML report of a pivot: per entity id, the process tree (parent, the process, its
children), its network per destination as a timeline, and the queries to go on with."""

from __future__ import annotations

from typing import Any, Final

from egress_offline.html.charts import timeline
from egress_offline.html.page import Page, text
from egress_offline.html.sections import evidence, key_values, outputs_written, section, table
from egress_offline.pivot import PivotResult
from egress_offline.timetext import iso_ms

__all__ = ["pivot_html"]

_NODE_FIELDS: Final = ("@timestamp", "process.pid", "user.name", "host.name")
_CHILD_COLUMNS: Final = (
    "@timestamp",
    "process.pid",
    "process.executable",
    "process.command_line",
    "process.entity_id",
    "events",
    "source",
)
_NETWORK_COLUMNS: Final = (
    "first_seen",
    "last_seen",
    "destination.address",
    "destination.ip",
    "destination.port",
    "bytes_out",
    "bytes_in",
    "connections",
    "events",
    "event.action",
)


def pivot_html(result: PivotResult, *, version: str,
               outputs: list[dict[str, Any]] | None = None) -> bytes:  # fmt: skip
    """The pivot's report page: self-contained, nothing fetched when opened. ``outputs``:
    the files the run wrote before the page, with their SHA-256."""
    payload = result.as_dict()
    entities = payload["entities"]
    found = sum(1 for entity in entities if entity["found"])
    started = iso_ms(result.started_ms) or "unknown"
    page = Page(
        title="egress-offline pivot",
        subtitle=f"{found:,} of {len(entities):,} entity ids found &middot; run started "
        f"{started} &middot; {result.elapsed_seconds:.2f} s &middot; egress-offline "
        f"{text(version)}",
        nav=[
            ("summary", "Summary"),
            ("evidence", "Evidence"),
            *[(f"entity-{n}", f"Entity {n}") for n in range(1, min(len(entities), 20) + 1)],
            ("queries", "Queries"),
        ],
    )
    summary = key_values(
        [
            ("run started (UTC)", started),
            ("elapsed_seconds", round(result.elapsed_seconds, 3)),
            ("records read", result.records),
            ("malformed, skipped", result.malformed),
            ("entity ids", len(entities)),
            ("found", found),
            ("not found", ", ".join(payload["unknown"]) or "none"),
        ]
    )
    page.add(section("summary", "Summary", summary + outputs_written(outputs or [])))
    page.add(section("evidence", "Evidence", evidence(result.files, result.skipped)))
    for number, entity in enumerate(entities, 1):
        page.add(section(f"entity-{number}", f"Entity {number}", _entity(page, entity)))
    queries = (
        f"<h3>ES|QL</h3><pre>{_lines(payload['esql'])}</pre>"
        f"<h3>KQL</h3><pre>{_lines(payload['kql'])}</pre>"
    )
    page.add(section("queries", "Queries for every id, to go on with on a cluster", queries))
    return page.render()


def _lines(query: str) -> str:
    """A query of ours, its lines kept (the ids in it escaped as every value is)."""
    return "\n".join(text(line) for line in query.split("\n"))


def _entity(page: Page, entity: dict[str, Any]) -> str:
    parts = [f'<p class="mono">{text(entity["entity_id"])}</p>']
    if not entity["found"]:
        return parts[0] + '<p class="warn">No event of the export holds this id.</p>'
    parts.append(
        f'<p class="note">{entity["events"]:,} events; the process from its '
        f"{text(entity['process_source'] or 'events')}.</p>"
    )
    parts.append("<h3>Process tree</h3>" + _tree(entity))
    if entity["process"]:
        parts.append("<h3>The process</h3>" + key_values(entity["process"].items()))
    children = entity["children"]
    if children:
        rows = [[child.get(name) for name in _CHILD_COLUMNS] for child in children]
        parts.append(
            f"<h3>Children ({len(children):,})</h3>"
            + table(
                _CHILD_COLUMNS,
                rows,
                numeric=("events",),
                mono=("process.executable", "process.command_line", "process.entity_id"),
                total=len(rows),
            )
        )
    network = entity["network"]
    parts.append(f"<h3>Network, per destination ({len(network):,})</h3>")
    if network:
        height = 120 + 34 * min(len(network), 40)
        parts.append(page.figure(timeline(network), height=height))
        rows = [[row.get(name) for name in _NETWORK_COLUMNS] for row in network]
        parts.append(
            table(
                _NETWORK_COLUMNS,
                rows,
                numeric=("bytes_out", "bytes_in", "connections", "events"),
                mono=("destination.address", "destination.ip"),
                total=len(rows),
            )
        )
    else:
        parts.append('<p class="note">No network event of this process.</p>')
    return "\n".join(parts)


def _node(role: str, process: dict[str, Any] | None, entity_id: Any) -> str:
    """One process of the tree: its executable, pid, start, user and host, command line
    and entity id; what the export does not hold is said so."""
    if process is None:
        return (
            f'<span class="role">{role}</span> <span class="note">no start event in the '
            f'export</span> <span class="mono note">{text(entity_id)}</span>'
        )
    facts = " &middot; ".join(
        f"{name.removeprefix('process.')} {text(process.get(name))}"
        for name in _NODE_FIELDS
        if process.get(name) is not None
    )
    command = process.get("process.command_line")
    return (
        f'<span class="role">{role}</span> <b class="mono">'
        f"{text(process.get('process.executable') or '(executable unknown)')}</b>"
        f'<br><span class="note">{facts}</span>'
        + (f"<br><code>{text(command)}</code>" if command is not None else "")
        + f'<br><span class="mono note">{text(entity_id)}</span>'
    )


def _tree(entity: dict[str, Any]) -> str:
    """Parent, the process, its children, as nested lists."""
    process = entity["process"] or {}
    children = "".join(
        f"<li>{_node('child', child, child.get('process.entity_id'))}</li>"
        for child in entity["children"]
    )
    own = (
        f'<li class="self">{_node("process", entity["process"], entity["entity_id"])}'
        + (f"<ul>{children}</ul>" if children else "")
        + "</li>"
    )
    parent_id = process.get("process.parent.entity_id")
    if entity["parent"] is None and parent_id is None:
        return f'<ul class="tree">{own}</ul>'
    parent = entity["parent"]
    if parent is None and process.get("process.parent.executable") is not None:
        parent = {"process.executable": process.get("process.parent.executable")}
    return f'<ul class="tree"><li>{_node("parent", parent, parent_id)}<ul>{own}</ul></li></ul>'
