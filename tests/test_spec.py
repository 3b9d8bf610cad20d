"""spec: the hunt defined once, validated when built, and compiled by the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from egress_offline import HuntSpec, SweepSpec, run_hunt, run_sweep
from egress_offline.engine import event_match, prefilter_for
from egress_offline.errors import UsageError
from egress_offline.readers import Prefilter
from egress_offline.spec import (
    DEFAULT_ACTIONS,
    DEFAULT_CATEGORIES,
    DEFAULT_OS_FAMILIES,
    iso_ms,
    parse_size,
    read_cidr_file,
)
from tests.helpers import LAYOUTS, NOW, GiB, event


def test_the_defaults_are_the_seed_query() -> None:
    spec = HuntSpec()
    assert (spec.os_families, spec.categories, spec.actions) == (
        ("windows",),
        ("network",),
        ("disconnect_received",),
    )
    assert (
        spec.os_families,
        spec.categories,
        spec.actions,
    ) == (DEFAULT_OS_FAMILIES, DEFAULT_CATEGORIES, DEFAULT_ACTIONS)
    assert (spec.threshold, spec.window, spec.now) == (1_073_741_824, timedelta(hours=8), "latest")
    assert len(spec.cidrs) == 26
    assert spec.event_label == "windows network disconnect_received"
    assert HuntSpec(os_families=None).event_label == "any network disconnect_received"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"categories": ()}, "categories: give a tuple of at least one value"),
        ({"actions": ["disconnect_received"]}, "actions: give a tuple of at least one value"),
        ({"actions": ("",)}, "actions: every value must be a non-empty string"),
        ({"os_families": ("windows", 3)}, "os_families: every value must be a non-empty string"),
        ({"os_families": ()}, "os_families: give at least one family, or None for any"),
        ({"threshold": 2**63}, "threshold: must be between 0 and 2^63-1 bytes"),
        ({"threshold": True}, "threshold: must be a whole number of bytes"),
        (
            {"threshold": 10**9, "threshold_given": "1GiB"},
            "threshold_given: '1GiB' is 1,073,741,824 bytes, not the threshold's 1,000,000,000",
        ),
        (
            {"threshold_given": "1 gigabyte"},
            "threshold_given: '1 gigabyte' is not a size; use bytes (1073741824) or a unit "
            "such as 500MB, 1GiB or 2TB",
        ),
        ({"threshold_given": 1}, "threshold_given: must be the size as text, such as '1GB'"),
        ({"window": timedelta(0)}, "window: must be longer than zero"),
        ({"now": datetime(2024, 1, 1)}, "now: a fixed time needs a UTC offset"),
        ({"now": "yesterday"}, "now: 'yesterday' is not 'latest', 'wall' or a time"),
    ],
)
def test_a_bad_definition_is_refused_when_built(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as raised:
        HuntSpec(**options)
    assert str(raised.value) == message


def test_a_sweep_period_must_be_ordered_and_zoned() -> None:
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(UsageError, match="since: must be before until"):
        SweepSpec(since=moment, until=moment)
    with pytest.raises(UsageError, match="until: a time needs a UTC offset"):
        SweepSpec(until=datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("given", "kept", "text", "note"),
    [
        ("1gb", "1 GB", "1,000,000,000 bytes (1 GB)",
         "1 GB = 1,000,000,000 bytes; the query's 1 GiB is 1,073,741,824"),
        ("1 GiB", "1 GiB", "1,073,741,824 bytes (1 GiB)", None),
        ("500mib", "500 MiB", "524,288,000 bytes (500 MiB)", None),
        ("2TB", "2 TB", "2,000,000,000,000 bytes (2 TB)",
         "2 TB = 2,000,000,000,000 bytes; the query's 1 GiB is 1,073,741,824"),
        ("1073741824", "1073741824", "1,073,741,824 bytes", None),
        ("7B", "7", "7 bytes", None),
    ],
)  # fmt: skip
def test_the_threshold_is_kept_as_given(given: str, kept: str, text: str, note: str | None) -> None:
    spec = HuntSpec(threshold=parse_size(given), threshold_given=given)
    assert (spec.threshold_given, spec.threshold_text, spec.threshold_note) == (kept, text, note)
    assert HuntSpec().threshold_text == "1,073,741,824 bytes"


def test_the_spec_is_frozen() -> None:
    with pytest.raises(AttributeError):
        HuntSpec().threshold = 1  # type: ignore[misc]


def test_the_prefilter_and_the_reduction_are_compiled_from_the_spec() -> None:
    spec = HuntSpec(os_families=("linux", "macos"), actions=("connection_accepted",))
    assert prefilter_for(spec) == Prefilter(
        families=("linux", "macos"), actions=("connection_accepted",)
    )
    assert prefilter_for(HuntSpec(strict=True)) is None
    rows = pl.DataFrame(
        {
            "host.os.family": [["linux"], ["windows"], ["macos", "linux"], ["macos"]],
            "event.category": [["network"]] * 4,
            "event.action": [["connection_accepted"]] * 3 + [["disconnect_received"]],
        }
    )
    assert rows.select(event_match(spec)).to_series().to_list() == [True, False, False, False]


@pytest.mark.parametrize("layout", ["compact", "compact-gzip", "parquet-text-lists", "json-array"])
def test_another_action_and_category_are_hunted_end_to_end(tmp_path: Path, layout: str) -> None:
    """Change the predicate and every step follows: the prefilter keeps the lines the
    reduction needs, whatever the layout (a prefilter spelling its own action would
    drop them silently)."""
    docs = [
        event(**{"event.action": "connection_accepted", "process.entity_id": "in"}),
        event(**{"event.category": ["network", "x"], "event.action": "connection_accepted"}),
        event(**{"process.entity_id": "out"}),
    ]
    path = LAYOUTS[layout](docs, tmp_path)
    spec = HuntSpec(now=NOW, actions=("connection_accepted",))
    result = run_hunt([str(path)], spec)
    assert result.rows.select("total_bytes_out", "process.entity_id").rows() == [(GiB, "in")]
    assert result.counts.event_match == 1
    both = run_hunt(
        [str(path)], HuntSpec(now=NOW, actions=("connection_accepted", "disconnect_received"))
    )
    assert sorted(both.rows.get_column("process.entity_id").to_list()) == ["in", "out"]
    swept = run_sweep([str(path)], SweepSpec(actions=("connection_accepted",)))
    assert swept.rows.get_column("process.entity_id").to_list() == ["in"]


def test_cidr_file_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "ranges.txt"
    path.write_text("# ours\n10.9.0.0/16\n\n203.0.113.0/24  # proxy\nnot-a-range\n")
    with pytest.raises(UsageError, match=rf"{path}:5: 'not-a-range' is not a CIDR block"):
        read_cidr_file(path)
    path.write_text("# ours\n10.9.0.0/16\n\n203.0.113.0/24  # proxy\n")
    assert [block.text for block in read_cidr_file(path)] == ["10.9.0.0/16", "203.0.113.0/24"]


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (253_402_300_800_000, "+10000-01-01T00:00:00.000Z"),
        (-62_135_596_800_001, "0000-12-31T23:59:59.999Z"),  # ISO 8601: year 0 is 1 BC
        (None, None),
    ],
)
def test_times_are_written_for_any_date_value(ms: int | None, text: str | None) -> None:
    assert iso_ms(ms) == text
