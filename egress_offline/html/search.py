"""The HTML report of a hunt or a sweep: parameters and evidence, the funnel, the flagged
rows, and each flagged group's bytes over time against the threshold."""

from __future__ import annotations

import hashlib
from typing import Any, Final

import polars as pl

from egress_offline import fields as f
from egress_offline.engine import GroupSeries, HuntResult
from egress_offline.engine.long_texts import replace_long
from egress_offline.engine.series import MAX_GROUPS
from egress_offline.html.charts import funnel, series_chart
from egress_offline.html.page import Page, text
from egress_offline.html.sections import (
    evidence,
    key_values,
    outputs_written,
    rows_table,
    section,
    table,
    warnings,
)
from egress_offline.readers import tuning
from egress_offline.report import report_dict, sweep_report_dict
from egress_offline.sweep import PEAK_END, PEAK_START, SweepResult
from egress_offline.timetext import iso_ms, times_as_text, within_python
from egress_offline.writers import human_bytes

__all__ = ["hunt_html", "sweep_html"]

_NAV = [
    ("flagged", "Flagged"),
    ("funnel", "Funnel"),
    ("groups", "Over time"),
    ("parameters", "Parameters"),
    ("evidence", "Evidence"),
]


def hunt_html(result: HuntResult, *, version: str,
              outputs: list[dict[str, Any]] | None = None) -> bytes:  # fmt: skip
    """The hunt's report page: self-contained, nothing fetched when opened. ``outputs``:
    the files the run wrote before the page, with their SHA-256 (as in the report)."""
    report = report_dict(result, version=version, outputs=outputs)
    spec = result.spec
    flagged = f"{result.counts.flagged:,} flagged (>= {human_bytes(spec.threshold)})"
    window = (result.cutoff, result.now) if spec.window is not None else None
    if window is None:
        step = "any time (no window)"
        note = "No window (--all-time): the cumulative sum counts every event of the group."
    else:
        step = "@timestamp in window"
        note = "The shaded band is the window; the cumulative sum counts the group's events in it."
    return _page(
        result,
        report,
        command="hunt",
        title=str(report["hunt"]),
        flagged=flagged,
        time_step=step,
        chart=lambda series, _row: series_chart(series, threshold=spec.threshold, window=window),
        chart_note=f"{note} It ends at total_bytes_out.",
    )


def sweep_html(result: SweepResult, *, version: str,
               outputs: list[dict[str, Any]] | None = None) -> bytes:  # fmt: skip
    """The sweep's report page: each group over the whole period, its peak window shaded;
    ``outputs`` as for :func:`hunt_html`."""
    report = sweep_report_dict(result, version=version, outputs=outputs)
    spec = result.spec
    flagged = (
        f"{result.counts.flagged:,} flagged (>= {human_bytes(spec.threshold)} in any {spec.window})"
    )

    def chart(series: GroupSeries, row: dict[str, Any]) -> Any:
        peak = (row[PEAK_START], row[PEAK_END], spec.window_ms)
        return series_chart(series, threshold=spec.threshold, peak=peak)

    return _page(
        result,
        report,
        command="sweep",
        title=str(report["sweep"]),
        flagged=flagged,
        time_step="@timestamp in period",
        chart=chart,
        chart_note="The cumulative sum runs over the whole period; the shaded band is the "
        "peak window, and the dashed line is the threshold above where the sum stood "
        "before it: the group is flagged because the sum crosses that line within one "
        "window.",
    )


#: Characters of a long text the page shows (the rows' file holds it whole).
_SHOWN: Final = 1_024


def shortened(value: str) -> str:
    """A text as the page shows it: whole, or, longer than
    :data:`~egress_offline.readers.tuning.LONG_TEXT` (no real key or context is), its
    first characters, its length and its SHA-256. Whole, two 40 MiB executables took
    1.6 GB and a page of 234 MB; eight, over 3 GB."""
    data = value.encode()
    if len(data) <= tuning.LONG_TEXT:
        return value
    digest = hashlib.sha256(data).hexdigest()
    return f"{value[:_SHOWN]}... (shortened here: {len(data):,} bytes, sha256 {digest})"


def _shown(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with every long text :func:`shortened`."""
    texts = [name for name, kind in rows.schema.items() if kind in (pl.String, pl.List(pl.String))]
    return replace_long(rows, texts, shortened)


def _page(
    result: HuntResult | SweepResult,
    report: dict[str, Any],
    *,
    command: str,
    title: str,
    flagged: str,
    time_step: str,
    chart: Any,
    chart_note: str,
) -> bytes:
    started = iso_ms(result.started_ms) or "unknown"
    page = Page(
        title=f"egress-offline {command}: {text(title)}",
        subtitle=f"{text(flagged)} &middot; run started {started} &middot; "
        f"{result.elapsed_seconds:.2f} s &middot; egress-offline {text(report['version'])}",
        nav=_NAV,
    )
    # the findings first, then how they were found, then the record of the run
    # the warnings, then why nothing was flagged (the summary's diagnosis lines)
    told = [d.message for d in result.diagnoses if d.message not in result.warnings]
    page.add(warnings(result.warnings + told))
    rows = _shown(result.rows)
    page.add(section("flagged", f"Flagged groups ({result.counts.flagged:,})", rows_table(rows)))
    page.add(section("funnel", "From records to flagged groups", _funnel(page, result, time_step)))
    page.add(
        section(
            "groups",
            "Each flagged group over time",
            _groups(page, result, rows, chart, chart_note),
        )
    )
    page.add(
        section(
            "parameters",
            "The run: parameters and files written",
            _parameters(report, started) + outputs_written(report["outputs"]),
        )
    )
    page.add(
        section("evidence", "Evidence: the inputs read", evidence(result.files, result.skipped))
    )
    return page.render()


def _parameters(report: dict[str, Any], started: str) -> str:
    pairs = [("run started (UTC)", started), ("elapsed_seconds", report["elapsed_seconds"])]
    for name, value in report["parameters"].items():
        pairs.append((name, ", ".join(map(str, value)) if isinstance(value, list) else value))
    data = report["data_time_range"]
    pairs.append(("data time range", f"{data['first'] or '-'} .. {data['last'] or '-'}"))
    if "partitions" in report:
        pairs.append(("partitions", report["partitions"]))
    return key_values(pairs)


def _funnel(page: Page, result: HuntResult | SweepResult, time_step: str) -> str:
    counts = result.counts
    spec = result.spec
    steps = [
        ("records read", counts.records),
        ("valid", counts.valid),
        (time_step, counts.time_window),
        (text(spec.event_label), counts.event_match),
        ("destination.ip public", counts.public_destination),
        ("groups", counts.groups),
        (f"flagged (>= {human_bytes(spec.threshold)})", counts.flagged),
    ]
    extra = [("malformed, skipped", counts.malformed)]
    if counts.duplicates:
        extra.append(("same document again, dropped", counts.duplicates))
    numbers = table(("step", "count"), [*steps, *extra], numeric=("count",))
    chart = page.figure(funnel(steps), height=340)
    return (
        f'<div class="grid"><div>{chart}</div><div>{numbers}<p class="note">Each step counts '
        "what is left after its filter; groups are (process.entity_id, "
        "destination.address, process.executable).</p></div></div>"
    )


def _groups(page: Page, result: HuntResult | SweepResult, rows_shown: pl.DataFrame,
            chart: Any, note: str) -> str:  # fmt: skip
    if result.series is None:
        return '<p class="note">Not gathered: run with series=True (the CLI does).</p>'
    if not result.series:
        return '<p class="note">No group reached the threshold.</p>'
    keys = list(f.GROUP_FIELDS)
    # times past the year 9999 (a date field holds them) are shown as text, not charted
    drawn = within_python(rows_shown)
    shown = rows_shown if drawn else times_as_text(rows_shown)
    rows = {tuple(row[k] for k in keys): row for row in shown.iter_rows(named=True)}
    parts = [f'<p class="note">{note}</p>']
    if result.counts.flagged > len(result.series):
        parts.append(
            f'<p class="note">Charts for the first {len(result.series):,} of '
            f"{result.counts.flagged:,} flagged groups (at most {MAX_GROUPS}), largest first."
            "</p>"
        )
    for number, series in enumerate(result.series, 1):
        key = tuple(None if part is None else shortened(part) for part in series.key)
        row = rows[key]
        figure = chart(series, row) if drawn and within_python(series.points) else None
        parts.append(_group(page, number, series, row, figure))
    return "\n".join(parts)


def _group(page: Page, number: int, series: GroupSeries, row: dict[str, Any],
           figure: Any | None) -> str:  # fmt: skip
    # the row's keys are the group's (long ones shortened as in the table)
    destination, executable = row.get(f.DEST_ADDRESS), row.get(f.EXECUTABLE)
    amount = row.get("peak_bytes", row.get("total_bytes_out"))
    heading = (
        f'<h3 id="group-{number}">#{number} <span class="mono">{text(executable)}</span> '
        f'&rarr; <span class="mono">{text(destination)}</span> '
        f'<span class="flag">{human_bytes(amount)}</span></h3>'
    )
    details = key_values(
        (name, row.get(name))
        for name in (
            "process.entity_id",
            "host.name",
            "user.name",
            "peak_bytes",
            PEAK_START,
            PEAK_END,
            "total_bytes_out",
            "connections",
            "first_seen",
            "last_seen",
        )
        if name in row
    )
    notes = []
    if series.bucket_ms > 1:
        notes.append(
            f"{series.points.height:,} points: the events summed in buckets of "
            f"{series.bucket_ms:,} ms, each point at its bucket's last event; the cumulative "
            "sum is exact at every point."
        )
    placed = series.events
    if placed < (row.get("connections") or 0):
        notes.append(
            f"{row['connections'] - placed:,} events without a valid @timestamp are not drawn."
        )
    if figure is None:
        notes.append("Not charted: its times lie outside the years 1-9999.")
    note = "".join(f'<p class="note">{line}</p>' for line in notes)
    drawing = "" if figure is None else page.figure(figure)
    return f'{heading}<div class="group"><div>{details}{note}</div><div>{drawing}</div></div>'
