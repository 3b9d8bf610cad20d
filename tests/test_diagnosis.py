"""Why nothing was flagged, from the data (engine/diagnosis.py, engine/census.py): each
step of the funnel that removed (nearly) every record is named, with what the data holds,
in the summary, the report and, when it kept nothing, even under --quiet."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from egress_offline import HuntSpec, run_hunt
from egress_offline.cli import app
from egress_offline.engine import anchor as anchor_module
from egress_offline.engine import census as census_module
from egress_offline.engine import hunt as hunt_module
from egress_offline.engine.census import KEPT_VALUES, Tally
from egress_offline.engine.diagnosis import nearly_all, pivot_notes, share, span
from egress_offline.spec import SweepSpec
from egress_offline.sweep import run_sweep
from tests.helpers import DELETE, ES_ARCHIVE, FIXTURES, NOW, GiB, event, ndjson, zstd_compress

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
SYSMON = FIXTURES / "winlogbeat-sysmon" / "sysmon-9.01.ingest.subset-event3.json"
SCHEMA_V1 = FIXTURES / "endpoint-package" / "schemas_examples_v1"
#: the entity of Endpoint 7.9's two disconnect_received events (Kibana's archive)
ENTITY_7_9 = "MmU5YjYzZWItMzM1Yy00ZWE0LTk0MzEtZjM0NTgzMWU4OTVhLTk2MzYtMTMyMzg3MzkxMzcuMTU5NDYyMDA="


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def lines_of(stderr: str, prefix: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(prefix)]


WINDOWS_CASE = (
    "event match: none of the 1,150 records in the window is a Windows network "
    "disconnect_received event; host.os.family is never 'Windows' (its values: 'windows' "
    "(737), 'macos' (212), 'debian' (201)); ES|QL's == is case-sensitive, and the data has "
    "'windows' in 737 records, 471 of them network disconnect_received events: --os-family "
    "windows matches them"
)


def test_a_family_in_the_wrong_case_is_named_with_what_the_data_has(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = run("hunt", str(SAMPLE), "--os-family", "Windows", "--report", str(report))
    assert result.exit_code == 0, result.stderr
    assert lines_of(result.stderr, "diagnosis:") == [f"diagnosis: {WINDOWS_CASE}"]
    assert "Sysmon" not in result.stderr
    found = json.loads(report.read_text())["diagnosis"]
    assert [(d["step"], d["given"], d["kept"], d["alert"]) for d in found] == [
        ("event_match", 1150, 0, True)
    ]
    assert found[0]["message"] == WINDOWS_CASE
    family = found[0]["data"]["fields"]["host.os.family"]
    assert family["wanted"] == ["Windows"]
    assert family["matching"] == 0
    assert family["values"] == [
        {"value": "windows", "records": 737},
        {"value": "macos", "records": 212},
        {"value": "debian", "records": 201},
    ]
    assert family["values_where_the_others_match"][0] == {"value": "windows", "records": 471}
    assert found[0]["data"]["fields"]["event.action"]["matching"] == 708


def test_a_step_that_kept_nothing_is_said_even_under_quiet() -> None:
    result = run("hunt", str(SAMPLE), "--os-family", "Windows", "-q", "--format", "csv")
    assert result.exit_code == 0
    assert result.stderr == f"warning: {WINDOWS_CASE}\n"


def test_linux_hosts_name_their_distribution_s_family() -> None:
    result = run("hunt", str(SAMPLE), "--os-family", "linux", "--format", "csv")
    assert lines_of(result.stderr, "diagnosis:") == [
        "diagnosis: event match: none of the 1,150 records in the window is a linux network "
        "disconnect_received event; host.os.family is never 'linux' (its values: 'windows' "
        "(737), 'macos' (212), 'debian' (201)); the records whose host.os.type is 'linux' have "
        "host.os.family 'debian' (145): --os-family debian matches them"
    ]


def test_a_window_away_from_the_data_is_named_not_sysmon() -> None:
    result = run("hunt", str(SAMPLE), "--now", "2026-12-02T18:00:00Z", "--format", "csv")
    assert lines_of(result.stderr, "diagnosis:") == [
        "diagnosis: time window: the window (after 2026-12-02T10:00:00.000Z) holds none of the "
        "3,186 records: the data runs from 2026-11-19T16:00:00.337Z to 2026-11-20T15:58:40.666Z, "
        "11d 18h before the window starts; --now latest anchors the window on the newest "
        "record, or use --all-time"
    ]
    assert "Sysmon" not in result.stderr


def test_now_wall_on_an_old_export_names_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--now wall`` on the sample (its data is of 2026-11-20), run on 2027-01-01."""
    clock = SimpleNamespace(time=lambda: 1798761600.0, perf_counter=time.perf_counter)
    monkeypatch.setattr(hunt_module, "time", clock)
    wall = run("hunt", str(SAMPLE), "--now", "wall", "--format", "csv", "-q")
    assert wall.stderr == (
        "warning: time window: the window (after 2026-12-31T16:00:00.000Z) holds none of the "
        "3,186 records: the data runs from 2026-11-19T16:00:00.337Z to "
        "2026-11-20T15:58:40.666Z, 41d 1m before the window starts; --now latest anchors the "
        "window on the newest record, or use --all-time\n"
    )


def test_one_record_is_said_in_the_singular(tmp_path: Path) -> None:
    path = tmp_path / "one.ndjson"
    path.write_bytes(ndjson([event(**{"host.os.family": "linux"})]))
    assert [d.message for d in run_hunt([str(path)], HuntSpec(now=NOW)).diagnoses] == [
        "event match: no record (of 1) in the window is a windows network disconnect_received "
        "event; host.os.family is never 'windows' (its values: 'linux' (1))"
    ]


def test_no_group_reaching_the_threshold_names_the_largest() -> None:
    result = run("hunt", str(SAMPLE), "--threshold", "4GiB", "--format", "csv")
    assert lines_of(result.stderr, "diagnosis:") == [
        "diagnosis: threshold: none of the 129 groups reaches 4,294,967,296 bytes (4 GiB): the "
        "largest sent 3,344,682,261 bytes (77.87% of the threshold)"
    ]
    quiet = run("hunt", str(SAMPLE), "--threshold", "4GiB", "--format", "csv", "-q")
    assert quiet.stderr == ""  # nothing was hidden: read it all, found nothing


def test_flagged_rows_need_no_diagnosis(tmp_path: Path) -> None:
    result = run_hunt([str(SAMPLE)], HuntSpec())
    assert (result.counts.flagged, result.diagnoses, result.alerts) == (3, [], [])


def test_endpoint_7_9_events_lack_destination_ip_which_empties_the_destination_step() -> None:
    """Kibana's archive of Endpoint 7.9 events: two disconnect_received events with a
    destination.address, but no destination.ip and no source.bytes."""
    message = (
        "public destination: none of the 2 windows network disconnect_received events has a "
        "public destination.ip: 2 lack destination.ip (2 of them have a destination.address, "
        "which the query groups by but does not test); none of them carries source.bytes "
        "either, so their bytes could not be summed"
    )
    hunt = run("hunt", str(ES_ARCHIVE), "--format", "csv")
    assert lines_of(hunt.stderr, "diagnosis:") == [f"diagnosis: {message}"]
    assert "Sysmon" not in hunt.stderr
    swept = run_sweep([str(ES_ARCHIVE)], SweepSpec())
    assert [d.message for d in swept.diagnoses] == [message]
    assert swept.alerts == [message]
    assert swept.diagnoses[0].data == {
        "missing_destination_ip": 2,
        "destination_address_only": 2,
        "unreadable_destination_ip": 0,
        "several_destination_ip": 0,
        "excluded_destination_ip": 0,
        "with_source_bytes": 0,
    }
    pivot = run("pivot", ENTITY_7_9, str(ES_ARCHIVE), "--format", "json")
    assert lines_of(pivot.stderr, "diagnosis:") == [
        f"diagnosis: {ENTITY_7_9}: none of its 2 finished connections (disconnect_received) "
        "carries destination.ip (the hunt's destination step drops such events) or source.bytes "
        "(the hunt cannot sum them)"
    ]


def test_sysmon_event_3_is_named_only_from_its_records() -> None:
    """Winlogbeat's Sysmon event 3 (two real records, after its ingest pipeline)."""
    result = run("hunt", str(SYSMON), "--format", "csv")
    assert lines_of(result.stderr, "diagnosis:") == [
        "diagnosis: event match: none of the 2 records in the window is a windows network "
        "disconnect_received event; host.os.family is never 'windows' (no record has one); "
        "event.action is never 'disconnect_received' (its values: 'Network connection detected "
        "(rule: NetworkConnect)' (2)); 2 are Sysmon event 3 records (event.provider "
        "Microsoft-Windows-Sysmon, event.code 3): this hunt reads Elastic Defend network events "
        "(logs-endpoint.events.network-*); Sysmon event 3 and Windows event 5156 do not log "
        "source.bytes, so it cannot run on them"
    ]


def test_windows_event_5156_is_named(tmp_path: Path) -> None:
    doc = event(
        **{
            "event.action": "Filtering Platform Connection",
            "event.code": "5156",
            "event.provider": "Microsoft-Windows-Security-Auditing",
        }
    )
    path = tmp_path / "security.ndjson"
    path.write_bytes(ndjson([doc, doc, doc]))
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert [d.message for d in result.diagnoses] == [
        "event match: none of the 3 records in the window is a windows network "
        "disconnect_received event; event.action is never 'disconnect_received' (its values: "
        "'Filtering Platform Connection' (3)); 3 are Windows event 5156 records (event.provider "
        "Microsoft-Windows-Security-Auditing, event.code 5156): this hunt reads Elastic Defend "
        "network events (logs-endpoint.events.network-*); Sysmon event 3 and Windows event "
        "5156 do not log source.bytes, so it cannot run on them"
    ]


def test_old_endpoint_schema_examples_are_named_by_their_actions() -> None:
    """The endpoint package's schema v1 examples: no host.os.family, other actions."""
    result = run_hunt([str(SCHEMA_V1)], HuntSpec())
    assert [d.message for d in result.diagnoses] == [
        "event match: none of the 12 records in the window is a windows network "
        "disconnect_received event; host.os.family is never 'windows' (no record has one); "
        "event.action is never 'disconnect_received' (its values: 'connection_accepted' (2), "
        "'connection_attempted' (2), 'disconnected' (2), 'reconnection_attempted' (2), "
        "'request' (2), and others (2))"
    ]


def test_a_step_that_keeps_1_percent_or_less_is_named_with_the_later_ones(tmp_path: Path) -> None:
    docs = [event(**{"host.os.family": "linux"}) for _ in range(199)]
    docs.append(event(**{"source.bytes": 4096}))
    path = tmp_path / "mostly-linux.ndjson"
    path.write_bytes(ndjson(docs))
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert [(d.step, d.given, d.kept, d.alert) for d in result.diagnoses] == [
        ("event_match", 200, 1, False),
        ("threshold", 1, 0, False),
    ]
    assert [d.message for d in result.diagnoses] == [
        "event match: 1 of the 200 records in the window (0.50%) are windows network "
        "disconnect_received events; host.os.family is 'windows' in only 1 (its values: "
        "'linux' (199), 'windows' (1))",
        "threshold: no group (of 1) reaches 1,073,741,824 bytes: the largest sent 4,096 "
        "bytes (under 0.01% of the threshold)",
    ]
    assert result.alerts == []  # something was found at every step but the last


def test_events_without_source_bytes_name_the_bytes_step(tmp_path: Path) -> None:
    path = tmp_path / "no-bytes.ndjson"
    docs = [event(**{"source": {"ip": "10.0.0.5"}}) for _ in range(3)]
    docs.append(event(**{"source.bytes": "12 kB"}))
    path.write_bytes(ndjson(docs))
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert [d.message for d in result.diagnoses] == [
        "source.bytes: none of the 4 events with a public destination carries a source.bytes "
        "that can be summed: 3 lack it, 1 holds values that are not longs; a group without one "
        "sums to null and is never flagged"
    ]
    assert result.diagnoses[0].data == {
        "summable": 0,
        "unreadable": 1,
        "missing": 3,
        "lacking_group_key": {
            "process.entity_id": 0,
            "destination.address": 0,
            "process.executable": 0,
        },
    }


def test_why_the_destination_step_dropped_each_event_adds_up(tmp_path: Path) -> None:
    docs = [
        event(**{"destination.ip": "10.1.2.3", "source.bytes": 1}),
        event(**{"destination.ip": "::ffff:192.168.1.1", "source.bytes": 1}),
        event(**{"destination.ip": "not-an-ip", "source.bytes": 1}),
        event(**{"destination.ip": ["8.8.8.8", "1.1.1.1"], "source.bytes": 1}),
        event(**{"destination": {"address": "example.com"}, "source.bytes": 1}),
    ]
    path = tmp_path / "private.ndjson"
    path.write_bytes(ndjson(docs))
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    counts = result.counts
    assert (counts.event_match, counts.public_destination) == (5, 0)
    assert [d.message for d in result.diagnoses] == [
        "public destination: none of the 5 windows network disconnect_received events has a "
        "public destination.ip: 1 lacks destination.ip (1 of them has a destination.address, "
        "which the query groups by but does not test), 1 has a destination.ip that is not an IP "
        "address, 1 has several destination.ip values (CIDR_MATCH is null on several), 2 have "
        "one in the excluded ranges"
    ]


def test_a_threshold_in_decimal_units_is_said_plainly() -> None:
    result = run("hunt", str(SAMPLE), "--threshold", "1GB", "--format", "csv")
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 5  # the header and four rows: one more than 1 GiB
    lines = result.stderr.splitlines()
    assert lines[7].split() == ["flagged", "(>=", "1000000000", "bytes", "=", "1", "GB)", "4"]
    assert "threshold: 1 GB = 1,000,000,000 bytes; the query's 1 GiB is 1,073,741,824" in lines
    binary = run("hunt", str(SAMPLE), "--threshold", "1gib", "--format", "csv")
    assert binary.stderr.splitlines()[7].split()[:6] == [
        "flagged", "(>=", "1073741824", "bytes", "=", "1",
    ]  # fmt: skip
    assert "the query's 1 GiB" not in binary.stderr


def test_the_report_says_the_threshold_as_given(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run("sweep", str(SAMPLE), "--threshold", "5gb", "--report", str(report), "--format", "csv")
    written = json.loads(report.read_text())
    assert written["parameters"]["threshold_bytes"] == 5_000_000_000
    assert written["parameters"]["threshold_given"] == "5 GB"
    assert [d["message"] for d in written["diagnosis"]] == [
        "threshold: none of the 149 groups reaches 5,000,000,000 bytes (5 GB) in any 8h: the "
        "largest sent 3,514,998,934 bytes (70.30% of the threshold)"
    ]


def test_sweep_names_the_same_event_step() -> None:
    result = run_sweep([str(SAMPLE)], SweepSpec(os_families=("Windows",)))
    assert [d.message for d in result.diagnoses] == [
        "event match: none of the 3,186 records in the period is a Windows network "
        "disconnect_received event; host.os.family is never 'Windows' (its values: 'windows' "
        "(1,956), 'debian' (616), 'macos' (614)); ES|QL's == is case-sensitive, and the data "
        "has 'windows' in 1,956 records, 1,173 of them network disconnect_received events: "
        "--os-family windows matches them"
    ]
    empty = run("sweep", str(SAMPLE), "--since", "2030-01-01T00:00:00Z", "-q", "--format", "csv")
    assert empty.stderr == (
        "warning: period: the period (2030-01-01T00:00:00.000Z .. the end) holds none of the "
        "3,186 records: the data runs from 2026-11-19T16:00:00.337Z to 2026-11-20T15:58:40.666Z\n"
    )


def test_records_without_a_timestamp_leave_no_window(tmp_path: Path) -> None:
    path = tmp_path / "no-time.ndjson"
    path.write_bytes(ndjson([event(**{"@timestamp": None})] * 2))
    result = run_hunt([str(path)], HuntSpec())
    assert [(d.step, d.message) for d in result.diagnoses] == [
        (
            "time_window",
            "time window: no record has a valid @timestamp, so no window can be placed; use "
            "--all-time to hunt without one",
        )
    ]


def test_the_census_keeps_a_bounded_number_of_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker-chosen values: counted one by one up to KEPT_VALUES per field, the rest
    together; each value cut short."""
    tally = Tally()
    tally.add(((f"junk-{n:07d}", 1) for n in range(50 * KEPT_VALUES)), others=7)
    assert (len(tally.counts), tally.others) == (KEPT_VALUES, 49 * KEPT_VALUES + 7)
    tally.add([("junk-0000000", 2), ("windows", 5), ("windows", 5)])  # a common value, late
    assert tally.top(2) == [("windows", 10), ("junk-0000000", 3)]
    assert (len(tally.counts), tally.total) == (KEPT_VALUES, 50 * KEPT_VALUES + 7 + 12)
    monkeypatch.setattr(census_module, "KEPT_VALUES", 3)
    monkeypatch.setattr(census_module, "VALUE_CHARS", 11)
    docs = [event(**{"event.action": f"action-{n:04d}-padding"}) for n in range(6)]
    path = tmp_path / "many-actions.ndjson"
    path.write_bytes(ndjson([*docs, docs[0]]))
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert result.diagnoses[0].message == (
        "event match: none of the 7 records in the window is a windows network "
        "disconnect_received event; event.action is never 'disconnect_received' (its values: "
        "'action-0000' (2), 'action-0001' (1), 'action-0002' (1), and others (3))"
    )
    action = result.diagnoses[0].data["fields"]["event.action"]
    assert action["distinct_values"] == 3


def test_helpers() -> None:
    assert [nearly_all(0, 0), nearly_all(1, 0), nearly_all(100, 1), nearly_all(99, 1)] == [
        False, True, True, False,
    ]  # fmt: skip
    assert [share(1, 3), share(1, 100_000), share(0, 5)] == ["33.33%", "under 0.01%", "0%"]
    assert [span(250), span(61_000), span(90_061_000)] == ["250ms", "1m 1s", "1d 1h"]
    assert pivot_notes("E", [{"connections": 0, "destination.ip": [], "bytes_out": None}]) == []


def test_a_clock_years_ahead_is_an_alert_naming_its_host_and_line(tmp_path: Path) -> None:
    """One event dated 2031, appended to the sample: --now latest anchors the window on
    it, and the planted rclone upload is outside the window. The warning names the host,
    file and line, the gap and the --now the bulk of the data suggests; even under -q."""
    sample = tmp_path / "sample"
    shutil.copytree(SAMPLE, sample)
    dump = sample / "elasticdump-hits.ndjson"
    late = event(
        **{
            "@timestamp": "2031-03-14T09:26:53.5897932Z",
            "host.name": "WIN-WKS-07",
            "source.bytes": 4096,
        }
    )
    hit = {"_index": "logs-endpoint.events.network-default", "_id": "late", "_source": late}
    with dump.open("ab") as handle:
        handle.write(json.dumps(hit).encode() + b"\r\n")
    warning = (
        "warning: --now latest: the newest @timestamp, 2031-03-14T09:26:53.589Z, stands apart: "
        "the window it anchors holds 1 record of the 3,187, from host 'WIN-WKS-07' "
        f"({dump} line 1057), and the rest of the data ends at 2026-11-20T15:58:40.666Z, "
        "1,574d 17h earlier, outside the window (a host's clock may be wrong); the bulk of the "
        "data suggests --now 2026-11-20T15:58:40.666Z"
    )
    quiet = run("hunt", str(sample), "-q", "--format", "csv")
    assert quiet.exit_code == 0
    assert quiet.stdout.count("\n") == 1  # the header: the rclone upload is missed
    assert quiet.stderr == warning + "\n"
    report = tmp_path / "report.json"
    loud = run("hunt", str(sample), "--format", "csv", "--report", str(report))
    assert warning in loud.stderr.splitlines()
    written = json.loads(report.read_text())
    assert written["warnings"] == [warning.removeprefix("warning: ")]
    anchor = written["diagnosis"][0]
    assert (anchor["step"], anchor["alert"], anchor["data"]["suggested_now"]) == (
        "anchor", True, "2026-11-20T15:58:40.666Z",
    )  # fmt: skip
    assert anchor["data"]["hosts"] == [{"host.name": "WIN-WKS-07", "records": 1}]
    assert anchor["data"]["records"] == [
        {"path": str(dump), "line": 1057, "@timestamp": "2031-03-14T09:26:53.589Z"}
    ]
    again = run("hunt", str(sample), "--now", "2026-11-20T15:58:40.666Z", "--format", "csv", "-q")
    assert "rclone.exe" in again.stdout
    assert again.stdout.count("\n") == 4  # the three planted rows are back
    assert again.stderr == ""


def test_a_sparse_end_of_the_data_raises_no_alarm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window holds 2 records of 202, so the anchor is looked at; but the rest ends
    less than a window before them: no warning."""
    looked = []
    look = anchor_module._look
    monkeypatch.setattr(
        anchor_module, "_look", lambda *args, **named: looked.append(1) or look(*args, **named)
    )
    docs = [event(**{"@timestamp": "2024-05-01T00:00:00.000Z"})] * 200
    docs += [event(**{"@timestamp": f"2024-05-01T{h}:00:00.000Z"}) for h in ("06", "13")]
    path = tmp_path / "sparse-end.ndjson"
    path.write_bytes(ndjson(docs))
    result = run_hunt([str(path)], HuntSpec())
    assert (looked, result.counts.time_window) == ([1], 2)
    assert [d.step for d in result.diagnoses] == []
    assert result.counts.flagged == 1
    assert result.alerts == []


def test_the_anchor_is_looked_at_in_two_reads_only_when_it_stands_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first look skips lines older than the window before the window; only when
    nothing is there (the rest ends more than a window earlier) is every line's timestamp
    read, for where the rest ends."""
    floors: list[int] = []
    look = anchor_module._look
    monkeypatch.setattr(
        anchor_module,
        "_look",
        lambda *args, **named: floors.append(named["floor_ms"]) or look(*args, **named),
    )
    hour, late = 3600_000, 1714593600000  # 2024-05-01T20:00Z
    path = tmp_path / "end.ndjson"
    bulk = [event(**{"@timestamp": "2024-05-01T00:00:00.000Z"})] * 200

    def hunt(rest: str, end: str = "2024-05-01T20:00:00.000Z") -> list[str]:
        floors.clear()
        docs = [*bulk, event(**{"@timestamp": rest}), event(**{"@timestamp": end})]
        path.write_bytes(ndjson(docs))
        return [d.message for d in run_hunt([str(path)], HuntSpec()).diagnoses]

    said = hunt("2024-05-01T05:00:00.000Z")  # in the window before the window: one look
    assert floors == [late - 16 * hour]
    assert said[0].endswith(
        "and the rest of the data ends at 2024-05-01T05:00:00.000Z, 15h earlier, outside the "
        "window (a host's clock may be wrong); the bulk of the data suggests --now "
        "2024-05-01T05:00:00.000Z"
    )
    said = hunt("2024-05-01T00:00:00.000Z")  # before it: a second look, every timestamp
    assert floors == [late - 16 * hour, -(2**63)]
    assert "the rest of the data ends at 2024-05-01T00:00:00.000Z, 20h earlier" in said[0]
    # the window's oldest record is less than a window after the rest: no warning
    said = hunt("2024-05-01T06:00:00.000Z", end="2024-05-01T13:00:00.000Z")
    assert (said, floors) == ([], [late - 7 * hour - 16 * hour])


@pytest.mark.parametrize("column", ["absent", "nulls"])
def test_a_parquet_file_without_event_category_is_named_by_it(tmp_path: Path, column: str) -> None:
    """Rows whose action and OS family match are decoded; a Parquet file without the
    event.category column gave them a null list, not an empty one, whose null match
    counted them nowhere: "@timestamp in window 0", and a summary that the window held
    none of the records. A column of nulls was always read as missing."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    table = pa.table({"@timestamp": [NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z")] * 3,
                      "event.action": ["disconnect_received"] * 3,
                      "host.os.family": ["windows"] * 3})  # fmt: skip
    if column == "nulls":
        table = table.append_column("event.category", pa.array([None] * 3, pa.string()))
    path = tmp_path / "x.parquet"
    pq.write_table(table, path)
    message = (
        "event match: none of the 3 records in {} is a windows network disconnect_received "
        "event; event.category is never 'network' (no record has one)"
    )
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert result.counts.time_window == 3
    assert [d.message for d in result.diagnoses] == [message.format("the window")]
    swept = run_sweep([str(path)], SweepSpec())
    assert swept.counts.time_window == 3
    assert [d.message for d in swept.diagnoses] == [message.format("the period")]


@pytest.mark.parametrize(
    "field",
    ["event.category", "destination.ip", "source.bytes", "process.executable", "host.os.family"],
)
def test_a_field_no_parquet_row_has_is_told_as_in_a_file_of_lines(
    tmp_path: Path, field: str
) -> None:
    """The same events lacking a field, as NDJSON and as Parquet (the column absent): the
    same counts and the same summary. Parquet's missing column was a null list, which
    the counts of events lacking destination.ip, source.bytes or a group key read as
    present (an attacker's pass, stop 42): "500 lack destination.ip" was left out."""
    from dataclasses import asdict  # noqa: PLC0415

    # no empty struct left, which Parquet cannot hold
    gone = {"host.os.family": "host.os", "source.bytes": "source"}.get(field, field)
    bytes_ = {} if field == "source.bytes" else {"source.bytes": GiB // 4}
    docs = [event(**{**bytes_, "process.entity_id": f"E{i % 2}", gone: DELETE}) for i in range(6)]
    lines = tmp_path / "x.ndjson"
    lines.write_bytes(ndjson(docs))
    table = tmp_path / "x.parquet"
    pl.read_ndjson(lines).write_parquet(table)
    assert field not in {".".join(path) for path in _leaf_paths(pl.read_parquet(table).schema)}
    for run in (lambda p: run_hunt([str(p)], HuntSpec(now=NOW)),
                lambda p: run_sweep([str(p)], SweepSpec())):  # fmt: skip
        expected, found = run(lines), run(table)
        assert asdict(found.counts) == asdict(expected.counts)
        assert [d.message for d in found.diagnoses] == [d.message for d in expected.diagnoses]
        assert found.rows.to_dicts() == expected.rows.to_dicts()


def _leaf_paths(schema: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, kind in (schema.items() if hasattr(schema, "items") else
                       ((f.name, f.dtype) for f in schema.fields)):  # fmt: skip
        if isinstance(kind, pl.Struct):
            paths += _leaf_paths(kind, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("empty.ndjson", b""),  # a 0-byte copy of an export
        ("blank.ndjson", b"\n\n"),
        ("array.json", b"[]"),
        ("crlf.ndjson", b"\xef\xbb\xbf\r\n"),
    ],
)
@pytest.mark.parametrize("command", ["hunt", "sweep"])
def test_an_input_of_no_record_is_said_so_even_under_quiet(
    tmp_path: Path, name: str, body: bytes, command: str
) -> None:
    """A file that held nothing gives "0 rows" that say nothing of any event, and an export
    cut to nothing looks just like it: the summary and the report say so, and the
    warning is printed even under -q. It was read whole, so the exit code is 0."""
    path = tmp_path / name
    path.write_bytes(body)
    report = tmp_path / "report.json"
    said = (
        f"records: the input holds no record ({path}, {len(body)} byte"
        f"{'' if len(body) == 1 else 's'}), so there was nothing to hunt in; if the export "
        "should hold events, copy or export it again"
    )
    result = run(command, str(path), "--report", str(report), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0, result.stderr
    assert lines_of(result.stderr, "diagnosis:") == [f"diagnosis: {said}"]
    (found,) = json.loads(report.read_text())["diagnosis"]
    assert (found["step"], found["given"], found["kept"], found["alert"]) == (
        "records", 0, 0, True,
    )  # fmt: skip
    assert found["message"] == said
    assert found["data"] == {"files": 1, "named": [str(path)]}
    quiet = run(command, str(path), "-q", "-o", str(tmp_path / "quiet.csv"))
    assert quiet.exit_code == 0
    assert quiet.stderr == f"warning: {said}\n"


def test_a_damaged_file_of_no_readable_record_names_its_damage(tmp_path: Path) -> None:
    """A zstd file cut inside its first block reads no record: its records may be past the
    cut, so the input is not said to hold none; the damage is named beside the file."""
    path = tmp_path / "cut.ndjson.zst"
    path.write_bytes(zstd_compress(ndjson([event()] * 3))[:-12])
    (found,) = run_hunt([str(path)], HuntSpec()).diagnoses
    size = path.stat().st_size
    assert found.message == (
        f"records: the input holds no readable record ({path}, {size} bytes: zstd data "
        f"ends early at byte {size} (truncated copy)), so there was nothing to hunt in; "
        "if the export should hold events, copy or export it again"
    )


def test_files_of_no_record_are_named_a_few_and_counted(tmp_path: Path) -> None:
    """A directory of empty files and an empty Parquet file: the first three named in
    order, the rest counted; an empty file beside a file of records is nothing to say."""
    folder = tmp_path / "dump"
    folder.mkdir()
    for hour in range(4):
        (folder / f"hour-{hour}.ndjson").write_bytes(b"")
    pl.DataFrame(
        {"@timestamp": [], "event": []}, schema={"@timestamp": pl.String, "event": pl.String}
    ).write_parquet(folder / "hour-4.parquet")
    result = run_hunt([str(folder)], HuntSpec())
    assert result.counts.records == 0
    (found,) = result.diagnoses
    names = sorted(str(path) for path in folder.iterdir())
    assert found.message.startswith(
        f"records: the input holds no record ({names[0]}, 0 bytes; {names[1]}, 0 bytes; "
        f"{names[2]}, 0 bytes; and 2 other files), so there was nothing to hunt in"
    )
    assert found.data == {"files": 5, "named": names[:3]}
    (folder / "events.ndjson").write_bytes(ndjson([event()]))
    assert [d.step for d in run_hunt([str(folder)], HuntSpec()).diagnoses] != ["records"]


def test_copies_of_one_document_are_not_blamed_on_the_time_window(tmp_path: Path) -> None:
    """5,000 copies of one hit (the same _index and _id), all in the window: the window
    holds 5,000 records, one event match, 4,999 dropped as the same document again;
    nothing flagged is the threshold's doing. Before, the time step counted the document
    once, and the diagnosis said the window held 1 of the 5,000 records."""
    hit = {"_index": "i", "_id": "A", "_source": event(**{"source.bytes": 1000})}
    path = tmp_path / "copies.ndjson"
    path.write_bytes(ndjson([hit] * 5000))
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    counts = result.counts
    assert (counts.valid, counts.time_window, counts.event_match, counts.duplicates) == (
        5000, 5000, 1, 4999,
    )  # fmt: skip
    assert [d.step for d in result.diagnoses] == ["threshold"]
