"""The run's account of itself: the summary for standard error and the JSON ``--report``.

The report is the record of what was run on which evidence: tool version, resolved
parameters, every input with its size and SHA-256, the counts of every step, the data's
own time range, what was flagged, and how long it took.
"""

from __future__ import annotations

import json
from typing import Any

from egress_offline.engine import HuntResult
from egress_offline.engine.diagnosis import pivot_notes
from egress_offline.pivot import PivotResult
from egress_offline.readers import FileReport
from egress_offline.sweep import SweepResult
from egress_offline.timetext import iso_ms
from egress_offline.writers import inert

__all__ = [
    "pivot_summary_lines",
    "report_dict",
    "report_json",
    "summary_lines",
    "sweep_report_dict",
    "sweep_report_json",
    "sweep_summary_lines",
]


def _window_text(result: HuntResult) -> str:
    spec = result.spec
    if spec.window is None:
        return "all time (no time filter)"
    anchor = spec.now if isinstance(spec.now, str) else "fixed"
    if result.now_ms is None:
        return f"{_duration(spec.window.total_seconds())} before now ({anchor}): no anchor"
    return (
        f"@timestamp > {iso_ms(result.cutoff_ms)}  (now {iso_ms(result.now_ms)} [{anchor}] "
        f"- {_duration(spec.window.total_seconds())})"
    )


def _duration(seconds: float) -> str:
    parts = []
    rest = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def summary_lines(result: HuntResult) -> list[str]:
    """A short human summary; every record is accounted for and the counts add up."""
    return _summary(
        result,
        time_step="@timestamp in window",
        flagged=f"flagged (>= {_threshold(result)})",
        where=f"window: {_window_text(result)}",
    )


def _threshold(result: HuntResult | SweepResult) -> str:
    """The threshold in bytes, and in the unit given: ``1000000000 bytes = 1 GB``."""
    spec = result.spec
    unit = spec.threshold_unit
    return f"{spec.threshold} bytes" + (f" = {unit}" if unit else "")


def sweep_summary_lines(result: SweepResult) -> list[str]:
    """The sweep's summary, in the same form."""
    spec = result.spec
    window = _duration(spec.window.total_seconds())
    period = f"{iso_ms(spec.since_ms) or 'the start'} .. {iso_ms(spec.until_ms) or 'the end'}"
    return _summary(
        result,
        time_step="@timestamp in period",
        flagged=f"flagged (>= {_threshold(result)} in any {window})",
        where=f"period: {period} (until exclusive); sliding window {window}",
    )


def _summary(result: HuntResult | SweepResult, *, time_step: str, flagged: str,
             where: str) -> list[str]:  # fmt: skip
    c = result.counts
    steps = [
        ("records read", c.records),
        ("  malformed, skipped", c.malformed),
        ("  valid", c.valid),
        (time_step, c.time_window),
        (result.spec.event_label, c.event_match),
        *([("  same document again, dropped", c.duplicates)] if c.duplicates else []),
        ("destination.ip public", c.public_destination),
        ("groups", c.groups),
        (flagged, c.flagged),
    ]
    width = max(len(label) for label, _ in steps) + 2
    lines = [f"{label:<{width}}{count:>12,}" for label, count in steps]
    lines += [
        where,
        f"data:   {iso_ms(result.first_ms) or '-'} .. {iso_ms(result.last_ms) or '-'}",
    ]
    note = result.spec.threshold_note
    if note is not None:
        lines.append(f"threshold: {note}")
    lines += _file_lines(result.files, result.skipped)
    lines.extend(
        f"diagnosis: {inert(found.message)}" for found in result.diagnoses if found.step != "anchor"
    )
    lines.extend(f"warning: {inert(note)}" for note in result.warnings)
    lines.append(f"elapsed {result.elapsed_seconds:.2f} s")
    return lines


def pivot_summary_lines(result: PivotResult) -> list[str]:
    """What pivot read and found, for standard error."""
    found = len(result.entities) - len(result.unknown)
    lines = [
        f"records read {result.records:>26,}",
        f"  malformed, skipped {result.malformed:>18,}",
        f"entity ids found {found:>22,} of {len(result.entities):,}",
    ]
    lines += [f"not found: {inert(entity)}" for entity in result.unknown]
    for entity in result.entities:
        lines += [
            f"diagnosis: {inert(note)}" for note in pivot_notes(entity.entity_id, entity.network)
        ]
    lines += _file_lines(result.files, result.skipped)
    lines.append(f"elapsed {result.elapsed_seconds:.2f} s")
    return lines


def _file_lines(files: list[FileReport], skipped: list[str]) -> list[str]:
    lines = []
    for file in files:
        if file.malformed or file.damage:
            where = "; ".join(file.positions)
            more = f" (first: {where})" if where else ""
            lines.append(f"{inert(file.name)}: {file.malformed:,} malformed skipped{more}")
            if file.damage:
                lines.append(f"{inert(file.name)}: {file.damage}")
        if file.duplicates:
            lines.append(
                f"{inert(file.name)}: {file.duplicates:,} records were documents read before "
                "(the same _index and _id): counted once"
            )
    for path in skipped[:10]:
        lines.append(f"skipped: {inert(path)}")
    if len(skipped) > 10:
        lines.append(f"skipped: ... and {len(skipped) - 10} more")
    return lines


def _inputs(files: list[FileReport]) -> list[dict[str, Any]]:
    return [
        {
            "path": file.name,
            "format": file.format,
            "compression": file.compression,
            "size_bytes": file.size,
            "sha256": file.sha256,
            "records": file.records,
            "malformed": file.malformed,
            "malformed_first": file.positions,
            "damage": file.damage,
            "reader": file.reader,
            "layout": file.layout,
            "encoding": file.encoding,
            "duplicates_dropped": file.duplicates,
            "unreadable_values": file.unreadable,
            "unreadable_first": file.unreadable_first,
            "notes": file.notes,
        }
        for file in files
    ]


def report_dict(result: HuntResult, *, version: str,
                outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """The report; ``outputs``: the files the run wrote, with their SHA-256."""
    spec = result.spec
    return _report(
        result,
        version=version,
        outputs=outputs,
        title={"hunt": "Egress Network Connections with Total Bytes Greater than Threshold"},
        parameters={
            "now_mode": spec.now if isinstance(spec.now, str) else "fixed",
            "now": iso_ms(result.now_ms),
            "window_seconds": None if spec.window is None else spec.window.total_seconds(),
            "window_start_exclusive": iso_ms(result.cutoff_ms),
        },
        time_key="after_time_window",
        extra_counts={"event_match_with_source_bytes": result.counts.event_match_with_bytes},
    )


def report_json(result: HuntResult, *, version: str,
                outputs: list[dict[str, Any]] | None = None) -> bytes:  # fmt: skip
    return _json(report_dict(result, version=version, outputs=outputs))


def sweep_report_dict(result: SweepResult, *, version: str,
                      outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    spec = result.spec
    return _report(
        result,
        version=version,
        outputs=outputs,
        title={
            "sweep": "Egress Network Connections with Total Bytes Greater than Threshold, "
            "in any sliding window"
        },
        parameters={
            "window_seconds": spec.window.total_seconds(),
            "since": iso_ms(spec.since_ms),
            "until_exclusive": iso_ms(spec.until_ms),
        },
        time_key="after_period",
        extra={"partitions": result.partitions},
    )


def _report(result: HuntResult | SweepResult, *, version: str, title: dict[str, Any],
            parameters: dict[str, Any], time_key: str,
            extra_counts: dict[str, Any] | None = None,
            extra: dict[str, Any] | None = None,
            outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    spec = result.spec
    counts = result.counts
    return {
        "tool": "egress-offline",
        "version": version,
        **title,
        "parameters": {
            **parameters,
            "os_families": None if spec.os_families is None else list(spec.os_families),
            "threshold_bytes": spec.threshold,
            "threshold_given": spec.threshold_given,
            "csv_timezone": spec.csv_timezone,
            "excluded_cidrs": [block.text for block in spec.cidrs],
            "strict": spec.strict,
        },
        "inputs": _inputs(result.files),
        "skipped_paths": result.skipped,
        "counts": {
            "records": counts.records,
            "malformed": counts.malformed,
            "valid": counts.valid,
            time_key: counts.time_window,
            "after_event_match": counts.event_match,
            "after_public_destination": counts.public_destination,
            "groups": counts.groups,
            "flagged": counts.flagged,
            "duplicates_dropped": counts.duplicates,
            **(extra_counts or {}),
        },
        **(extra or {}),
        "data_time_range": {"first": iso_ms(result.first_ms), "last": iso_ms(result.last_ms)},
        "diagnosis": [found.as_dict() for found in result.diagnoses],
        "warnings": result.warnings,
        "started": iso_ms(result.started_ms),
        "elapsed_seconds": round(result.elapsed_seconds, 3),
        "outputs": outputs or [],
    }


def sweep_report_json(result: SweepResult, *, version: str,
                      outputs: list[dict[str, Any]] | None = None) -> bytes:  # fmt: skip
    return _json(sweep_report_dict(result, version=version, outputs=outputs))


def _json(report: dict[str, Any]) -> bytes:
    return (json.dumps(report, indent=2) + "\n").encode("utf-8")
