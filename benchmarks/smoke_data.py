"""Tiny data for ``targets.py --smoke``: the seeded generator's export, with a few
sweep edge cases appended, in every format, and the sweep rows those cases must give.

The edge cases sit on 2026-11-19, inside the generated 48 hours and outside the hunt's
last 8 hours, each its own process to one public destination:

- two events exactly 8 h apart: never in one window, (t - 8h, t] (not flagged);
- two events 8 h less 1 ms apart: in one window (flagged);
- three events in one millisecond (their 7-digit fractions truncated alike): all in each
  other's windows, the window's first and last event the same;
- two equal peaks 10 h apart: the earliest is reported;
- a window that slides past its first event: the peak's first event is not the group's;
- an event without ``source.bytes`` in a window: ignored by the sum, not a null peak.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import generate, write_formats

MiB = 2**20
T0 = datetime(2026, 11, 19, 0, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)
MS = timedelta(milliseconds=1)
DESTINATION = "185.220.101.50"
EXECUTABLE = r"C:\Users\Public\edge.exe"

# (entity, time, 7-digit fraction or None, bytes or None)
_EVENTS: list[tuple[str, datetime, str | None, int | None]] = [
    ("edge-apart-8h", T0, None, 600 * MiB),
    ("edge-apart-8h", T0 + 8 * H, None, 600 * MiB),
    ("edge-apart-8h-less-1ms", T0, None, 600 * MiB),
    ("edge-apart-8h-less-1ms", T0 + 8 * H - MS, None, 600 * MiB),
    ("edge-same-ms", T0 + H, "1230000", 400 * MiB),
    ("edge-same-ms", T0 + H, "1234567", 400 * MiB),
    ("edge-same-ms", T0 + H, "1239999", 400 * MiB),
    ("edge-tie", T0, None, 1100 * MiB),
    ("edge-tie", T0 + 10 * H, None, 1100 * MiB),
    ("edge-slide", T0, None, 500 * MiB),
    ("edge-slide", T0 + 5 * H, None, 500 * MiB),
    ("edge-slide", T0 + 9 * H, None, 700 * MiB),
    ("edge-null-bytes", T0, None, 1100 * MiB),
    ("edge-null-bytes", T0 + H, None, None),
]


def _ms(moment: datetime) -> str:
    return str((moment - datetime(1970, 1, 1, tzinfo=UTC)) // MS)


#: The sweep rows of the edge cases, as ``contenders.read_rows`` gives them: peak, keys,
#: the peak window's first and last event (epoch ms).
EXPECTED_SWEEP = {
    (str(1200 * MiB), "edge-apart-8h-less-1ms", DESTINATION, EXECUTABLE,
     _ms(T0), _ms(T0 + 8 * H - MS)),
    (str(1200 * MiB), "edge-same-ms", DESTINATION, EXECUTABLE,
     _ms(T0 + H + 123 * MS), _ms(T0 + H + 123 * MS)),
    (str(1100 * MiB), "edge-tie", DESTINATION, EXECUTABLE, _ms(T0), _ms(T0)),
    (str(1200 * MiB), "edge-slide", DESTINATION, EXECUTABLE, _ms(T0 + 5 * H), _ms(T0 + 9 * H)),
    (str(1100 * MiB), "edge-null-bytes", DESTINATION, EXECUTABLE, _ms(T0), _ms(T0)),
}  # fmt: skip


def edge_lines() -> str:
    """The edge-case events as NDJSON lines."""
    lines = []
    for entity, moment, fraction, sent in _EVENTS:
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
        stamp += f".{fraction}Z" if fraction else f".{moment.microsecond // 1000:03d}Z"
        event = {
            "@timestamp": stamp,
            "host": {"os": {"family": "windows"}, "name": "WIN-EDGE"},
            "event": {"category": ["network"], "action": "disconnect_received"},
            "destination": {"ip": DESTINATION, "address": DESTINATION, "port": 443},
            "process": {"entity_id": entity, "executable": EXECUTABLE},
            "source": {} if sent is None else {"bytes": sent},
            "user": {"name": "edge"},
        }
        lines.append(json.dumps(event, separators=(",", ":")) + "\n")
    return "".join(lines)


def make_smoke_data(directory: Path, size: int = 2_000_000) -> tuple[dict[str, Path], str]:
    """The smoke export in ``directory`` (NDJSON, gzip, Parquet), and its export time."""
    plain = directory / "smoke-s7.ndjson"
    meta = generate(plain, size, seed=7)
    with plain.open("a") as out:
        out.write(edge_lines())
    return write_formats(plain, {"gz", "parquet"}), str(meta["now"])
