"""Every bad input: its exit code and its exact one-line message, never a traceback."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from egress_offline import DataError, HuntSpec, InputError, UsageError, run_hunt
from egress_offline.cli import app
from egress_offline.readers.sniff import KNOWN_LAYOUTS
from egress_offline.spec import parse_duration, parse_now, parse_size
from tests.helpers import event, ndjson


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["hunt", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.ndjson"
    path.write_bytes(ndjson([event()]))
    return path


def test_missing_file(tmp_path: Path) -> None:
    code, out, err = run(str(tmp_path / "missing.ndjson"))
    assert (code, out) == (1, "")
    assert (
        err == f"Error: {tmp_path / 'missing.ndjson'}: no such file or directory; check the path\n"
    )


def test_unsupported_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\n")
    code, _, err = run(str(path))
    assert code == 1
    assert err == (
        f"Error: {path}: not a supported format; give NDJSON of documents or hits "
        "(elasticdump, Logstash), a JSON array, a _search, _async_search or ES|QL response, "
        "a scroll dump, a _bulk body, a Kibana esArchiver archive, a Kibana CSV export, or "
        "Parquet (each optionally gzip or zstd, UTF-8 or UTF-16)\n"
    )


def test_corrupt_parquet_footer(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    pl.DataFrame({"source.bytes": [1, 2]}).write_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[:-12] + b"\x00" * 8 + data[-4:])
    code, _, err = run(str(path))
    assert code == 1
    assert err.startswith(f"Error: {path}: not a readable Parquet file (")
    assert err.endswith("the copy may be incomplete, export it again\n")
    assert err.count("\n") == 1


def test_parquet_without_the_needed_columns(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pl.DataFrame({"foo": [1]}).write_parquet(path)
    code, _, err = run(str(path))
    assert code == 1
    assert "the Parquet file has none of the columns the hunt reads" in err
    assert "is it an Endpoint network export?" in err


def test_zero_byte_gzip(tmp_path: Path) -> None:
    path = tmp_path / "empty.ndjson.gz"
    path.write_bytes(b"")
    code, _, err = run(str(path))
    assert code == 1
    assert err == f"Error: {path}: is empty (0 bytes); the copy is incomplete, export it again\n"


def test_directory_without_exports(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("hello\n")
    code, _, err = run(str(tmp_path))
    assert code == 1
    assert err == (
        f"Error: nothing in {tmp_path} is an export this tool understands (1 file skipped: "
        f"{tmp_path / 'README.txt'}: not an export this tool reads (skipped)); it reads "
        f"{KNOWN_LAYOUTS}\n"
    )


def test_empty_directory(tmp_path: Path) -> None:
    """A directory holding no file at all says so (not "0 files skipped: ")."""
    code, _, err = run(str(tmp_path))
    assert code == 1
    assert err == (
        f"Error: nothing in {tmp_path} is an export this tool understands (no file in it); "
        f"it reads {KNOWN_LAYOUTS}\n"
    )


def test_glob_matching_nothing(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "*.ndjson"))
    assert code == 1
    assert (
        err == f"Error: {tmp_path / '*.ndjson'}: the pattern matches no file; check the pattern\n"
    )


def test_invalid_json_document(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n{"a": 1},\n{"b": \n')
    code, _, err = run(str(path))
    assert code == 1
    assert err == (
        f"Error: {path}: not valid JSON at line 3 (Expecting value); if it holds one "
        "document per line, each line must be a complete JSON object\n"
    )


def test_strict_stops_at_the_first_malformed_record(tmp_path: Path) -> None:
    path = tmp_path / "damaged.ndjson"
    path.write_bytes(ndjson([event()]) + b"{oops\n" + ndjson([event()]))
    code, out, err = run(str(path), "--strict")
    assert (code, out) == (1, "")
    assert err == (
        f"Error: {path}: line 2: not valid JSON (Expecting property name enclosed in double "
        "quotes); run without --strict to skip and count malformed records\n"
    )
    code, _, err = run(str(path))
    assert code == 0
    assert "1 malformed skipped (first: line 2: not a complete JSON object)" in err


def test_strict_names_a_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(ndjson([event()] * 50))[:-20])
    code, _, err = run(str(path), "--strict")
    assert code == 1
    assert err.startswith(f"Error: {path}: ")


def test_strict_null_line(tmp_path: Path) -> None:
    path = tmp_path / "null.ndjson"
    path.write_bytes(ndjson([event()]) + b"null\n")
    code, _, err = run(str(path), "--strict")
    assert code == 1
    assert err == (
        f"Error: {path}: line 2: not a JSON object (null); "
        "run without --strict to skip and count malformed records\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--window", "8x"],
            "--window: '8x' is not a duration; use a number with s, m, h or d, such as 8h, 90m or 1h30m",
        ),
        (["--window", "0h"], "--window: '0h' must be longer than zero"),
        (  # beyond Python's longest timedelta: an OverflowError's traceback before
            ["--window", "3000000000d"],
            "--window: '3000000000d' is longer than the longest window, 999999999d "
            "(over two million years)",
        ),
        (
            ["--threshold", "lots"],
            "--threshold: 'lots' is not a size; use bytes (1073741824) or a unit such as 500MB, 1GiB or 2TB",
        ),
        (
            ["--now", "yesterday"],
            "--now: 'yesterday' is not 'latest', 'wall' or an ISO-8601 time such as 2024-05-01T12:00:00Z",
        ),
        (
            ["--exclude-cidr", "10.0.0.0/33"],
            "--exclude-cidr: '10.0.0.0/33' is not a CIDR block or ip address (",
        ),
        (["--format", "xml"], "--format: 'xml' is not one of csv, ndjson, json, parquet, table"),
        (
            ["-o", "result.xlsx"],
            "--output: cannot tell the format from 'result.xlsx'; add --format (csv, ndjson, json, parquet, table) or use .csv, .ndjson, .json or .parquet",
        ),
    ],
)
def test_bad_option_values_exit_2(good: Path, args: list[str], message: str) -> None:
    code, out, err = run(str(good), *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"Error: {message}")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("name", "value", "ours"),
    [
        ("POLARS_NDJSON_CHUNK_SIZE", "abc", 8388608),
        ("POLARS_NDJSON_CHUNK_SIZE", "99999999999999999999", 8388608),
        ("POLARS_FORCE_NDJSON_READ_SIZE", "0", 4194304),
        ("POLARS_FORCE_NDJSON_READ_SIZE", "4 MiB", 4194304),
    ],
)
def test_a_bad_polars_read_setting_exits_2(
    good: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, ours: int
) -> None:
    """Polars' threads panic on such a value (and every file fell back to the slow
    reader): it is named before anything is read. Parquet is read without it."""
    monkeypatch.setenv(name, value)
    code, out, err = run(str(good))
    assert (code, out) == (2, "")
    assert err == (
        f"Error: the environment variable {name}={value!r} is not a size in bytes; "
        f"unset it (egress-offline then uses {ours}) or set a whole number above 0\n"
    )
    parquet = good.with_suffix(".parquet")
    pl.DataFrame({"@timestamp": ["2024-05-01T11:00:00Z"]}).write_parquet(parquet)
    assert run(str(parquet), "--now", "2024-05-01T12:00:00Z")[0] == 0


def test_bad_line_in_cidr_file_is_named(good: Path, tmp_path: Path) -> None:
    ranges = tmp_path / "ranges.txt"
    ranges.write_text("10.0.0.0/8\n# fine\nnot-a-range\n")
    code, _, err = run(str(good), "--exclude-cidr-file", str(ranges))
    assert code == 2
    assert err.startswith(f"Error: {ranges}:3: 'not-a-range' is not a CIDR block or ip address")


def test_missing_cidr_file(good: Path, tmp_path: Path) -> None:
    code, _, err = run(str(good), "--exclude-cidr-file", str(tmp_path / "none.txt"))
    assert code == 2
    assert err.startswith(f"Error: --exclude-cidr-file: cannot read {tmp_path / 'none.txt'}")


def test_unknown_option_is_a_usage_error(good: Path) -> None:
    code, _, _ = run(str(good), "--frobnicate")
    assert code == 2


def test_no_paths_is_a_usage_error() -> None:
    assert run()[0] == 2


def test_output_may_not_be_an_input(good: Path) -> None:
    before = good.read_bytes()
    code, _, err = run(str(good), "-o", str(good), "--format", "csv")
    assert code == 2
    assert (
        err
        == f"Error: {good}: is one of the inputs; write the result to another file (evidence is never modified)\n"
    )
    assert good.read_bytes() == before


def test_unwritable_output_is_one_line(good: Path, tmp_path: Path) -> None:
    """Found before reading, so a usage error (more in test_outputs.py)."""
    code, _, err = run(str(good), "-o", str(tmp_path / "no" / "such" / "dir.csv"))
    assert code == 2
    assert err == (
        f"Error: {tmp_path / 'no' / 'such' / 'dir.csv'}: the directory "
        f"{tmp_path / 'no' / 'such'} does not exist; create it, or fix the path given to "
        "--output\n"
    )


def test_inputs_are_never_modified(tmp_path: Path) -> None:
    path = tmp_path / "evidence.ndjson.gz"
    path.write_bytes(gzip.compress(ndjson([event()]) + b"junk\n"))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    assert run(str(path), "-o", str(tmp_path / "out.csv"))[0] == 0
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evidence.ndjson.gz", "out.csv"]


# the library raises the named exceptions -----------------------------------------------


def test_library_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        run_hunt([str(tmp_path / "x")])
    path = tmp_path / "bad.ndjson"
    path.write_text(json.dumps(event()) + "\n{bad\n")
    with pytest.raises(DataError, match="line 2"):
        run_hunt([str(path)], HuntSpec(strict=True))
    with pytest.raises(UsageError):
        HuntSpec(threshold=-1)
    with pytest.raises(UsageError):
        HuntSpec(os_families=())
    with pytest.raises(UsageError):
        parse_duration("")
    assert parse_size("2 GiB") == 2 * 1024**3
    assert parse_size("1TB") == 10**12
    assert parse_duration("1d2h3m4s").total_seconds() == 93784
    assert parse_now("2024-05-01T12:00:00").isoformat() == "2024-05-01T12:00:00+00:00"  # type: ignore[union-attr]
