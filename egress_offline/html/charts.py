"""The charts, as plotly figures: the funnel of counts, a flagged group's bytes over time
against the threshold, and pivot's per-destination timeline.

Chart data are numbers, times and this module's own labels; the only values from the
export a chart holds are pivot's destinations (its axis labels), escaped as HTML text, as
plotly reads labels as HTML-like markup (``<b>``, ``<a href>``) and shows entities as
their characters. Times are UTC, given to plotly without a zone (it has none)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final

from egress_offline.engine import GroupSeries
from egress_offline.html.page import plotly, text
from egress_offline.writers import human_bytes

__all__ = ["funnel", "series_chart", "timeline"]

_FONT: Final = {"family": "system-ui, sans-serif", "size": 12}
_CUMULATIVE: Final = "#1f6fb2"
_FLAG: Final = "#ab091e"
_MARKERS_UP_TO: Final = 300  # points drawn with markers; more, a line only


def _layout(**extra: Any) -> dict[str, Any]:
    return {
        "template": "plotly_white",
        "font": _FONT,
        "margin": {"l": 70, "r": 70, "t": 40, "b": 50},
        "hovermode": "closest",
        **extra,
    }


def byte_axis(top: int, title: str) -> dict[str, Any]:
    """A y axis from 0 past ``top`` bytes, ticked at powers of two in binary units (the
    threshold's 1 GiB is a tick, not 1.07 G)."""
    top = max(top, 1)
    step = 1 << max(0, math.ceil(math.log2(top / 5)))
    values = list(range(0, top + step, step))
    return {
        "title": {"text": title},
        "range": [0, top * 1.08],
        "tickvals": values,
        "ticktext": [_binary(value) for value in values],
    }


def _binary(count: int) -> str:
    """``768 MiB``, ``1 GiB``, ``1.25 GiB``: a tick's value, exact in its unit."""
    for power, unit in ((5, "PiB"), (4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if count >= 1024**power:
            return f"{count / 1024**power:.2f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{count} B"


def plot_time(moment: datetime | str | None) -> str | None:
    """A UTC time as plotly takes it: ``YYYY-MM-DD HH:MM:SS.mmm``, no zone."""
    if moment is None:
        return None
    if isinstance(moment, str):  # ISO-8601 with Z, as the reports write it
        return moment.replace("T", " ").removesuffix("Z")
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def funnel(steps: list[tuple[str, int]]) -> Any:
    """Records read down to the flagged groups, each step what is left after it."""
    go = plotly()
    labels = [label for label, _ in steps]
    return go.Figure(
        go.Funnel(
            y=labels,
            x=[count for _, count in steps],
            textinfo="value+percent initial",
            texttemplate="%{value:,} (%{percentInitial:.2%})",
            marker={"color": ["#9fb3c8"] * (len(steps) - 1) + [_FLAG]},
            hovertemplate="%{y}: %{x:,}<extra></extra>",
        ),
        layout=_layout(margin={"l": 230, "r": 30, "t": 34, "b": 10}),
    )


def series_chart(
    series: GroupSeries,
    *,
    threshold: int,
    window: tuple[datetime | None, datetime | None] | None = None,
    peak: tuple[datetime, datetime, int] | None = None,
) -> Any:
    """A group's cumulative bytes over time (a step line) and the bytes at each point
    (bars, right axis), against the threshold. ``window`` (hunt): the window's start
    (exclusive) and end, shaded, the threshold a line across. ``peak`` (sweep): the peak
    window's first and last event and the window's length in ms, shaded; the threshold
    is drawn from where the cumulative sum stood before the window, over the window's
    length: the line the cumulative sum crosses inside it."""
    go = plotly()
    points = series.points
    times = [plot_time(moment) for moment in points.get_column("time").to_list()]
    cumulative = [int(v) for v in points.get_column("cumulative").to_list()]
    added = [int(v) for v in points.get_column("bytes").to_list()]
    per = "event time" if series.bucket_ms == 1 else f"{series.bucket_ms:,} ms bucket"
    top = max([*cumulative, 0])
    top = max(top, threshold) if peak is None else max(top, _base(points, peak[0]) + threshold)
    figure = go.Figure(
        layout=_layout(
            xaxis={"type": "date", "title": {"text": "time (UTC)"}},
            yaxis=byte_axis(top, "cumulative bytes"),
            yaxis2={
                **byte_axis(max([*added, 0]), f"bytes per {per}"),
                "overlaying": "y",
                "side": "right",
                "showgrid": False,
            },
            legend={"orientation": "h", "y": 1.12, "x": 0},
            bargap=0.6,
        )
    )
    figure.add_trace(
        go.Bar(
            x=times,
            y=added,
            yaxis="y2",
            name=f"bytes per {per}",
            opacity=0.45,
            marker={"color": "#7b8794"},
            hovertemplate="%{x}<br>%{y:,} bytes<extra></extra>",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=times,
            y=cumulative,
            name="cumulative bytes",
            line={"shape": "hv", "color": _CUMULATIVE, "width": 2},
            mode="lines+markers" if len(times) <= _MARKERS_UP_TO else "lines",
            hovertemplate="%{x}<br>%{y:,} bytes so far<extra></extra>",
        )
    )
    start, end = window or (None, None)
    if start is not None and end is not None:
        pad = (end - start) * 0.02
        figure.add_vrect(
            x0=plot_time(start),
            x1=plot_time(end),
            fillcolor="#f0b429",
            opacity=0.12,
            line_width=0,
            annotation_text="window",
            annotation_position="top left",
        )
        figure.update_xaxes(range=[plot_time(start - pad), plot_time(end + pad)])
    if peak is None:
        figure.add_hline(
            y=threshold,
            line={"color": _FLAG, "dash": "dash"},
            annotation_text=f"threshold {threshold:,} B ({human_bytes(threshold)})",
            annotation_position="bottom right",
        )
    if peak is not None:
        first, last, window_ms = peak
        base = _base(points, first)
        figure.add_vrect(
            x0=plot_time(first),
            x1=plot_time(last),
            fillcolor="#f0b429",
            opacity=0.18,
            line_width=0,
            annotation_text="peak window",
            annotation_position="top left",
        )
        reach = datetime.fromtimestamp(first.timestamp() + window_ms / 1000, tz=first.tzinfo)
        figure.add_trace(
            go.Scatter(
                x=[plot_time(first), plot_time(reach)],
                y=[base + threshold] * 2,
                mode="lines",
                line={"color": _FLAG, "dash": "dash"},
                name=f"threshold above the window's start ({human_bytes(threshold)})",
                hovertemplate="%{y:,} bytes<extra></extra>",
            )
        )
    return figure


def _base(points: Any, first: datetime) -> int:
    """The cumulative sum before ``first``: at the last point before it (exact there, as
    the sweep's buckets start at the peak window's first event)."""
    before = points.filter(points.get_column("time") < first).get_column("cumulative")
    return int(before[-1]) if before.len() else 0


def _moment(value: Any) -> datetime | None:
    """An ISO-8601 time of pivot's, or None (none, or a year datetime cannot hold)."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def timeline(network: list[dict[str, Any]]) -> Any:
    """Pivot: one bar per destination from its first to its last event, labelled with
    the bytes sent; the destination's name escaped (see the module's docstring)."""
    go = plotly()
    placed = [
        (row, _moment(row.get("first_seen")), _moment(row.get("last_seen"))) for row in network
    ]
    rows = [row for row, start, end in placed if start and end]
    starts = [start for _, start, end in placed if start and end]
    ends = [end for _, start, end in placed if start and end]
    span = max((max(ends) - min(starts)).total_seconds() * 1000, 1000) if rows else 1000
    least = span / 150  # a destination seen once still shows as a sliver
    labels = [
        f"{number}. {text(row.get('destination.address'))}" for number, row in enumerate(rows, 1)
    ]
    hover = [
        f"{label}<br>{text(row.get('first_seen'))} .. {text(row.get('last_seen'))}<br>"
        f"bytes out {row.get('bytes_out') or 0:,}, in {row.get('bytes_in') or 0:,}<br>"
        f"connections {row.get('connections') or 0:,}, events {row.get('events') or 0:,}<br>"
        f"ports {text(row.get('destination.port'))}"
        for label, row in zip(labels, rows, strict=True)
    ]
    figure = go.Figure(
        go.Bar(
            y=labels,
            base=[plot_time(start) for start in starts],
            x=[
                max((end - start).total_seconds() * 1000, least)
                for start, end in zip(starts, ends, strict=True)
            ],
            orientation="h",
            text=[human_bytes(row.get("bytes_out")) or "no bytes" for row in rows],
            textposition="auto",
            marker={"color": _FLAG},
            hovertext=hover,
            hoverinfo="text",
        ),
        layout=_layout(
            xaxis={"type": "date", "title": {"text": "time (UTC)"}},
            yaxis={"autorange": "reversed", "automargin": True},
            margin={"l": 20, "r": 30, "t": 20, "b": 50},
        ),
    )
    return figure
