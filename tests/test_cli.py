"""The command: formats, summary, report, exit codes; once through the installed script."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from egress_offline import __version__
from egress_offline.cli import app
from egress_offline.writers import table_text
from tests.helpers import GiB, event, ndjson

NOW = "2024-05-01T12:00:00Z"


def invoke(*args: str, input: bytes | None = None) -> Any:
    return CliRunner().invoke(app, ["hunt", *args], input=input)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "export.ndjson"
    path.write_bytes(
        ndjson(
            [
                event(**{"source.bytes": 3 * GiB, "process.executable": "=cmd|' /C calc'!A0"}),
                event(
                    **{
                        "process.entity_id": "E2",
                        "destination.port": [443, 8443],
                        "user.name": "bob",
                    }
                ),
                event(**{"process.entity_id": "small", "source.bytes": 10}),
                event(**{"destination.ip": "10.0.0.1", "process.entity_id": "private"}),
            ]
        )
    )
    return path


def test_csv_is_the_default_when_piped(export: Path) -> None:
    result = invoke(str(export), "--now", NOW)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "total_bytes_out,process.entity_id,destination.address,process.executable,host.name,"
        "user.name,connections,first_seen,last_seen,destination.port",
        "3221225472,E1,8.8.8.8,=cmd|' /C calc'!A0,WKS-1,alice,1,2024-05-01T11:00:00.000Z,"
        "2024-05-01T11:00:00.000Z,443",
        "1073741824,E2,8.8.8.8,C:\\evil.exe,WKS-1,bob,1,2024-05-01T11:00:00.000Z,"
        '2024-05-01T11:00:00.000Z,"[""443"", ""8443""]"',
    ]


def test_summary_goes_to_stderr_and_adds_up(export: Path) -> None:
    result = invoke(str(export), "--now", NOW)
    lines = result.stderr.splitlines()
    assert lines[0].split() == ["records", "read", "4"]
    assert lines[1].split() == ["malformed,", "skipped", "0"]
    assert lines[5].split() == ["destination.ip", "public", "3"]
    assert lines[3].split() == ["@timestamp", "in", "window", "4"]
    assert lines[4].split() == ["windows", "network", "disconnect_received", "4"]
    assert lines[7].split() == ["flagged", "(>=", "1073741824", "bytes)", "2"]
    assert "window: @timestamp > 2024-05-01T04:00:00.000Z" in result.stderr
    assert "data:   2024-05-01T11:00:00.000Z .. 2024-05-01T11:00:00.000Z" in result.stderr


def test_quiet(export: Path) -> None:
    assert invoke(str(export), "--now", NOW, "-q").stderr == ""


def test_excel_safe(export: Path) -> None:
    result = invoke(str(export), "--now", NOW, "--excel-safe", "-q")
    assert ",'=cmd|' /C calc'!A0," in result.stdout


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("out.csv", "csv"),
        ("out.ndjson", "ndjson"),
        ("out.jsonl", "ndjson"),
        ("out.json", "json"),
        ("out.parquet", "parquet"),
        ("out.txt", "table"),
    ],
)
def test_format_from_extension_written_atomically(
    export: Path, tmp_path: Path, name: str, fmt: str
) -> None:
    target = tmp_path / "results" / name
    target.parent.mkdir()
    result = invoke(str(export), "--now", NOW, "-o", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert [p.name for p in target.parent.iterdir()] == [name]  # no temporary file left
    if fmt == "parquet":
        frame = pl.read_parquet(target)
        assert frame["total_bytes_out"].to_list() == [3 * GiB, GiB]
        assert frame["destination.port"].to_list() == [["443"], ["443", "8443"]]
    elif fmt == "json":
        rows = json.loads(target.read_text())
        assert rows[1]["destination.port"] == ["443", "8443"]
        assert rows[0]["first_seen"] == "2024-05-01T11:00:00.000Z"
    elif fmt == "ndjson":
        rows = [json.loads(line) for line in target.read_text().splitlines()]
        assert [r["process.entity_id"] for r in rows] == ["E1", "E2"]
        assert rows[0]["process.executable"] == "=cmd|' /C calc'!A0"  # verbatim
    elif fmt == "table":
        assert "3.00 GiB" in target.read_text()
    else:
        assert target.read_text().count("\n") == 3


def test_explicit_format_beats_extension(export: Path, tmp_path: Path) -> None:
    target = tmp_path / "rows.out"
    assert invoke(str(export), "--now", NOW, "-o", str(target), "--format", "ndjson").exit_code == 0
    assert json.loads(target.read_text().splitlines()[0])["total_bytes_out"] == 3 * GiB


def test_nulls_are_empty_csv_fields_and_json_null(tmp_path: Path) -> None:
    path = tmp_path / "nulls.ndjson"
    doc = event()
    del doc["process"]["entity_id"], doc["user"]
    path.write_bytes(ndjson([doc]))
    csv = invoke(str(path), "--now", NOW, "-q").stdout.splitlines()[1]
    assert csv.startswith(f"{GiB},,8.8.8.8,C:\\evil.exe,WKS-1,,1,")
    out = json.loads(invoke(str(path), "--now", NOW, "-q", "--format", "json").stdout)
    assert out[0]["process.entity_id"] is None
    assert out[0]["user.name"] == []


def test_report(export: Path, tmp_path: Path) -> None:
    report = tmp_path / "run.json"
    result = invoke(
        str(export),
        "--now",
        NOW,
        "--report",
        str(report),
        "--threshold",
        "1GiB",
        "--exclude-cidr",
        "9.9.9.0/24",
    )
    assert result.exit_code == 0
    data = json.loads(report.read_text())
    assert data["version"] == __version__
    assert data["parameters"]["now"] == "2024-05-01T12:00:00.000Z"
    assert data["parameters"]["now_mode"] == "fixed"
    assert data["parameters"]["window_seconds"] == 8 * 3600
    assert data["parameters"]["os_families"] == ["windows"]
    assert data["parameters"]["threshold_bytes"] == GiB
    assert len(data["parameters"]["excluded_cidrs"]) == 27
    assert data["parameters"]["excluded_cidrs"][-1] == "9.9.9.0/24"
    (source,) = data["inputs"]
    assert source["sha256"] == hashlib.sha256(export.read_bytes()).hexdigest()
    assert source["size_bytes"] == export.stat().st_size
    assert data["counts"] == {
        "records": 4,
        "malformed": 0,
        "valid": 4,
        "after_event_match": 4,
        "after_time_window": 4,
        "after_public_destination": 3,
        "groups": 3,
        "flagged": 2,
        "duplicates_dropped": 0,
        "event_match_with_source_bytes": 4,
    }
    assert data["data_time_range"] == {
        "first": "2024-05-01T11:00:00.000Z",
        "last": "2024-05-01T11:00:00.000Z",
    }
    assert isinstance(data["elapsed_seconds"], float)


@pytest.mark.parametrize(
    ("args", "flagged"),
    [
        (["--threshold", "3GiB"], 1),
        (["--threshold", "3.3GB"], None),  # not a whole number: usage error
        (["--threshold", "3221225473"], 0),
        (["--threshold", "1KB"], 2),
        (["--threshold", "10B"], 3),
        (["--threshold", "11"], 2),
        (["--window", "30m"], 0),
        (["--window", "1h30m"], 2),
        (["--all-time"], 2),
        (["--os-family", "linux"], 0),
        (["--os-family", "linux", "--os-family", "windows"], 2),
        (["--os-family", "any"], 2),
        (["--exclude-cidr", "8.8.8.8"], 0),
        (["--now", "2024-05-01T19:00:00+02:00"], 2),
        (["--now", "2024-05-01T19:00:01"], 0),
        (["--now", "latest"], 2),
        (["--now", "wall"], 0),
    ],
)
def test_options(export: Path, args: list[str], flagged: int | None) -> None:
    base = [] if "--now" in args else ["--now", NOW]
    result = invoke(str(export), *base, *args, "-q", "--format", "ndjson")
    if flagged is None:
        assert result.exit_code == 2
        return
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == flagged


def test_exclude_cidr_file(export: Path, tmp_path: Path) -> None:
    ranges = tmp_path / "ranges.txt"
    ranges.write_text("# our own egress proxies\n\n8.8.0.0/16  # google dns\n")
    result = invoke(str(export), "--now", NOW, "--exclude-cidr-file", str(ranges), "-q")
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 1  # the header only


def test_old_export_with_wall_clock_says_what_to_do(export: Path) -> None:
    result = invoke(str(export), "--now", "wall")
    assert result.exit_code == 0
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("diagnosis:")]
    assert line.startswith("diagnosis: time window: the window (after ")
    assert "holds none of the 4 records: the data runs from 2024-05-01T11:00:00.000Z to " in line
    assert line.endswith(
        " before the window starts; --now latest anchors the window on the newest record, or "
        "use --all-time"
    )
    assert "Sysmon" not in result.stderr


def test_data_without_source_bytes_is_named(tmp_path: Path) -> None:
    path = tmp_path / "sysmon.ndjson"
    docs = [event(**{"source": {"ip": "10.0.0.5"}}) for _ in range(3)]
    path.write_bytes(ndjson(docs))
    result = invoke(str(path), "--now", NOW)
    assert result.exit_code == 0
    assert (
        "diagnosis: source.bytes: none of the 3 events with a public destination carries a "
        "source.bytes that can be summed: 3 lack it; a group without one sums to null and is "
        "never flagged"
    ) in result.stderr.splitlines()
    assert "Sysmon" not in result.stderr


def test_stdin_dash(export: Path) -> None:
    result = invoke("-", "--now", NOW, "-q", input=export.read_bytes())
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") == 3


def test_table_values_cannot_drive_the_terminal(tmp_path: Path) -> None:
    hostile = "\x1b[2J\x1b]8;;http://x\x07link\x1b]8;;\x07\x1b]52;c;ZXZpbA==\x07[link=http://x]y[/link]\u202egpj.exe\x07\x00"
    frame = pl.DataFrame({"total_bytes_out": [GiB], "process.executable": [hostile]})
    text = table_text(frame, width=400)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\x00" not in text
    assert "\\x1b[2J" in text
    assert "[link=http://x]y[/link]" in text  # shown as text, not applied as markup
    assert "\\u202egpj.exe" in text


def test_markup_in_values_is_shown_verbatim_in_a_table_file(tmp_path: Path) -> None:
    path = tmp_path / "m.ndjson"
    path.write_bytes(ndjson([event(**{"process.executable": "[bold red]x[/] \x1b[31mred"})]))
    out = tmp_path / "t.txt"
    assert invoke(str(path), "--now", NOW, "-q", "-o", str(out)).exit_code == 0
    assert "[bold red]x[/] \\x1b[31mred" in out.read_text()


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.stdout == f"egress-offline {__version__}\n"


def test_installed_command_runs_as_a_subprocess(export: Path, tmp_path: Path) -> None:
    exe = shutil.which("egress-offline", path=str(Path(sys.executable).parent)) or shutil.which(
        "egress-offline"
    )
    assert exe, "egress-offline is not installed: pip install ."
    target = tmp_path / "out.csv"
    done = subprocess.run(
        [exe, "hunt", str(export), "--now", NOW, "-o", str(target)],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert b"records read" in done.stderr
    assert target.read_text().splitlines()[1].startswith("3221225472,E1,")
    missing = subprocess.run(
        [exe, "hunt", str(tmp_path / "nope.ndjson")], capture_output=True, check=False, timeout=120
    )
    assert missing.returncode == 1
    assert missing.stderr.decode().splitlines() == [
        f"Error: {tmp_path / 'nope.ndjson'}: no such file or directory; check the path"
    ]
    module = subprocess.run(
        [sys.executable, "-m", "egress_offline", "--version"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert module.stdout.decode().strip() == f"egress-offline {__version__}"


def test_a_run_loads_only_what_it_needs(export: Path, tmp_path: Path) -> None:
    """Start-up is a fixed cost of every run. An NDJSON hunt loads neither pyarrow (only
    Parquet needs it) nor rich (only progress bars and tables) nor pydantic (typer 0.29
    builds pydantic adapters for every option on every run: 0.3 s, hence the pin)."""
    code = (
        "import sys\n"
        "from egress_offline.cli import app\n"
        "try:\n"
        f"    app(['hunt', {str(export)!r}, '-q', '--now', {NOW!r}, '-o', {str(tmp_path / 'o.csv')!r}])\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pyarrow', 'rich', 'pydantic'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pyarrow's jemalloc: Linux")
def test_native_libraries_are_set_up_before_they_load() -> None:
    """The command keeps OpenBLAS to one thread (its idle threads spin) and gives pyarrow
    its jemalloc allocator (fewer pages zeroed again); a value the user set is kept."""
    code = (
        "import os, egress_offline.cli, pyarrow as pa\n"
        "print(os.environ['OPENBLAS_NUM_THREADS'], pa.default_memory_pool().backend_name)\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "ARROW_DEFAULT_MEMORY_POOL")}  # fmt: skip
    ours = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, env=env, timeout=120)  # fmt: skip
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "1 jemalloc\n", "")
    env |= {"OPENBLAS_NUM_THREADS": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"}
    theirs = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, env=env, timeout=120)  # fmt: skip
    assert (theirs.returncode, theirs.stdout) == (0, "2 system\n")


def test_broken_pipe_is_quiet(export: Path) -> None:
    exe = shutil.which("egress-offline", path=str(Path(sys.executable).parent))
    assert exe
    done = subprocess.run(
        f"'{exe}' hunt '{export}' --now {NOW} --threshold 0 -q | head -c 1",
        shell=True,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert b"Traceback" not in done.stderr


def _unused() -> io.BytesIO:  # keep io imported for monkeypatching stdin in other tests
    return io.BytesIO()


def test_progress_hook_reports_each_file_up_to_the_end(tmp_path: Path) -> None:
    from egress_offline import HuntSpec, run_hunt  # noqa: PLC0415
    from egress_offline.readers import SAMPLING  # noqa: PLC0415

    docs = [event(**{"process.entity_id": f"P{i}"}) for i in range(300)]
    (tmp_path / "a.ndjson").write_bytes(ndjson(docs))
    (tmp_path / "b.ndjson").write_bytes(ndjson(docs) + b"\xff\n")  # careful reader
    pl.DataFrame({"source.bytes": [1, 2], "event.action": ["x", "y"]}).write_parquet(
        tmp_path / "c.parquet"
    )
    calls: list[tuple[str, int, int, float, int]] = []
    run_hunt([str(tmp_path)], progress=lambda *call: calls.append(call))
    by_file: dict[int, list[float]] = {}
    for name, number, files, fraction, size in calls:
        assert files == 3 and size > 0
        assert (number == 0) == (name == SAMPLING)
        by_file.setdefault(number, []).append(fraction)
    # 0: --now latest samples the ends of the two NDJSON files before reading any
    assert sorted(by_file) == [0, 1, 2, 3]
    assert by_file[0] == [0.5, 1.0]
    for fractions in by_file.values():
        assert fractions == sorted(fractions)
        assert fractions[-1] == 1.0
    calls.clear()
    fixed = HuntSpec(now=datetime.fromisoformat(NOW))
    run_hunt([str(tmp_path)], fixed, progress=lambda *call: calls.append(call))
    assert sorted({call[1] for call in calls}) == [1, 2, 3]  # a fixed anchor samples nothing


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_display_stays_off_when_not_a_terminal(
    export: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    """The bar shows only when standard error is a terminal. With no delay before it,
    a run that is not on a terminal must still start no bar; the same run, told that
    standard error is a terminal, starts one (so this test can fail)."""
    from egress_offline.cli import ProgressDisplay  # noqa: PLC0415

    started: list[bool] = []
    monkeypatch.setattr(ProgressDisplay, "_DELAY", 0.0)
    monkeypatch.setattr(ProgressDisplay, "_start", lambda self: started.append(True) or _NoBar())
    monkeypatch.setattr("egress_offline.cli.commands.sys", _Sys(stderr_terminal=terminal))
    result = invoke(str(export), "--now", NOW)
    assert result.exit_code == 0
    assert bool(started) is terminal
    assert "━" not in result.stderr and "\r" not in result.stderr


class _Sys:
    """The ``sys`` module as the command sees it, its standard error a terminal or not
    (CliRunner's own streams are never terminals)."""

    def __init__(self, *, stderr_terminal: bool) -> None:
        self._terminal = stderr_terminal

    def __getattr__(self, name: str) -> Any:
        value = getattr(sys, name)
        if name == "stderr":
            return _Stream(value, self._terminal)
        return value


class _Stream:
    def __init__(self, stream: Any, terminal: bool) -> None:
        self._stream, self._terminal = stream, terminal

    def isatty(self) -> bool:
        return self._terminal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _NoBar:
    """Stands in for rich's progress bar on an 80-column terminal: draws nothing."""

    console = type("Console", (), {"width": 80})()

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def test_sysmon_data_is_named_when_its_records_say_so(tmp_path: Path) -> None:
    """Sysmon's note comes from the records (event.provider and event.code), never from
    a guess: an unknown action alone is listed, not named."""
    path = tmp_path / "sysmon.ndjson"
    doc = event(**{"event.action": "Network connection detected (rule: NetworkConnect)"})
    path.write_bytes(ndjson([doc, doc]))
    result = invoke(str(path), "--now", NOW)
    assert result.exit_code == 0
    assert (
        "event.action is never 'disconnect_received' (its values: 'Network connection "
        "detected (rule: NetworkConnect)' (2))"
    ) in result.stderr
    assert "Sysmon" not in result.stderr
    sysmon = {**doc, "event": {**doc["event"], "code": "3", "provider": "Microsoft-Windows-Sysmon"}}
    path.write_bytes(ndjson([sysmon, doc]))
    result = invoke(str(path), "--now", NOW)
    assert "; 1 is a Sysmon event 3 record (event.provider Microsoft-Windows-" in result.stderr


def _progress_rows(width: int, *calls: tuple[str, int, int, float, int]) -> list[str]:
    """What the progress display shows after ``calls`` (the run being past its delay),
    drawn on a terminal ``width`` columns wide."""
    from rich.console import Console  # noqa: PLC0415

    from egress_offline.cli import ProgressDisplay  # noqa: PLC0415

    display = ProgressDisplay(enabled=True, console=Console(file=io.StringIO(), width=width))
    display._started -= 60
    try:
        for call in calls:
            display(*call)
        drawn = io.StringIO()
        Console(file=drawn, width=width).print(display._bar.make_tasks_table(display._bar.tasks))
    finally:
        display.close()
    return drawn.getvalue().splitlines()


def test_progress_display_shows_the_sampling_of_file_ends() -> None:
    """--now latest samples the ends of every file first (file number 0); on many files
    that outlasts the display's delay. It used to fail there (KeyError: None)."""
    from egress_offline.readers import SAMPLING  # noqa: PLC0415

    for width in (60, 100):
        rows = _progress_rows(width, (SAMPLING, 0, 3000, 0.4, 10**9))
        assert len(rows) == 1 and len(rows[0]) <= width
        assert rows[0].startswith("sampling the ends of the files"[: width - 46])
        assert "0.4/1.0 GB" in rows[0]
    rows = _progress_rows(100, (SAMPLING, 0, 3000, 1.0, 10**9), ("a.ndjson", 1, 3000, 0.5, 10**6))
    assert len(rows) == 1 and rows[0].startswith("[1/3000] a.ndjson ━")
    assert "0.5/1.0 MB" in rows[0]


@pytest.mark.parametrize("width", [60, 80, 200])
def test_progress_display_keeps_to_one_line_and_the_name_s_end(width: int) -> None:
    name = "/cases/2026-11/host-0042/exports/logs-endpoint.events.network-default-000017.ndjson"
    (row,) = _progress_rows(width, (name, 17, 240, 0.25, 4 * 10**9))
    assert len(row) <= width
    assert row.startswith("[17/240] ")
    assert "1.0/4.0 GB" in row and "━" in row and "0:00:00" in row
    shown = row.removeprefix("[17/240] ").split(" ━")[0]
    assert shown == name if width == 200 else shown.startswith("\u2026")
    assert name.endswith(shown.removeprefix("\u2026"))
    assert "-000017.ndjson" in shown


def test_shortened_keeps_the_end() -> None:
    from egress_offline.cli import shortened  # noqa: PLC0415

    assert shortened("abcdef", 6) == "abcdef"
    assert shortened("abcdef", 4) == "\u2026def"
