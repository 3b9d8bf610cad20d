"""Hostile input: extremes, interrupted runs, and where output may go.

(Damaged compression and damaged lines are in test_layouts.py, unreadable inputs in
test_errors.py, attacker-chosen strings in test_cli.py and test_writers.py, random damage in
test_fuzz.py, output paths and a full disk in test_outputs.py.)
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from egress_offline import HuntResult, HuntSpec, run_hunt
from egress_offline.cli import app
from egress_offline.engine import ingest as ingest_module
from egress_offline.readers import tuning
from tests.helpers import NOW, GiB, event, ndjson

NOW_TEXT = "2024-05-01T12:00:00Z"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["hunt", *args])
    return result.exit_code, result.stdout, result.stderr


def entities(result: object) -> list[tuple[int, str]]:
    rows = result.rows.to_dicts()  # type: ignore[attr-defined]
    return [(r["total_bytes_out"], r["process.entity_id"]) for r in rows]


def around(middle: bytes) -> bytes:
    """A line between two good records, E1 before and E2 after."""
    return ndjson([event()]) + middle + b"\n" + ndjson([event(**{"process.entity_id": "E2"})])


# ------------------------------------------------------------------------------ extremes


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_50_mb_line_among_normal_ones(tmp_path: Path, gzipped: bool) -> None:
    huge = event(**{"process.entity_id": "BIG"})
    huge["message"] = "A" * (50 * 1024 * 1024)
    body = around(json.dumps(huge).encode())
    path = tmp_path / ("x.ndjson.gz" if gzipped else "x.ndjson")
    path.write_bytes(gzip.compress(body, compresslevel=1) if gzipped else body)
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert entities(result) == [(GiB, "BIG"), (GiB, "E1"), (GiB, "E2")]
    assert (result.counts.records, result.counts.malformed) == (3, 0)


def test_lines_longer_than_a_read_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Polars reads a file of lines a few MiB at a time (``readers.tuning.READ_SIZE``): a line
    longer than that spans reads, and must still be one record. Here every line does. The
    setting is Polars' own (it says so when verbose), and is left set for later scans."""
    monkeypatch.delenv("POLARS_FORCE_NDJSON_READ_SIZE", raising=False)
    monkeypatch.setattr("egress_offline.readers.tuning.READ_SIZE", 700)
    path = _forty_with_one_long_line(tmp_path)
    capfd.readouterr()
    with pl.Config(verbose=True):
        result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert "fixed_read_size: Some(700)" in capfd.readouterr().err
    assert os.environ["POLARS_FORCE_NDJSON_READ_SIZE"] == "700"
    _assert_forty_read_whole(result)


def _forty_with_one_long_line(tmp_path: Path) -> Path:
    """Forty matching events, one line of them 100 KB long."""
    docs = [event(**{"process.entity_id": f"E{i}"}) for i in range(40)]
    docs[7]["message"] = "A" * 100_000
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson(docs))
    return path


def _assert_forty_read_whole(result: HuntResult) -> None:
    assert sorted(entities(result)) == sorted((GiB, f"E{i}") for i in range(40))
    assert (result.counts.records, result.counts.malformed) == (40, 0)


@pytest.mark.parametrize("user", [None, "5000"])
def test_lines_across_fetched_pieces_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: str | None
) -> None:
    """Polars fetches the file's bytes ahead in pieces (``readers.tuning.FETCH_SIZE``), which
    lines span: every line is still one record. The setting is set once and left set; a
    value the user has set is kept."""
    if user is None:
        monkeypatch.delenv("POLARS_NDJSON_CHUNK_SIZE", raising=False)
    else:
        monkeypatch.setenv("POLARS_NDJSON_CHUNK_SIZE", user)
    monkeypatch.setattr("egress_offline.readers.tuning.FETCH_SIZE", 700)
    result = run_hunt([str(_forty_with_one_long_line(tmp_path))], HuntSpec(now=NOW))
    assert os.environ["POLARS_NDJSON_CHUNK_SIZE"] == (user or "700")
    _assert_forty_read_whole(result)


@pytest.mark.parametrize("before", [None, "123456", "ours"])
def test_polars_own_reads_without_line_ends_or_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
    before: str | None,
) -> None:  # fmt: skip
    """A file whose first 64 KiB hold no line end (one huge line, or old Mac line ends)
    is read with Polars' growing reads: with fixed ones, a line of N reads is copied N
    times. A read size the user has set is kept; ours (set by an earlier scan) is set
    again afterwards."""
    ours = str(tuning.READ_SIZE)
    user = ours if before == "ours" else before
    if user is None:
        monkeypatch.delenv("POLARS_FORCE_NDJSON_READ_SIZE", raising=False)
    else:
        monkeypatch.setenv("POLARS_FORCE_NDJSON_READ_SIZE", user)
    huge = event(**{"process.entity_id": "BIG"})
    huge["message"] = "A" * 70_000
    path = tmp_path / "x.ndjson"
    path.write_bytes(json.dumps(huge).encode())
    capfd.readouterr()
    with pl.Config(verbose=True):
        assert entities(run_hunt([str(path)], HuntSpec(now=NOW))) == [(GiB, "BIG")]
    seen = "None" if before in (None, "ours") else f"Some({user})"
    assert f"fixed_read_size: {seen}" in capfd.readouterr().err
    assert os.environ.get("POLARS_FORCE_NDJSON_READ_SIZE") == user


@pytest.mark.parametrize("can_match", [True, False])
def test_nesting_100000_levels_deep(tmp_path: Path, can_match: bool) -> None:
    """Valid JSON that no cluster would index (its parser stops at 1,000 levels): a line
    that may match is decoded, found too deep and counted as malformed; one that cannot
    match is judged by its shape. Either way the records around it are untouched."""
    deep = "[" * 100_000 + "]" * 100_000
    doc = event(**{"process.entity_id": "DEEP"}) if can_match else {"message": "x"}
    line = json.dumps(doc)[:-1] + ', "x": ' + deep + "}"
    path = tmp_path / "deep.ndjson"
    path.write_bytes(around(line.encode()))
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert entities(result) == [(GiB, "E1"), (GiB, "E2")]
    assert result.counts.records == 3
    if can_match:
        assert result.files[0].positions == ["line 2: nested too deeply to decode"]
    else:
        assert result.counts.malformed == 0


@pytest.mark.parametrize("command", ["hunt", "sweep"])
def test_a_json_document_nested_deeper_than_python_reads_is_one_error(
    tmp_path: Path, command: str
) -> None:
    """3,000 levels of arrays in a 6 KB file: the sniff's look at the document met
    Python's recursion limit and ended in a traceback; it is told when the file is read."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 3000 + "]" * 3000)
    result = CliRunner().invoke(app, [command, str(path), "-q"])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"Error: {path}: the JSON document is nested too deeply to read\n"


def test_ten_million_tiny_events(tmp_path: Path) -> None:
    path = tmp_path / "tiny.ndjson"
    with path.open("wb") as out:
        out.write(ndjson([event()]))
        for _ in range(100):
            out.write(b"{}\n" * 100_000)
        out.write(ndjson([event(**{"process.entity_id": "E2"})]))
    started = time.perf_counter()
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert entities(result) == [(GiB, "E1"), (GiB, "E2")]
    assert (result.counts.records, result.counts.malformed) == (10_000_002, 0)
    # not a speed target (those live in benchmarks/): a guard against per-line Python
    assert time.perf_counter() - started < 120


# ------------------------------------------------------------------ where output may go


def test_output_inside_an_input_directory_is_refused_before_reading(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "a.ndjson").write_bytes(ndjson([event()]))
    before = sorted(p.name for p in evidence.iterdir())
    code, _, err = run(str(evidence), "-o", str(evidence / "sub" / "out.csv"))
    assert code == 2
    assert err == (
        f"Error: {evidence / 'sub' / 'out.csv'}: is inside the input directory {evidence}; "
        "write the result outside it (input directories are never written to)\n"
    )
    code, _, err = run(str(evidence), "--report", str(evidence / "report.json"))
    assert code == 2
    assert "is inside the input directory" in err
    assert sorted(p.name for p in evidence.iterdir()) == before


def _installed(*args: str, stdin: Path | None = None, cwd: Path | None = None
               ) -> tuple[int, str]:  # fmt: skip
    """The installed command's exit code and standard error, standard input ``stdin``."""
    exe = shutil.which("egress-offline", path=str(Path(sys.executable).parent))
    assert exe, "egress-offline is not installed: pip install ."
    with (stdin or Path(os.devnull)).open("rb") as given:
        done = subprocess.run([exe, *args], stdin=given, capture_output=True, cwd=cwd,
                              timeout=120, check=False)  # fmt: skip
    return done.returncode, done.stderr.decode()


@pytest.mark.parametrize("option", ["-o", "--report", "--html"])
def test_standard_input_s_file_is_never_an_output(tmp_path: Path, option: str) -> None:
    """``hunt - -o evidence.ndjson < evidence.ndjson`` replaced the evidence with the
    rows (and ``-o /dev/stdin`` appended them to it): standard input was no input to
    the check."""
    evidence = tmp_path / "evidence.ndjson"
    evidence.write_bytes(ndjson([event()]))
    before = evidence.read_bytes()
    for target in (str(evidence), "/dev/stdin"):
        if option == "--html" and target == "/dev/stdin":
            continue  # --html needs plotly, and says so first
        code, err = _installed("hunt", "-", "-q", option, target, stdin=evidence)
        assert code == 2, err
        assert err.endswith(": is one of the inputs; write the result to another file "
                            "(evidence is never modified)\n")  # fmt: skip
    assert evidence.read_bytes() == before
    code, err = _installed("hunt", "-", "-q", "-o", str(tmp_path / "out.csv"), stdin=evidence)
    assert (code, err) == (0, "")  # standard input as a pipe or file of its own: read


def test_an_input_is_known_by_its_inode_not_its_name(tmp_path: Path) -> None:
    """A hard link to the evidence, as ``-o`` or written through ``/dev/stdout``, was
    no input to the check (the rows appended to the evidence); nor a CIDR file read."""
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "a.ndjson").write_bytes(ndjson([event()]))
    before = (evidence / "a.ndjson").read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    os.link(evidence / "a.ndjson", other / "link.ndjson")
    code, _, err = run(str(evidence / "a.ndjson"), "-o", str(other / "link.ndjson"))
    assert (code, err) == (2, f"Error: {other / 'link.ndjson'}: is one of the inputs; write "
                              "the result to another file (evidence is never modified)\n")  # fmt: skip
    exe = shutil.which("egress-offline", path=str(Path(sys.executable).parent))
    assert exe
    with (other / "link.ndjson").open("ab") as appended:
        done = subprocess.run([exe, "hunt", str(evidence / "a.ndjson"), "-o", "/dev/stdout"],
                              stdout=appended, capture_output=False, stderr=subprocess.PIPE,
                              check=False, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert (evidence / "a.ndjson").read_bytes() == before
    cidrs = tmp_path / "proxies.txt"
    cidrs.write_text("10.9.9.9/32\n")
    code, _, err = run(str(evidence), "--exclude-cidr-file", str(cidrs), "--report", str(cidrs))
    assert (code, err) == (2, f"Error: {cidrs}: is the file of CIDR ranges the run reads "
                              f"({cidrs}); write the result to another file\n")  # fmt: skip
    assert cidrs.read_text() == "10.9.9.9/32\n"


def test_standard_output_on_an_input_is_refused(tmp_path: Path) -> None:
    """``hunt evidence.ndjson >> evidence.ndjson`` appended the rows to the evidence, and
    ``hunt dir > dir/out.csv`` wrote into an input directory: standard output, the
    default output, was not checked."""
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "a.ndjson").write_bytes(ndjson([event()]))
    before = (evidence / "a.ndjson").read_bytes()
    exe = shutil.which("egress-offline", path=str(Path(sys.executable).parent))
    assert exe
    for given, target, why in (
        (evidence / "a.ndjson", evidence / "a.ndjson",
         "is one of the inputs; write the result to another file (evidence is never modified)"),
        (evidence, evidence / "out.csv", f"is inside the input directory {evidence}; write "
         "the result outside it (input directories are never written to)"),
    ):  # fmt: skip
        with target.open("ab") as stdout:
            done = subprocess.run([exe, "hunt", str(given), "--all-time", "-q"],
                                  stdout=stdout, stderr=subprocess.PIPE, check=False,
                                  timeout=120)  # fmt: skip
        assert (done.returncode, done.stderr.decode()) == (2, f"Error: standard output: {why}\n")
    assert (evidence / "a.ndjson").read_bytes() == before
    with (tmp_path / "out.csv").open("wb") as stdout:  # beside the evidence: written
        done = subprocess.run([exe, "hunt", str(evidence), "--all-time", "-q"], stdout=stdout,
                              stderr=subprocess.PIPE, check=False, timeout=120)  # fmt: skip
    assert done.returncode == 0
    assert (tmp_path / "out.csv").read_text().startswith("total_bytes_out,")


def test_closed_standard_input_is_said(tmp_path: Path) -> None:
    """``hunt - <&-``: a traceback (``sys.stdin`` is None), exit 1."""
    exe = shutil.which("egress-offline", path=str(Path(sys.executable).parent))
    assert exe
    done = subprocess.run([exe, "hunt", "-", "-q", "-o", str(tmp_path / "o.csv")],
                          stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
                          timeout=120, preexec_fn=lambda: os.close(0))  # fmt: skip
    assert (done.returncode, done.stderr.decode()) == (
        1,
        "Error: - names standard input, which is closed; pipe an export into it, or name a file\n",
    )


def test_standard_input_named_twice_is_read_once(tmp_path: Path) -> None:
    """``hunt - -``: the second copy of standard input, empty, replaced the first: 0
    records, exit 0."""
    evidence = tmp_path / "evidence.ndjson"
    evidence.write_bytes(ndjson([event()]))
    code, err = _installed("hunt", "-", "-", "--all-time", "--format", "csv", stdin=evidence)
    assert code == 0
    assert "records read                                    1" in err


def test_a_second_signal_while_the_first_is_answered_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM twice, 2 ms apart: the second raised out of the first's handling, a
    traceback and exit 1 (in 2 to 3 of 12 tries), not 143."""
    from egress_offline.cli import stopping  # noqa: PLC0415

    monkeypatch.setattr(stopping, "_STOPPED", [])
    with pytest.raises(stopping.Terminated):
        stopping.on_signal(signal.SIGTERM, None)
    stopping.on_signal(signal.SIGTERM, None)  # answered already: nothing raised
    stopping.on_signal(signal.SIGHUP, None)


def test_a_run_stopped_after_its_rows_were_written_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped between ``-o`` and ``--report``, a run said "no output file was written"
    where the rows' file had been replaced (and the report was the last run's)."""
    from egress_offline.cli import commands  # noqa: PLC0415

    def stopped(*_args: object, **_kwargs: object) -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "report_json", stopped)
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event()]))
    (tmp_path / "r.json").write_text("the last run's")
    out = tmp_path / "out.csv"
    code, _, err = run(str(path), "-q", "-o", str(out), "--report", str(tmp_path / "r.json"))
    assert (code, err) == (130, f"Error: interrupted after --output {out} had been written; "
                                "no other output file was written (each left as it was)\n")  # fmt: skip
    assert (tmp_path / "r.json").read_text() == "the last run's"
    assert out.read_text().startswith("total_bytes_out,")


def test_a_file_changed_while_hashed_has_no_hash_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SHA-256 is a second read, after the file is read: a file appended to between
    the two was recorded with the hash of bytes that were not read (and its size as
    read)."""
    from egress_offline.readers import session  # noqa: PLC0415

    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event()]))
    real = session.sha256_of

    def appended(file: Path, size: int | None = None) -> str:
        digest = real(file, size)
        with file.open("ab") as grown:
            grown.write(ndjson([event(**{"process.entity_id": "LATE"})]))
        return digest

    monkeypatch.setattr(session, "sha256_of", appended)
    result = run_hunt([str(path)], HuntSpec(now=NOW), hash_inputs=True)
    (report,) = result.files
    assert report.sha256 is None
    assert report.notes[-1].endswith(
        "; its SHA-256 is not recorded (it would not be of what was read)"
    )
    monkeypatch.setattr(session, "sha256_of", real)
    assert run_hunt([str(path)], HuntSpec(now=NOW), hash_inputs=True).files[0].sha256 == (
        real(path)
    )


def test_scratch_files_never_go_into_input_directories(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "a.ndjson").write_bytes(ndjson([event()] * 50))
    (evidence / "b.ndjson.gz").write_bytes(gzip.compress(ndjson([event()]) + b"junk\n"))
    before = {p: p.stat().st_mtime_ns for p in evidence.rglob("*")}
    code, _, _ = run(str(evidence), "-o", str(tmp_path / "out.csv"), "-q")
    assert code == 0
    assert {p: p.stat().st_mtime_ns for p in evidence.rglob("*")} == before


# ------------------------------------------------------------------- interrupted runs


def test_ctrl_c_while_reading_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event()]))

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest_module, "reduce_batch", interrupted)
    target = tmp_path / "out.csv"
    code, _, err = run(str(path), "-o", str(target))
    assert code == 130
    assert err == "Error: interrupted; no output file was written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ndjson"]


def test_ctrl_c_on_the_installed_command(tmp_path: Path) -> None:
    """A real SIGINT to the installed command while it reads standard input."""
    exe = shutil.which("egress-offline", path=str(Path(sys.executable).parent))
    assert exe, "egress-offline is not installed: pip install ."
    target = tmp_path / "out.csv"
    process = subprocess.Popen(
        [exe, "hunt", "-", "-o", str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    process.stdin.write(ndjson([event()]))
    process.stdin.flush()
    time.sleep(2)  # started, and blocked reading the open pipe
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.decode().splitlines() == ["Error: interrupted; no output file was written"]
    assert list(tmp_path.iterdir()) == []


def test_timestamps_beyond_the_years_python_can_show(tmp_path: Path) -> None:
    """A date field holds epoch ms far outside years 1-9999; the summary and the report
    still show them, in ISO-8601's signed form."""
    far = 253402300800000  # 10000-01-01
    path = tmp_path / "x.ndjson"
    path.write_bytes(
        ndjson([event(**{"@timestamp": far}), event(**{"@timestamp": -62135596800001})])
    )
    code, _, err = run(
        str(path), "--report", str(tmp_path / "r.json"), "-o", str(tmp_path / "o.csv")
    )
    assert code == 0, err
    assert "data:   0000-12-31T23:59:59.999Z .. +10000-01-01T00:00:00.000Z" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["parameters"]["now"] == "+10000-01-01T00:00:00.000Z"


# ------------------------------------------------------------------------ damaged lines


def test_lines_that_are_not_objects_and_nul_padding(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    path.write_bytes(
        around(b'42\n"disconnect_received windows"\nnull\ntrue\n[]')
        + b"\x00" * 64  # a crashed writer's padding, with no newline
    )
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert entities(result) == [(GiB, "E1"), (GiB, "E2")]
    report = result.files[0]
    assert (report.records, report.malformed) == (8, 6)
    assert report.positions[:2] == [
        "line 2: not a complete JSON object",
        "line 3: not a JSON object (a str)",
    ]


@pytest.mark.parametrize("can_match", [True, False])
def test_duplicate_keys_the_first_wins(tmp_path: Path, can_match: bool) -> None:
    first = '"process": {"entity_id": "FIRST", "executable": "a.exe"}'
    second = '"process": {"entity_id": "SECOND", "executable": "b.exe"}'
    doc = json.dumps(event())[1:-1].replace('"process": {"entity_id": "E1", ', '"p": {')
    line = "{" + first + ", " + doc + ", " + second + "}"
    if not can_match:  # a \\u escape makes the line take the general, exact schema
        line = line.replace('"a.exe"', '"\\u0061.exe"')
    path = tmp_path / "x.ndjson"
    path.write_text(line + "\n")
    result = run_hunt([str(path)], HuntSpec(now=NOW))
    assert entities(result) == [(GiB, "FIRST")]
    assert result.rows["process.executable"].to_list() == ["a.exe"]


def test_attacker_strings_are_kept_verbatim_in_data_files(tmp_path: Path) -> None:
    hostile = "=cmd|'/C calc'!A0 \x1b]52;c;ZXZpbA==\x07 \u202egpj.exe [red]x[/]"
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event(**{"process.executable": hostile})]))
    for name in ("o.csv", "o.ndjson", "o.json"):
        code, _, _ = run(str(path), "--now", NOW_TEXT, "-q", "-o", str(tmp_path / name))
        assert code == 0
    assert json.loads((tmp_path / "o.ndjson").read_text())["process.executable"] == hostile
    assert json.loads((tmp_path / "o.json").read_text())[0]["process.executable"] == hostile
    assert hostile in (tmp_path / "o.csv").read_text()
