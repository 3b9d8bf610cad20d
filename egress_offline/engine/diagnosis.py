"""Why nothing was flagged, from the data: "0 rows" must mean "read it all, found
nothing", and say why.

The hunt is a funnel: the valid records, then those in the time window (the sweep's
period), the event matches (OS family, category and action), those with a public
``destination.ip``, those with a ``source.bytes`` that can be summed, the groups, and the
flagged ones. When nothing is flagged, each step that removed every record it was given,
or all but 1% or less of them, is named, with what the data holds there: the data's time
range against the window; the values of ``host.os.family``, ``event.category`` and
``event.action`` with their counts; how many events lack ``destination.ip``,
``source.bytes`` or a group key. The steps after one that kept nothing had nothing to
work on and are not named; the threshold is named whenever there were groups. An input
that held no record at all is named alone (the ``records`` step), with its files.

The counts of the event step's values come from a second read (:mod:`engine.census`),
made only when that step is named; everything else from what the first read counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from egress_offline import fields as f
from egress_offline.engine.census import MISSING, SEVERAL, Census, Tally
from egress_offline.engine.reduce import HAS_BYTES, N
from egress_offline.engine.results import Counts, Diagnosis
from egress_offline.engine.spill import Spill, scan_parts
from egress_offline.readers import FileReport
from egress_offline.spec import DEFAULT_ACTIONS, RowFilters
from egress_offline.timetext import iso_ms

__all__ = [
    "Diagnosis",
    "counted",
    "diagnose",
    "nearly_all",
    "period_step",
    "pivot_notes",
    "quoted",
    "records_step",
    "share",
    "span",
    "window_step",
]

#: Values shown per field.
SHOWN = 5


def nearly_all(given: int, kept: int) -> bool:
    """Did a step remove every record it was given, or all but 1% or less?"""
    return given > 0 and kept * 100 <= given


def share(part: int, whole: int) -> str:
    """``part`` as a percentage of ``whole``: ``0.03%``."""
    if whole <= 0 or part <= 0:
        return "0%"
    percent = 100 * part / whole
    return "under 0.01%" if percent < 0.01 else f"{percent:,.2f}%"


def span(ms: int) -> str:
    """A duration in its two largest units: ``1867d 8h``, ``9h 12m``, ``250ms``."""
    if ms < 1000:
        return f"{ms}ms"
    rest, parts = ms // 1000, []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size:,}{unit}")
            rest %= size
    return " ".join(parts[:2])


def counted(count: int, one: str, many: str | None = None) -> str:
    """``1 record``, ``2 records``; ``many`` when the plural is not ``one`` + s."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def _none_of(count: int, thing: str) -> str:
    """``none of the 3 records``; for one, ``no record (of 1)``."""
    return f"no {thing} (of 1)" if count == 1 else f"none of the {count:,} {thing}s"


def quoted(value: str) -> str:
    """A value of the data, quoted and cut short: values are the attacker's."""
    if value == MISSING:
        return "no value"
    if value == SEVERAL:
        return "several values"
    return "'" + (value if len(value) <= 80 else value[:77] + "...") + "'"


def _listed(tally: Tally) -> str:
    """The most common values of ``tally`` with their counts, and what the others add."""
    top = tally.top(SHOWN)
    shown = ", ".join(f"{quoted(value)} ({count:,})" for value, count in top)
    rest = tally.total - sum(count for _, count in top)
    if rest > 0:
        shown += f", and others ({rest:,})"
    return shown or "none"


def _values_data(tally: Tally) -> list[dict[str, Any]]:
    top = [(v, n) for v, n in tally.top(SHOWN + 2) if v not in (MISSING, SEVERAL)][:SHOWN]
    return [{"value": value, "records": count} for value, count in top]


def diagnose(spec: RowFilters, counts: Counts, spill: Spill, *, place: str,
             time_step: Callable[[], Diagnosis], census: Callable[[], Census],
             window: str | None = None, files: Sequence[FileReport] = ()
             ) -> list[Diagnosis]:  # fmt: skip
    """The steps to name when nothing was flagged (none otherwise). ``place`` names
    where the records are (``the window``); ``time_step`` describes the time step,
    ``census`` counts the event step's values (called only when that step is named);
    ``window`` is the sweep's sliding window, for the threshold's sentence; ``files``
    the files read, named when they held no record at all."""
    if counts.flagged:
        return []
    if counts.records == 0:  # nothing to hunt in: an empty export, or one cut to nothing
        return [records_step(files)]
    if not counts.valid:
        return []
    found: list[Diagnosis] = []
    if nearly_all(counts.valid, counts.time_window):
        found.append(time_step())
        if counts.time_window == 0:
            return found
    if nearly_all(counts.time_window, counts.event_match + counts.duplicates):
        found.append(_event_step(spec, counts, census(), place))
        if counts.event_match == 0:
            return found
    if nearly_all(counts.event_match, counts.public_destination):
        found.append(_destination_step(spec, counts))
        if counts.public_destination == 0:
            return found
    public = _public_facts(spill)
    if nearly_all(counts.public_destination, public["summable"]):
        found.append(_bytes_step(counts, public))
        if public["summable"] == 0:
            return found
    if counts.groups:
        found.append(_threshold_step(spec, counts, public, window))
    return found


_NAMED = 3  # files named in the sentence of an input that held no record


def records_step(files: Sequence[FileReport]) -> Diagnosis:
    """The input held no record at all (empty files, blank lines, ``[]``, Parquet of no
    rows): "0 rows" says nothing of any event, and an export cut to nothing looks alike
    (a damaged file's damage named beside it: its records may be past the damage)."""
    shown = [f"{f.name}, {counted(f.size, 'byte')}" + (f": {f.damage}" if f.damage else "")
             for f in files[:_NAMED]]  # fmt: skip
    more = [f"and {counted(len(files) - _NAMED, 'other file')}"] * (len(files) > _NAMED)
    named = "; ".join(shown + more)
    held = "no readable record" if any(f.damage for f in files) else "no record"
    message = (f"records: the input holds {held} ({named or 'no file'}), so there was nothing "
               "to hunt in; if the export should hold events, copy or export it again")  # fmt: skip
    data = {"files": len(files), "named": [file.name for file in files[:_NAMED]]}
    return Diagnosis("records", 0, 0, message, data, alert=True)


def _label(spec: RowFilters) -> str:
    """The events the step keeps: ``windows network disconnect_received``."""
    return spec.event_kinds if spec.os_families is None else spec.event_label


def _event_step(spec: RowFilters, counts: Counts, census: Census, place: str) -> Diagnosis:
    given, kept = counts.time_window, counts.event_match + counts.duplicates
    label = _label(spec)
    if kept == 0:
        head = f"event match: {_none_of(given, 'record')} in {place} is a {label} event"
    else:
        head = (
            f"event match: {kept:,} of the {given:,} records in {place} ({share(kept, given)}) "
            f"are {label} events"
        )
    wanted = {f.OS_FAMILY: spec.os_families, f.CATEGORY: spec.categories, f.ACTION: spec.actions}
    families = "any" if spec.os_families is None else ",".join(spec.os_families)
    others = {  # what a record that meets the other two conditions is
        f.OS_FAMILY: spec.event_kinds,
        f.CATEGORY: f"{families} {','.join(spec.actions)}",
        f.ACTION: f"{families} {','.join(spec.categories)}",
    }
    clauses = [
        _field_clause(name, values, census, others[name])
        for name, values in wanted.items()
        if values is not None and nearly_all(census.records, census.matching[name])
    ]
    if not clauses and census.records:
        alone = ", ".join(
            f"{name} {' or '.join(map(quoted, values))} in {census.matching[name]:,}"
            for name, values in wanted.items()
            if values is not None
        )
        clauses.append(f"alone, each condition holds in more records: {alone}")
    if census.sysmon or census.wfp:
        clauses.append(_windows_logs_clause(census))
    data = {
        "records_counted": census.records,
        "sysmon_event_3": census.sysmon,
        "windows_event_5156": census.wfp,
        "fields": {
            name: {
                "wanted": None if values is None else list(values),
                "matching": census.matching[name],
                "missing": census.values[name].get(MISSING),
                "several_values": census.values[name].get(SEVERAL),
                "distinct_values": len(census.values[name].counts),
                "values": _values_data(census.values[name]),
                "values_where_the_others_match": _values_data(census.beside[name]),
            }
            for name, values in wanted.items()
        },
    }
    if spec.os_families is not None:
        data["host_os_type_families"] = _values_data(census.typed)
    message = "; ".join([head, *clauses])
    return Diagnosis("event_match", given, kept, message, data, alert=kept == 0)


def _field_clause(name: str, wanted: tuple[str, ...], census: Census, others: str) -> str:
    """Why one condition of the event step holds in (nearly) no record, from the values
    the records hold: ``host.os.family is never 'Windows' (its values: ...)``. ``others``
    names the records that meet the other two conditions (``network disconnect_received``)."""
    matching, tally = census.matching[name], census.values[name]
    asked = " or ".join(map(quoted, wanted))
    clause = (
        f"{name} is never {asked}" if matching == 0 else f"{name} is {asked} in only {matching:,}"
    )
    if set(tally.counts) == {MISSING} and not tally.others:
        clause += " (no record has one)"
    else:
        clause += f" (its values: {_listed(tally)})"
    for value in wanted:
        alike = [
            (other, count)
            for other, count in tally.top(len(tally.counts))
            if other != value and other.casefold() == value.casefold()
        ]
        for other, count in alike[:2]:
            clause += (
                f"; ES|QL's == is case-sensitive, and the data has {quoted(other)} in "
                f"{count:,} records, {census.beside[name].get(other):,} of them {others} events"
            )
            if name == f.OS_FAMILY:
                clause += f": --os-family {other} matches them"
    if name == f.OS_FAMILY and census.typed.total:
        top = census.typed.top(1)[0][0]
        clause += (
            f"; the records whose host.os.type is {asked} have host.os.family "
            f"{_listed(census.typed)}"
        )
        if top not in (MISSING, SEVERAL):
            clause += f": --os-family {top} matches them"
    return clause


def _windows_logs_clause(census: Census) -> str:
    kinds = []
    if census.sysmon:
        kinds.append(
            f"{_are(census.sysmon)} Sysmon event 3 {_records(census.sysmon)} (event.provider "
            "Microsoft-Windows-Sysmon, event.code 3)"
        )
    if census.wfp:
        kinds.append(
            f"{_are(census.wfp)} Windows event 5156 {_records(census.wfp)} (event.provider "
            "Microsoft-Windows-Security-Auditing, event.code 5156)"
        )
    return (
        " and ".join(kinds) + ": this hunt reads Elastic Defend network events "
        "(logs-endpoint.events.network-*); Sysmon event 3 and Windows event 5156 do not "
        "log source.bytes, so it cannot run on them"
    )


def _are(count: int) -> str:
    return "1 is a" if count == 1 else f"{count:,} are"


def _records(count: int) -> str:
    return "record" if count == 1 else "records"


def _destination_step(spec: RowFilters, counts: Counts) -> Diagnosis:
    given, kept = counts.event_match, counts.public_destination
    events = counted(given, f"{_label(spec)} event")
    if kept == 0:
        head = (
            f"public destination: {_none_of(given, _label(spec) + ' event')} has a public "
            "destination.ip"
        )
    else:
        head = (
            f"public destination: {kept:,} of the {events} ({share(kept, given)}) "
            f"{'has' if kept == 1 else 'have'} a public destination.ip"
        )
    parts = []
    if counts.destination_missing:
        part = f"{counts.destination_missing:,} {_verb(counts.destination_missing, 'lack')}"
        part += " destination.ip"
        if counts.destination_address_only:
            part += (
                f" ({counts.destination_address_only:,} of them "
                f"{_verb(counts.destination_address_only, 'have')} a destination.address, "
                "which the query groups by but does not test)"
            )
        parts.append(part)
    if counts.destination_unreadable:
        n = counts.destination_unreadable
        parts.append(f"{n:,} {_verb(n, 'have')} a destination.ip that is not an IP address")
    if counts.destination_several:
        n = counts.destination_several
        parts.append(
            f"{n:,} {_verb(n, 'have')} several destination.ip values "
            "(CIDR_MATCH is null on several)"
        )
    if counts.destination_excluded:
        n = counts.destination_excluded
        parts.append(f"{n:,} {_verb(n, 'have')} one in the excluded ranges")
    message = head + (": " + ", ".join(parts) if parts else "")
    if counts.event_match_with_bytes == 0:
        message += (
            f"; {'it carries no' if given == 1 else 'none of them carries'} source.bytes "
            "either, so their bytes could not be summed"
        )
    data = {
        "missing_destination_ip": counts.destination_missing,
        "destination_address_only": counts.destination_address_only,
        "unreadable_destination_ip": counts.destination_unreadable,
        "several_destination_ip": counts.destination_several,
        "excluded_destination_ip": counts.destination_excluded,
        "with_source_bytes": counts.event_match_with_bytes,
    }
    return Diagnosis("public_destination", given, kept, message, data, alert=kept == 0)


def _verb(count: int, verb: str) -> str:
    """``verb`` (plural) agreeing with ``count``: ``1 has``, ``2 have``, ``1 lacks``."""
    if count != 1:
        return verb
    return "has" if verb == "have" else verb + "s"


def _public_facts(spill: Spill) -> dict[str, Any]:
    """Of the events with a public destination: how many carry a ``source.bytes`` that
    can be summed, hold one that cannot (not a long), lack it, and lack each group key."""
    empty = {"summable": 0, "unreadable": 0, "missing": 0, "lacking_group_key": {}}
    if not spill.public:
        return {**empty, "lacking_group_key": dict.fromkeys(f.GROUP_FIELDS, 0)}
    row = (
        scan_parts(spill.public)
        .select(
            (pl.col(N) > 0).sum().alias("summable"),
            (pl.col(HAS_BYTES) & (pl.col(N) == 0)).sum().alias("unreadable"),
            (~pl.col(HAS_BYTES)).sum().alias("missing"),
            *[(pl.col(name).list.len() == 0).sum().alias(name) for name in f.GROUP_FIELDS],
        )
        .collect(engine="streaming")
        .row(0, named=True)
    )
    facts = {name: int(row[name] or 0) for name in ("summable", "unreadable", "missing")}
    lacking = {name: int(row[name] or 0) for name in f.GROUP_FIELDS}
    return {**facts, "lacking_group_key": lacking}


def _bytes_step(counts: Counts, public: dict[str, Any]) -> Diagnosis:
    given, kept = counts.public_destination, public["summable"]
    events = counted(given, "event") + " with a public destination"
    if kept == 0:
        head = (
            f"source.bytes: {_none_of(given, 'event')} with a public destination carries a "
            "source.bytes that can be summed"
        )
    else:
        head = (
            f"source.bytes: {kept:,} of the {events} ({share(kept, given)}) "
            f"{_verb(kept, 'carry')} a source.bytes that can be summed"
        )
    parts = []
    if public["missing"]:
        parts.append(f"{public['missing']:,} {_verb(public['missing'], 'lack')} it")
    if public["unreadable"]:
        n = public["unreadable"]
        parts.append(f"{n:,} {_verb(n, 'hold')} values that are not longs")
    message = head + (": " + ", ".join(parts) if parts else "")
    message += "; a group without one sums to null and is never flagged"
    return Diagnosis("source_bytes", given, kept, message, dict(public), alert=kept == 0)


def _threshold_step(spec: RowFilters, counts: Counts, public: dict[str, Any],
                    window: str | None) -> Diagnosis:  # fmt: skip
    within = f" in any {window}" if window else ""
    head = f"threshold: {_none_of(counts.groups, 'group')} reaches {spec.threshold_text}{within}"
    largest = counts.largest
    if largest is None:
        message = head + ": no group's bytes could be summed (beyond a long?)"
    else:
        message = (
            f"{head}: the largest sent {largest:,} bytes ({share(largest, spec.threshold)} "
            "of the threshold)"
        )
    lacking = [
        f"{count:,} {_verb(count, 'lack')} {name}"
        for name, count in public["lacking_group_key"].items()
        if count
    ]
    if lacking:
        message += (
            f"; of the events summed, {', '.join(lacking)} (summed in a group whose key is null)"
        )
    data = {
        "threshold_bytes": spec.threshold,
        "largest_bytes": largest,
        "lacking_group_key": public["lacking_group_key"],
    }
    return Diagnosis("threshold", counts.groups, counts.flagged, message, data)


def window_step(*, valid: int, kept: int, now: str, cutoff_ms: int | None,
                first_ms: int | None, last_ms: int | None) -> Diagnosis:  # fmt: skip
    """The hunt's time step, named: the window beside the data's time range. ``now`` is
    the anchor's mode (``latest``, ``wall``, ``fixed``)."""
    data = {
        "now_mode": now,
        "window_start_exclusive": iso_ms(cutoff_ms),
        "data_first": iso_ms(first_ms),
        "data_last": iso_ms(last_ms),
    }
    if last_ms is None or cutoff_ms is None:
        message = (
            "time window: no record has a valid @timestamp, so no window can be placed; "
            "use --all-time to hunt without one"
        )
        return Diagnosis("time_window", valid, 0, message, data, alert=True)
    where = f"the window (after {iso_ms(cutoff_ms)})"
    ranged = f"the data runs from {iso_ms(first_ms)} to {iso_ms(last_ms)}"
    if kept == 0:
        message = (
            f"time window: {where} holds {_none_of(valid, 'record')}: {ranged}, "
            f"{span(cutoff_ms - last_ms)} before the window starts; --now latest anchors "
            "the window on the newest record, or use --all-time"
        )
    else:
        message = (
            f"time window: {where} holds {kept:,} of the {valid:,} records "
            f"({share(kept, valid)}): {ranged}"
        )
    return Diagnosis("time_window", valid, kept, message, data, alert=kept == 0)


def period_step(*, valid: int, kept: int, since_ms: int | None, until_ms: int | None,
                first_ms: int | None, last_ms: int | None) -> Diagnosis:  # fmt: skip
    """The sweep's time step, named: the period beside the data's time range."""
    data = {
        "since": iso_ms(since_ms),
        "until_exclusive": iso_ms(until_ms),
        "data_first": iso_ms(first_ms),
        "data_last": iso_ms(last_ms),
    }
    if last_ms is None:
        message = "period: no record has a valid @timestamp, so none can be placed in a window"
        return Diagnosis("period", valid, 0, message, data, alert=True)
    period = f"{iso_ms(since_ms) or 'the start'} .. {iso_ms(until_ms) or 'the end'}"
    held = "none" if kept == 0 else f"{kept:,}"
    message = (
        f"period: the period ({period}) holds {held} of the {valid:,} records"
        + (f" ({share(kept, valid)})" if kept else "")
        + f": the data runs from {iso_ms(first_ms)} to {iso_ms(last_ms)}"
    )
    return Diagnosis("period", valid, kept, message, data, alert=kept == 0)


def pivot_notes(entity_id: str, network: list[dict[str, Any]]) -> list[str]:
    """``pivot``'s part of the diagnosis, for one process: the fields the hunt needs
    that none of its finished connections (``disconnect_received``) carries, from its
    network timeline (one row per destination: ``destination.ip`` values, ``bytes_out``,
    ``connections``)."""
    done = [row for row in network if row.get("connections")]
    if not done:
        return []
    connections = sum(int(row["connections"]) for row in done)
    lacking = []
    if not any(row.get(f.DEST_IP) for row in done):
        lacking.append("destination.ip (the hunt's destination step drops such events)")
    if all(row.get("bytes_out") is None for row in done):
        lacking.append("source.bytes (the hunt cannot sum them)")
    if not lacking:
        return []
    finished = counted(connections, "finished connection")
    return [
        f"{entity_id}: none of its {finished} ({DEFAULT_ACTIONS[0]}) carries "
        + " or ".join(lacking)
    ]
