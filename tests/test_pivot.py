"""pivot: everything an export holds about given processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from egress_offline.cli import app
from egress_offline.pivot import esql_query, kql_filter, run_pivot
from egress_offline.pivot.summaries import Found
from egress_offline.readers import IdPrefilter
from egress_offline.writers import pivot_text
from tests.helpers import LAYOUTS, SAMPLE_EVENT, event, fail_after_batches, flatten_keys

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
RCLONE = "MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTczMTItMTMyOTM1NDkxMDkuNzM1OTUwNQ=="
RCLONE_PARENT = "MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTczMTEtMS41MDAwMDAw"
# OneDrive: network events only, no process events in the sample
ONEDRIVE = "MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTY2MDAtMTMyOTM1NDkxMDkuNzM1OTUwNQ=="


def start(entity: str, *, parent: str | None = None, ts: str = "2024-05-01T09:00:00Z",
          exe: str = "C:\\evil.exe", **more: Any) -> dict[str, Any]:  # fmt: skip
    """A process start event."""
    process: dict[str, Any] = {"entity_id": entity, "executable": exe, "pid": 42}
    if parent is not None:
        process["parent"] = {"entity_id": parent}
    process.update(more)
    return {
        "@timestamp": ts,
        "event": {"category": ["process"], "action": "start", "type": ["start"]},
        "process": process,
        "host": {"name": "WKS-1"},
        "user": {"name": "alice"},
    }


def test_the_sample_rclone_process_whole() -> None:
    result = run_pivot([RCLONE], [str(SAMPLE_DIR)])
    assert result.unknown == []
    assert result.records == 3186
    (entity,) = result.entities
    assert entity.events == 42  # 40 network events, its start and its end
    assert entity.process_source == "start event"
    assert (entity.started, entity.first_seen) == (
        "2026-11-20T09:25:00.000Z",
        "2026-11-20T09:25:00.000Z",  # its start event is its first
    )
    assert entity.process == {
        "@timestamp": "2026-11-20T09:25:00.000Z",
        "process.executable": "C:\\Users\\jdoe\\AppData\\Local\\Temp\\rclone.exe",
        "process.name": "rclone.exe",
        "process.pid": "7312",
        "process.command_line": (
            "rclone.exe copy C:\\Users\\jdoe\\Documents remote:loot --transfers 8 -q"
        ),
        "process.parent.entity_id": RCLONE_PARENT,
        "process.parent.executable": "C:\\Windows\\System32\\cmd.exe",
        "process.hash.sha256": "831154ef" * 8,
        "process.hash.sha1": "831154ef" * 5,
        "process.hash.md5": "831154ef" * 4,
        "process.code_signature.exists": "false",
        "process.code_signature.subject_name": None,
        "process.code_signature.trusted": None,
        "process.code_signature.status": None,
        "user.name": "jdoe",
        "user.domain": "CORP",
        "host.name": "WIN-WKS-03",
    }
    assert entity.parent is not None
    assert entity.parent["process.entity_id"] == RCLONE_PARENT
    assert entity.parent["process.command_line"] == (
        "cmd.exe /c C:\\Users\\jdoe\\AppData\\Local\\Temp\\run.bat"
    )
    assert entity.parent["process.code_signature.trusted"] == "true"
    assert [(c["process.pid"], c["process.executable"]) for c in entity.children] == [
        ("7400", "C:\\Windows\\System32\\conhost.exe"),
        ("7404", "C:\\Windows\\System32\\cmd.exe"),
    ]
    assert entity.network == [
        {
            "destination.address": "185.220.101.7",
            "destination.ip": ["185.220.101.7"],
            "bytes_out": 3344682261,  # the hunt's total_bytes_out for this group
            "bytes_in": 1009810,
            "events": 40,
            "connections": 40,
            "destination.port": ["443"],
            "event.action": ["disconnect_received"],
            "first_seen": "2026-11-20T09:29:59.965Z",
            "last_seen": "2026-11-20T15:29:59.562Z",
        }
    ]


def test_a_process_with_network_events_only() -> None:
    (entity,) = run_pivot([ONEDRIVE], [str(SAMPLE_DIR)]).entities
    assert entity.process_source == "other events"
    assert entity.process is not None
    # no start event: when it started is unknown, not the time of its first connection
    assert (entity.started, entity.first_seen) == (None, "2026-11-19T19:59:59.341Z")
    assert entity.process["@timestamp"] is None
    whole = entity.as_dict()
    assert (whole["started"], whole["first_seen"]) == (None, "2026-11-19T19:59:59.341Z")
    assert entity.process["process.executable"].endswith("OneDrive.exe")
    assert entity.process["process.command_line"] is None
    assert entity.parent is None  # its parent's start event is not in the export
    assert entity.children == []
    assert [(n["destination.address"], n["events"]) for n in entity.network] == [
        ("13.107.42.14", 16)
    ]


def test_unknown_and_repeated_ids() -> None:
    result = run_pivot(["nope", RCLONE, "nope"], [str(SAMPLE_DIR)])
    assert [e.entity_id for e in result.entities] == ["nope", RCLONE]
    assert result.unknown == ["nope"]
    unknown = result.as_dict()["entities"][0]
    assert unknown["found"] is False
    assert (unknown["process"], unknown["network"], unknown["children"]) == (None, [], [])
    alone = run_pivot(["nope"], [str(SAMPLE_DIR)])  # nothing found at all
    assert alone.unknown == ["nope"]
    assert alone.records == 3186


def _family(tmp_path: Path) -> list[dict[str, Any]]:
    return [
        start("P", ts="2024-05-01T08:00:00Z", exe="C:\\parent.exe"),
        start("E1", parent="P", ts="2024-05-01T09:00:00Z", command_line="evil.exe -x"),
        event(**{"destination.bytes": 10, "process.parent.entity_id": "P"}),
        event(**{"destination.address": "b.example", "@timestamp": "2024-05-01T08:30:00Z"}),
        event(**{"process.entity_id": "C1", "process.parent.entity_id": "E1"}),  # child, no start
        start("C2", parent="E1", ts="2024-05-01T09:05:00Z", exe="C:\\child.exe"),
        start("OTHER", ts="2024-05-01T09:06:00Z"),
    ]


@pytest.mark.parametrize(
    "name",
    sorted(set(LAYOUTS) - {"parquet-text-lists", "parquet-small-row-groups", "parquet-bytes"}),
)
def test_every_layout_gives_the_same_pivot(tmp_path: Path, name: str) -> None:
    path = LAYOUTS[name](_family(tmp_path), tmp_path)
    result = run_pivot(["E1"], [str(path)])
    (entity,) = result.entities
    _check_family(entity)
    assert [f.reader for f in result.files] == ["fast"]


def _check_family(entity: Any) -> None:
    assert entity.events == 3
    assert entity.process["process.command_line"] == "evil.exe -x"
    assert entity.process["@timestamp"] == "2024-05-01T09:00:00.000Z"
    assert entity.parent["process.executable"] == "C:\\parent.exe"
    assert [
        (c["process.entity_id"], c["source"], c["@timestamp"], c["first_seen"])
        for c in entity.children
    ] == [
        ("C2", "start event", "2024-05-01T09:05:00.000Z", "2024-05-01T09:05:00.000Z"),
        ("C1", "other events", None, "2024-05-01T11:00:00.000Z"),  # no start: unknown
    ]
    assert (entity.started, entity.first_seen) == (
        "2024-05-01T09:00:00.000Z",
        "2024-05-01T08:30:00.000Z",  # a network event of its own came first
    )
    assert [(n["destination.address"], n["bytes_out"], n["bytes_in"]) for n in entity.network] == [
        ("b.example", 1024**3, None),
        ("8.8.8.8", 1024**3, 10),
    ]


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "flat.parquet"
    pl.DataFrame([flatten_keys(d) for d in _family(tmp_path)]).write_parquet(path)
    (entity,) = run_pivot(["E1"], [str(path)]).entities
    _check_family(entity)


def test_damaged_lines_are_skipped_and_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "damaged.ndjson"
    lines = [json.dumps(d) for d in _family(tmp_path)]
    lines.insert(3, '{"process": {"entity_id": "E1", "broken')
    path.write_text("\n".join(lines) + "\n")
    result = run_pivot(["E1"], [str(path)])
    assert (result.records, result.malformed) == (8, 1)
    _check_family(result.entities[0])


@pytest.mark.parametrize(
    ("written", "entity"),
    [
        ('"ab\\/cd"', "ab/cd"),  # an escaped slash, as some writers do
        ('"\\u0045\\u0031"', "E1"),  # \u escapes
        ('"say \\"hi\\""', 'say "hi"'),  # a value JSON must escape
    ],
)
def test_an_escaped_id_is_still_found(tmp_path: Path, written: str, entity: str) -> None:
    doc = json.dumps(event(**{"process.entity_id": "PLACEHOLDER"}))
    path = tmp_path / "x.ndjson"
    path.write_text(doc.replace('"PLACEHOLDER"', written) + "\n")
    (found,) = run_pivot([entity], [str(path)]).entities
    assert found.events == 1


def test_ids_with_pattern_characters_and_many_ids(tmp_path: Path) -> None:
    """The prefilter asks one pattern for every id: characters that mean something in a
    pattern are taken literally ("a+b" is not "aab"), and hundreds of ids cost one pass
    of the fast reader."""
    odd = ["a+b", "(x)|y", "a.b*c?", "[z]^$", "{2}"]
    lines = pl.Series([json.dumps({"id": text}) for text in [*odd, "aab", "y", "axbc", "zz"]])
    could = IdPrefilter(tuple(odd)).could_match(pl.col("line"))
    assert lines.to_frame("line").select(could).to_series().to_list() == [True] * 5 + [False] * 4
    docs = [event(**{"process.entity_id": entity}) for entity in [*odd, "aab", "y", "axbc"]]
    path = tmp_path / "x.ndjson"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    many = [*odd, *(f"absent-{n}" for n in range(300))]
    result = run_pivot(many, [str(path)])
    found = {e.entity_id: e.events for e in result.entities if e.events}
    assert found == dict.fromkeys(odd, 1)
    assert len(result.unknown) == 300
    assert result.files[0].reader == "fast"


def test_queries_quote_ids() -> None:
    ids = ['a"b', "c\\d"]
    assert esql_query(ids).splitlines()[1] == (
        '| WHERE process.entity_id IN ("a\\"b", "c\\\\d") '
        'OR process.parent.entity_id IN ("a\\"b", "c\\\\d")'
    )
    assert kql_filter(ids) == (
        'process.entity_id : ("a\\"b" or "c\\\\d") or process.parent.entity_id : ("a\\"b" or "c\\\\d")'
    )


def test_cli_table_json_ndjson_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    table = runner.invoke(app, ["pivot", RCLONE, "nope", str(SAMPLE_DIR), "--format", "table"])
    assert table.exit_code == 0
    assert "rclone.exe copy C:\\Users\\jdoe\\Documents remote:loot" in table.stdout
    assert "not found: no event in the export" in table.stdout
    assert "FROM logs-endpoint.events.*" in table.stdout
    assert "entity ids found                      1 of 2" in table.stderr
    assert "not found: nope" in table.stderr
    out = tmp_path / "pivot.json"
    done = runner.invoke(app, ["pivot", RCLONE, str(SAMPLE_DIR), "-o", str(out), "-q"])
    assert done.exit_code == 0 and done.stderr == ""
    whole = json.loads(out.read_text())
    assert whole["entities"][0]["network"][0]["bytes_out"] == 3344682261
    assert whole["esql"].startswith("FROM logs-endpoint.events.*")
    lines = runner.invoke(app, ["pivot", RCLONE, ONEDRIVE, str(SAMPLE_DIR), "--format", "ndjson"])
    assert [json.loads(x)["entity_id"] for x in lines.stdout.splitlines()] == [RCLONE, ONEDRIVE]
    bad = runner.invoke(app, ["pivot", RCLONE, str(SAMPLE_DIR), "--format", "csv"])
    assert bad.exit_code == 2
    assert "'csv' is not one of table, json, ndjson for pivot" in bad.stderr
    missing = runner.invoke(app, ["pivot", RCLONE, "gone"])
    assert missing.exit_code == 2
    assert missing.stderr == (
        "Error: pivot: no export given (no argument names an existing file, directory or "
        f"glob match; read as entity ids: {RCLONE}, gone); check the paths\n"
    )


def test_installed_command(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "egress-offline"
    done = subprocess.run(
        [str(exe), "pivot", RCLONE, str(SAMPLE_DIR)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["entities"][0]["children"][1]["process.pid"] == "7404"


def test_stdin_is_read_twice_and_values_cannot_drive_the_terminal(tmp_path: Path) -> None:
    docs = _family(tmp_path)
    docs[1]["process"]["command_line"] = "evil.exe \x1b[2J\u202e"
    text = "".join(json.dumps(d) + "\n" for d in docs)
    done = CliRunner().invoke(app, ["pivot", "E1", "-", "--format", "table", "-q"], input=text)
    assert done.exit_code == 0, done.stderr
    assert "command line    evil.exe \\x1b[2J\\u202e" in done.stdout
    assert "\x1b" not in done.stdout and "\u202e" not in done.stdout
    assert "C:\\parent.exe" in done.stdout  # the parent, found in the second pass


def test_summaries_merged_while_reading_give_the_same_pivot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events are kept only as summaries, merged every few batches: one file per event
    gives one batch per event, and merging after every one changes nothing."""
    docs = [
        *_family(tmp_path),
        event(**{"destination.address": "b.example", "source.bytes": "1.5e3"}),
        event(**{"destination.address": "c.example", "event.action": "connection_attempted"}),
    ]
    for i, doc in enumerate(docs):
        (tmp_path / f"{i:02d}.ndjson").write_text(json.dumps(doc) + "\n")
    whole = run_pivot(["E1"], [str(tmp_path)]).as_dict()
    monkeypatch.setattr("egress_offline.pivot.summaries.COMPACT", 1)
    merged = run_pivot(["E1"], [str(tmp_path)]).as_dict()
    assert merged == whole
    network = {n["destination.address"]: n for n in whole["entities"][0]["network"]}
    assert network["b.example"]["bytes_out"] == 1024**3 + 1500
    assert (network["c.example"]["connections"], network["c.example"]["events"]) == (0, 1)
    assert whole["entities"][0]["events"] == 5


def test_copies_of_a_process_event_are_kept_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same start event 30,000 times (a 27 KB zstd file of 300 MB of them peaked at
    1.38 GB, now 591 MB): kept once, the pivot as with one copy; the events still count
    each (what the summaries hold)."""
    family = _family(tmp_path)
    start_event = family[1]  # E1's start
    one = tmp_path / "one"
    many = tmp_path / "many"
    one.mkdir()
    many.mkdir()
    (one / "x.ndjson").write_text("".join(json.dumps(d) + "\n" for d in family))
    (many / "x.ndjson").write_text(
        "".join(json.dumps(d) + "\n" for d in family) + (json.dumps(start_event) + "\n") * 30_000
    )
    kept: list[int] = []
    processes = Found.processes
    monkeypatch.setattr(Found, "processes", lambda self: kept.append(
        (found := processes(self)).height) or found)  # fmt: skip
    once = run_pivot(["E1"], [str(one)]).as_dict()["entities"][0]
    held, kept[:] = list(kept), []
    again = run_pivot(["E1"], [str(many)]).as_dict()["entities"][0]
    assert kept == held  # the process events held, pass by pass: as many with the copies
    assert again["events"] == once["events"] + 30_000
    assert {**again, "events": 0} == {**once, "events": 0}


# -------------------------------------------------------- held to a model, at random

_ENTITY_VALUES = st.sampled_from(["A", "B", "C", ["A", "B"], ["A", "A"], None])
_RANDOM_EVENTS = st.lists(
    st.fixed_dictionaries(
        {
            "entity": _ENTITY_VALUES,
            "parent": st.sampled_from(["A", "P", ["A", "P"], None]),
            "category": st.sampled_from(["network", "process", ["network", "x"]]),
            "action": st.sampled_from(["disconnect_received", "connection_attempted", "start"]),
            "address": st.sampled_from(["x.example", "y.example", ["x.example", "z"], None]),
            "bytes": st.one_of(
                st.none(), st.integers(0, 2**40), st.lists(st.integers(0, 99), max_size=3)
            ),
            "minute": st.integers(0, 50),
            "file": st.integers(0, 3),
        }
    ),
    max_size=40,
)


def _values(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def _model(rows: list[dict[str, Any]], entity: str) -> dict[str, Any]:
    """What pivot must say of ``entity``'s events and network, by hand."""
    own = [r for r in rows if entity in _values(r["entity"])]
    network: dict[Any, dict[str, Any]] = {}
    for r in own:
        if "network" not in _values(r["category"]):
            continue
        for address in dict.fromkeys(_values(r["address"])) or [None]:
            slot = network.setdefault(
                address, {"out": 0, "n": 0, "events": 0, "connections": 0, "minutes": []}
            )
            slot["out"] += sum(_values(r["bytes"]))
            slot["n"] += len(_values(r["bytes"]))
            slot["events"] += 1
            slot["connections"] += r["action"] == "disconnect_received"
            slot["minutes"].append(r["minute"])
    children = {
        child
        for r in rows
        if entity in _values(r["parent"])
        for child in _values(r["entity"])
        if child != entity
    }
    return {
        "events": len(own),
        "network": {
            address: (
                slot["out"] if slot["n"] else None,
                slot["events"],
                slot["connections"],
                min(slot["minutes"]),
                max(slot["minutes"]),
            )
            for address, slot in network.items()
        },
        "children": children,
    }


def _as_doc(row: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@timestamp": f"2024-05-01T10:{row['minute']:02d}:00.0000000Z",
        "event": {"category": row["category"], "action": row["action"]},
        "process": {"entity_id": row["entity"], "parent": {"entity_id": row["parent"]}},
        "destination": {"address": row["address"]},
        "source": {"bytes": row["bytes"]},
    }
    return doc


@pytest.mark.slow
@given(_RANDOM_EVENTS, st.sampled_from([1, 2, 64]))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_pivot_agrees_with_a_model_on_random_events(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]], compact: int
) -> None:
    """Random events over several files (one batch each), summaries merged every
    ``compact`` batches: events, network per destination and children as the model says."""
    directory = tmp_path_factory.mktemp("pivot")
    texts: dict[str, int] = {}  # a file of the same bytes as an earlier one is read once
    for number in range(4):
        part = [_as_doc(r) for r in rows if r["file"] == number]
        text = "".join(json.dumps(d) + "\n" for d in part)
        texts.setdefault(text, number)
        (directory / f"{number}.ndjson").write_text(text)
    rows = [r for r in rows if r["file"] in texts.values()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("egress_offline.pivot.summaries.COMPACT", compact)
        result = run_pivot(["A", "B"], [str(directory)])
    for entity in result.entities:
        expected = _model(rows, entity.entity_id)
        assert entity.events == expected["events"]
        got = {
            n["destination.address"]: (
                n["bytes_out"],
                n["events"],
                n["connections"],
                int(n["first_seen"][14:16]),
                int(n["last_seen"][14:16]),
            )
            for n in entity.network
        }
        assert got == expected["network"]
        assert {c["process.entity_id"] for c in entity.children} == expected["children"]


def test_progress_is_told_for_both_passes() -> None:
    told: list[tuple[str, int, int]] = []
    run_pivot(
        [RCLONE],
        [str(SAMPLE_DIR / "endpoint-process.ndjson.gz")],
        progress=lambda name, number, files, _fraction, _size: told.append((name, number, files)),
    )
    assert told[0][1:] == (1, 1)
    assert told[-1] == (told[0][0] + " (parents)", 2, 2)


def test_the_second_pass_reads_only_files_that_may_hold_process_events(tmp_path: Path) -> None:
    """Network events alone: no second pass. A process event whose category is written
    with an escape, in another file: that file is read again, and the parent found."""
    told: list[str] = []

    def hook(name: str, _number: int, _files: int, _fraction: float, _size: int) -> None:
        told.append(name)

    network = tmp_path / "network.ndjson"
    network.write_text(json.dumps(event(**{"process.parent.entity_id": "P"})) + "\n")
    (entity,) = run_pivot(["E1"], [str(network)], progress=hook).entities
    assert entity.parent is None
    assert not [name for name in told if name.endswith("(parents)")]

    escaped = tmp_path / "process.ndjson"
    text = json.dumps(start("P", exe="C:\\parent.exe"), separators=(",", ":"))
    escaped.write_text(text.replace('["process"]', '["proc\\u0065ss"]') + "\n")
    told.clear()
    (entity,) = run_pivot(["E1"], [str(network), str(escaped)], progress=hook).entities
    assert entity.parent is not None
    assert entity.parent["process.executable"] == "C:\\parent.exe"
    assert {name for name in told if name.endswith("(parents)")} == {f"{escaped} (parents)"}


def test_parquet_process_events_are_found_in_the_second_pass(tmp_path: Path) -> None:
    network = tmp_path / "network.ndjson"
    network.write_text(json.dumps(event(**{"process.parent.entity_id": "P"})) + "\n")
    processes = tmp_path / "processes.parquet"
    pl.DataFrame([flatten_keys(start("P", exe="C:\\parent.exe"))]).write_parquet(processes)
    (entity,) = run_pivot(["E1"], [str(network), str(processes)]).entities
    assert entity.parent is not None
    assert entity.parent["process.executable"] == "C:\\parent.exe"


def test_pivot_on_the_real_elastic_sample_event(tmp_path: Path) -> None:
    """The real network event, as one NDJSON line: its process (no start event), its
    code signature and its one destination. Its parent id is its own id."""
    doc = json.loads(SAMPLE_EVENT.read_text())
    path = tmp_path / "sample.ndjson"
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    (entity,) = run_pivot([doc["process"]["entity_id"]], [str(path)]).entities
    assert entity.process_source == "other events"
    assert entity.process is not None
    assert entity.process["process.code_signature.subject_name"] == "Google LLC"
    assert entity.process["process.code_signature.status"] == "errorExpired"
    assert entity.children == [] and entity.parent is None
    (network,) = entity.network
    assert (network["destination.address"], network["bytes_out"], network["bytes_in"]) == (
        "64.233.191.95",
        498,
        4923,
    )


@pytest.mark.parametrize("waiting", [1, 900, 4 << 20])  # 900: about three events
def test_a_file_read_again_carefully_is_counted_once_after_summaries_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, waiting: int
) -> None:
    """A file the fast reader gives up on after it has yielded events is read again by
    the careful reader: its summaries so far must go, the earlier files' stay, even when
    summaries were merged while it was read, and whenever the events waiting to be
    summarised are (each batch's at once; some files' together, between files; all at
    the end)."""
    monkeypatch.setattr("egress_offline.pivot.summaries.COMPACT", 2)
    monkeypatch.setattr("egress_offline.pivot.summaries.WAITING", waiting)
    monkeypatch.setattr("egress_offline.readers.tuning.DECODE_BYTES", 1)  # decoded at once
    batches = fail_after_batches(monkeypatch, 4)
    for name in ("a", "b", "c"):  # three files, not three copies of one (read once)
        (tmp_path / f"{name}.ndjson").write_text(json.dumps(event(**{"host.name": name})) + "\n")
    lines = 10_000  # batches of 4,096 lines at least: the first is yielded before the damage
    (tmp_path / "d.ndjson").write_text((json.dumps(event()) + "\n") * lines)
    result = run_pivot(["E1"], [str(tmp_path)])
    assert batches == [1, 1, 1, lines]
    assert [report.reader for report in result.files] == ["fast"] * 3 + ["careful"]
    assert result.as_dict()["entities"][0]["events"] == 3 + lines


def test_events_that_wait_to_be_summarised_hold_none_of_their_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The selected events wait, gathered across batches and files, before they are
    summarised. A filtered frame's strings still point into the whole batch's buffers
    (over 4 GB of Parquet, waiting frames held 1.4 GB), so every frame that waits is a
    detached copy."""
    from egress_offline.pivot import run as pivot_run  # noqa: PLC0415
    from egress_offline.pivot import summaries  # noqa: PLC0415

    detached: set[int] = set()
    real_detached = summaries.detached

    def detach(frame: pl.DataFrame) -> pl.DataFrame:
        copy = real_detached(frame)
        detached.add(id(copy))
        return copy

    waited: list[bool] = []
    real_add = summaries.Waiting.add

    def add(self: Any, frame: pl.DataFrame) -> None:
        waited.append(id(frame) in detached)
        real_add(self, frame)

    monkeypatch.setattr(pivot_run, "detached", detach)
    monkeypatch.setattr(summaries.Waiting, "add", add)
    # each file's events in a batch of their own: decoded, and handed on, one by one
    monkeypatch.setattr("egress_offline.readers.tuning.DECODE_BYTES", 1)
    monkeypatch.setattr("egress_offline.readers.tuning.GATHER_BYTES", 1)
    for name in ("a", "b"):  # two files, not two copies of one (read once)
        (tmp_path / f"{name}.ndjson").write_text(json.dumps(event(**{"host.name": name})) + "\n")
    frame = pl.read_ndjson(tmp_path / "a.ndjson")
    frame.write_parquet(tmp_path / "c.parquet")
    result = run_pivot(["E1"], [str(tmp_path)])
    assert result.as_dict()["entities"][0]["events"] == 3
    assert waited == [True, True, True]


def test_started_is_the_start_event_s_time_else_unknown(tmp_path: Path) -> None:
    """Without a start event, the time of the first event was shown as ``started``: it
    is unknown, and the first time seen is said as such; in the children's table too.
    An id with children but no event of its own failed (no process to show)."""
    docs = [
        *_family(tmp_path),
        event(**{"process.entity_id": "C3", "process.parent.entity_id": "X"}),
    ]
    path = tmp_path / "family.ndjson"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    result = run_pivot(["E1", "C1", "X"], [str(path)]).as_dict()
    assert [(e["started"], e["first_seen"]) for e in result["entities"]] == [
        ("2024-05-01T09:00:00.000Z", "2024-05-01T08:30:00.000Z"),
        (None, "2024-05-01T11:00:00.000Z"),
        (None, None),
    ]
    assert result["entities"][1]["process"]["@timestamp"] is None
    text = pivot_text(result, width=100)
    e1, c1, x = (part.split("\n") for part in text.split("process.entity_id ")[1:4])
    assert e1[5] == "  started         2024-05-01T09:00:00.000Z"
    assert e1[22:30] == [
        "  children (2)",
        "    started                   first seen                pid  executable    command line",
        "        entity id",
        "    " + "─" * 83,
        "    2024-05-01T09:05:00.000Z  2024-05-01T09:05:00.000Z   42  C:\\child.exe  -",
        "        C2",
        "    unknown                   2024-05-01T11:00:00.000Z    -  C:\\evil.exe   -",
        "        C1",
    ]
    assert (
        c1[5] == "  started         unknown (no start event; first seen 2024-05-01T11:00:00.000Z)"
    )
    assert x[:9] == [
        "X",
        "  no event of its own in the export; only its children's",
        "  children (1)",
        "    started  first seen                pid  executable   command line",
        "        entity id",
        "    " + "─" * 65,
        "    unknown  2024-05-01T11:00:00.000Z    -  C:\\evil.exe  -",
        "        C3",
        "  network, per destination (0)",
    ]
