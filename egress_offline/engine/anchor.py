"""The check of the ``--now latest`` anchor. The window ends at the newest @timestamp of
the input, so one record dated years ahead (a host whose clock is wrong) moves it there:
the rest of the data, and the exfiltration in it, is then outside the window, and the
hunt finds nothing without a word.

When the window holds few records (at most :data:`FEW`, and at most 1 in
:data:`SHARE` of the valid ones), the inputs are looked at again: the records of the
window are decoded (their host, file and line), the lines of the window before it give
their timestamps only, and older lines are skipped unread, as in the first read. When the
newest of the others is more than a window before the oldest record of the window (none
in the window before is such a case), the anchor stands apart from the rest: only then
is every line's timestamp read, for where the rest ends; and a
warning names the hosts, files and lines of the records of the window, the gap, and the
``--now`` that the bulk of the data suggests. Memory holds at most :data:`FEW` records
of the window.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from egress_offline import fields as f
from egress_offline.engine.census import Tally
from egress_offline.engine.diagnosis import quoted, span
from egress_offline.engine.results import Counts, Diagnosis
from egress_offline.fields import FieldSet
from egress_offline.normalise import keyword
from egress_offline.readers import (
    FILE,
    POS,
    TS,
    FieldBatch,
    FileReport,
    Inputs,
    NewerThan,
    ReadPlan,
    ReadSession,
)
from egress_offline.scratch import Scratch
from egress_offline.spec import HuntSpec
from egress_offline.timetext import iso_ms

__all__ = ["FEW", "SHARE", "check_anchor"]

FEW: Final = 1000  # records in the window, at most, for the anchor to be looked at
SHARE: Final = 100  # ... and at most one valid record in SHARE
NAMED: Final = 3  # records of the window named by file and line
#: A floor below every timestamp: every record not decoded gives its timestamp.
_BEFORE_ALL: Final = -(2**63)
_LOOKED: Final = FieldSet((f.TIMESTAMP, f.HOST_NAME), reader="the anchor's check")


def check_anchor(inputs: Inputs, spec: HuntSpec, counts: Counts, scratch: Scratch, *,
                 now_ms: int | None, cutoff_ms: int | None) -> Diagnosis | None:  # fmt: skip
    """A diagnosis when the ``--now latest`` anchor stands apart from the rest of the
    data (see the module docstring), else None."""
    window_ms = spec.window_ms
    if spec.now != "latest" or window_ms is None or now_ms is None or cutoff_ms is None:
        return None
    held = counts.time_window
    if held == 0 or held > FEW or held * SHARE > counts.valid:
        return None
    # first only the lines of the window and of the window before it: older lines are
    # skipped unread, as in the first read
    inside, rest_ms, reports = _look(
        inputs, spec, scratch, window_ms=window_ms, cutoff_ms=cutoff_ms,
        floor_ms=cutoff_ms - window_ms,
    )  # fmt: skip
    if inside.height == 0:
        return None
    oldest = int(inside.get_column(TS).min())  # type: ignore[arg-type]
    if rest_ms is not None and oldest - rest_ms <= window_ms:
        return None
    if rest_ms is None:  # the rest ends more than a window before: when, every line says
        rest_ms = _look(
            inputs, spec, scratch, window_ms=window_ms, cutoff_ms=cutoff_ms, floor_ms=_BEFORE_ALL
        )[1]
        if rest_ms is None:
            return None
    return _outlying(inside, rest_ms, reports, now_ms=now_ms, valid=counts.valid)


def _look(inputs: Inputs, spec: HuntSpec, scratch: Scratch, *, window_ms: int,
          cutoff_ms: int, floor_ms: int) -> tuple[pl.DataFrame, int | None, list[FileReport]]:  # fmt: skip
    """The records after ``cutoff_ms`` (file, position, timestamp, host; at most
    :data:`FEW`), and the newest timestamp at or before it and after ``floor_ms`` (lines
    at or before ``floor_ms`` are skipped unread)."""
    plan = ReadPlan(
        fields=_LOOKED,
        prefilter=NewerThan(cutoff_ms),
        window_ms=window_ms,
        floor_ms=floor_ms,
        csv_timezone=spec.csv_timezone,
    )
    inside: list[pl.DataFrame] = []
    kept = 0
    rest: int | None = None
    with ReadSession(inputs, plan, scratch) as session:
        for item in session:
            if isinstance(item, FieldBatch):
                frame = item.frame
                newer = pl.col(TS) > cutoff_ms
                older = frame.filter(~newer).get_column(TS).max()
                if kept < FEW:
                    found = frame.filter(newer).head(FEW - kept)
                    kept += found.height
                    inside.append(
                        found.select(
                            FILE, POS, TS, keyword(f.HOST_NAME).list.join(", ").alias("host")
                        )
                    )
            else:
                older = item.ms.filter(item.ms <= cutoff_ms).max()
            if older is not None:
                rest = int(older) if rest is None else max(rest, int(older))  # type: ignore[arg-type]
    schema = {FILE: pl.UInt32, POS: pl.Int64, TS: pl.Int64, "host": pl.String}
    frame = pl.concat(inside) if inside else pl.DataFrame(schema=schema)
    return frame, rest, session.reports


def _outlying(inside: pl.DataFrame, rest_ms: int, reports: list[FileReport], *,
              now_ms: int, valid: int) -> Diagnosis:  # fmt: skip
    count = inside.height
    oldest = int(inside.get_column(TS).min())  # type: ignore[arg-type]
    hosts = Tally()
    hosts.add(inside.group_by("host").len().fill_null("").rows())
    host_text = _hosts(hosts)
    named = inside.sort(TS, FILE, POS, descending=[True, False, False]).head(NAMED)
    places = [
        f"{reports[number].name} {reports[number].unit} {position}"
        for number, position in named.select(FILE, POS).iter_rows()
    ]
    where = ", ".join(places) + (
        f", and {count - len(places):,} more" if count > len(places) else ""
    )
    records = "1 record" if count == 1 else f"{count:,} records"
    suggested = iso_ms(rest_ms)
    message = (
        f"--now latest: the newest @timestamp, {iso_ms(now_ms)}, stands apart: the window "
        f"it anchors holds {records} of the {valid:,}, from {host_text} ({where}), and the "
        f"rest of the data ends at {suggested}, {span(oldest - rest_ms)} earlier, outside the "
        f"window (a host's clock may be wrong); the bulk of the data suggests --now {suggested}"
    )
    data = {
        "anchor": iso_ms(now_ms),
        "records_in_window": count,
        "hosts": [{"host.name": host or None, "records": n} for host, n in hosts.top(10)],
        "records": [
            {"path": reports[number].name, reports[number].unit: position, "@timestamp": iso_ms(ms)}
            for number, position, ms in named.select(FILE, POS, TS).iter_rows()
        ],
        "rest_ends": suggested,
        "gap_ms": oldest - rest_ms,
        "suggested_now": suggested,
    }
    return Diagnosis("anchor", valid, count, message, data, alert=True)


def _hosts(hosts: Tally) -> str:
    top = hosts.top(3)
    names = [("no host.name" if not host else f"host {quoted(host)}", n) for host, n in top]
    if len(names) == 1 and not hosts.others:
        return names[0][0]
    shown = ", ".join(f"{name} ({n:,})" for name, n in names)
    rest = hosts.total - sum(n for _, n in top)
    return shown + (f", and others ({rest:,})" if rest else "")
