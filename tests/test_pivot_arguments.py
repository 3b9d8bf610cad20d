"""pivot's arguments: which is an entity id, which a path; a mistyped path is an error,
never an id "not found", and no real entity id is ever taken for a path."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from egress_offline.cli import app
from egress_offline.errors import UsageError
from egress_offline.pivot import looks_like_path, split_arguments

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "sample_data"
RCLONE = "MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTczMTItMTMyOTM1NDkxMDkuNzM1OTUwNQ=="


def _real_ids() -> list[str]:
    """Every process.entity_id and process.parent.entity_id in the sample export and in
    the public Elastic events of tests/fixtures."""
    found: set[str] = set()
    fixtures = ROOT / "tests" / "fixtures"
    files = [*SAMPLE_DIR.iterdir(), *fixtures.rglob("*")]
    for path in files:
        if path.is_dir() or path.is_relative_to(fixtures / "crafted"):  # hostile, not events
            continue
        if path.suffix == ".parquet":
            found.update(pq.read_table(path, columns=["process.entity_id"]).column(0).to_pylist())
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        found.update(m.decode() for m in re.findall(rb'entity_id"?\s*[:=]\s*"([^"\\]+)"', data))
    found.discard(None)  # type: ignore[arg-type]
    return sorted(found)


REAL_IDS = _real_ids()

#: Ids of other shapes: base64 with + and / (padded, or long), base64url, a GUID
#: (Sysmon's ProcessGuid), hex, and the short ids tests use.
OTHER_IDS = [
    "MTJiOTRjMjktYWQ4Mi00ZjU2LWE4ZmQtZjk4YjQ4M2M2ZWRhLTQ0Mzg2LTEzMjUxNTQ0NTk2Ljk5NTc0NjcwMA==",
    "ab+c/de==",
    "Zm9v/YmFy+YmF6/cXV4eHk",  # unpadded, 22 characters
    "cases/acme/export2024x",  # a path, or an id: taken for an id unless "cases" exists
    "a/b+c/d=",
    "Zm9vYmFy-YmF6_cXV4",
    "{42FC7E13-CB3E-5C05-0000-0010A0125101}",
    "831154ef831154ef831154ef831154ef",
    "E1",
    "nope",
    "sample_data",  # no sign of a path: an id that will not be found, said so
]


def test_the_real_ids_are_many() -> None:
    assert len(REAL_IDS) >= 90
    assert RCLONE in REAL_IDS


@pytest.mark.parametrize("entity", REAL_IDS + OTHER_IDS)
def test_no_entity_id_looks_like_a_path(entity: str) -> None:
    assert not looks_like_path(entity)


@pytest.mark.parametrize(
    "path",
    [
        "sampel_data/",  # a directory, mistyped
        "/mnt/evidence",
        "/mnt/evidence/dump",  # base64's alphabet, 18 characters: a path still
        "~/cases/x",
        "./dump",
        "../dump",
        "C:/exports",
        "C:\\exports",
        "exports\\day1",
        "dump/day1",  # short, unpadded
        "exports/2024-05-01",  # not base64
        "cases/acme/export2024",  # 21 characters: no base64 is 4n + 1 long
        "my dump/x",
        "export.ndjson",
        "EXPORT.NDJSON.GZ",
        "a.json",
        "a.jsonl",
        "a.zst",
        "a.zstd",
        "a.parquet",
        "a.csv",
        "a.log",
        "a.txt",
        "dump/*.gz",
        "day?",
        "[ab]",
    ],
)
def test_a_path_looks_like_one(path: str) -> None:
    assert looks_like_path(path)


def test_arguments_split_into_ids_and_paths() -> None:
    exists = {"dump.ndjson", "dir", "gone*"}.__contains__
    assert split_arguments(["E1", "E2", "dump.ndjson", "dir", "E1", "-"], exists) == (
        ["E1", "E2"],
        ["dump.ndjson", "dir", "-"],
    )
    # a name with a glob character that exists is read as named
    assert split_arguments(["E1", "gone*"], exists) == (["E1"], ["gone*"])


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        (
            "gone.ndjson",
            "gone.ndjson: no such file or directory; check the path (an entity id never "
            "looks like a path)",
        ),
        (
            "sampel_data/",
            "sampel_data/: no such file or directory; check the path (an entity id never "
            "looks like a path)",
        ),
        (
            "dump/acme/export2024x",  # base64's alphabet, 22 characters, but dump exists
            "dump/acme/export2024x: no such file or directory; check the path (an entity id "
            "never looks like a path)",
        ),
        (
            "s3a://bucket/exports/day1.ndjson",
            "s3a://bucket/exports/day1.ndjson: a URI; pivot reads files on this machine only "
            "and never touches the network: copy the objects here and name the copies",
        ),
        (
            "dump/*.gz",
            "dump/*.gz: the pattern matches no file; check the pattern (an entity id never "
            "holds *, ? or [)",
        ),
    ],
)
def test_a_path_that_names_nothing_is_an_error(argument: str, message: str) -> None:
    exists = {"dump.ndjson", "dump"}.__contains__
    with pytest.raises(UsageError) as raised:
        split_arguments(["E1", argument, "dump.ndjson"], exists)
    assert str(raised.value) == message
    assert raised.value.file == argument


def test_ids_alone_or_paths_alone() -> None:
    exists = {"dump.ndjson"}.__contains__
    with pytest.raises(UsageError) as raised:
        split_arguments(["E1", "E2"], exists)
    assert str(raised.value) == (
        "pivot: no export given (no argument names an existing file, directory or glob "
        "match; read as entity ids: E1, E2); check the paths"
    )
    with pytest.raises(UsageError) as raised:
        split_arguments(["dump.ndjson"], exists)
    assert str(raised.value) == (
        "pivot: no entity id given (every argument names a file); give process.entity_id "
        "values before the export paths"
    )


def test_cli_a_mistyped_path_is_an_error_not_an_id(tmp_path: Path) -> None:
    """It was read as an id: "entity ids found 1 of 2", exit 0."""
    runner = CliRunner()
    gone = tmp_path / "gone.ndjson"
    done = runner.invoke(app, ["pivot", RCLONE, str(SAMPLE_DIR), str(gone)])
    assert done.exit_code == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"Error: {gone}: no such file or directory; check the path (an entity id never "
        "looks like a path)\n"
    )
    done = runner.invoke(app, ["pivot", RCLONE, "sampel_data/"])
    assert done.exit_code == 2
    assert done.stderr == (
        "Error: sampel_data/: no such file or directory; check the path (an entity id "
        "never looks like a path)\n"
    )
    # every real id of the sample, given with the sample, is an id
    done = runner.invoke(app, ["pivot", *REAL_IDS[:20], str(SAMPLE_DIR), "-q", "--format", "json"])
    assert done.exit_code == 0, done.stderr
