"""Inputs named by URI (``s3a://``...), read through pyarrow's file systems by the Spark
engine: against an S3 server on this machine (moto's), they give what the same files give
when read from a local directory; the local engine refuses them (it never touches the
network); what cannot be listed or read is an error that names the URI."""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from egress_offline import HuntSpec, SweepSpec, run_hunt, run_sweep
from egress_offline.cli import app
from egress_offline.errors import InputError, ScratchError
from egress_offline.readers.remote import Store, filesystem, list_uri, uri_of
from tests.helpers import LAYOUTS, GiB, event, ndjson

moto_server = pytest.importorskip("moto.server")
pafs = pytest.importorskip("pyarrow.fs")

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
SAMPLE = Path(__file__).parent.parent / "sample_data"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """An S3 server on this machine, and the Hadoop settings that reach it (as a Spark
    session would be given them)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield {
        "fs.s3a.endpoint": f"http://{host}:{port}",
        "fs.s3a.access.key": "testing",
        "fs.s3a.secret.key": "testing",
        "fs.s3a.path.style.access": "true",
    }
    server.stop()


def _upload(directory: Path, settings: dict[str, str], bucket: str) -> str:
    """Every file under ``directory`` as objects under ``s3a://bucket/``, byte for byte."""
    fs = pafs.S3FileSystem(**dict(Store.from_hadoop(settings).s3), allow_bucket_creation=True)
    fs.create_dir(bucket)
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            key = f"{bucket}/{path.relative_to(directory).as_posix()}"
            with fs.open_output_stream(key, compression=None) as out:  # no gzip added
                out.write(path.read_bytes())
    return f"s3a://{bucket}/"


def _exports(directory: Path) -> Path:
    """Every layout the tool reads, the README's sample data, a damaged gzip, the empty
    marker file Spark writes and a file that is no export."""
    docs = [
        event(**{"source.bytes": 2 * GiB}),
        event(**{"process.entity_id": "E2", "destination.ip": "10.0.0.1"}),
        event(**{"@timestamp": "2024-05-01T02:00:00Z", "process.entity_id": "E3"}),
    ]
    for name, write in LAYOUTS.items():
        (place := directory / name.replace(" ", "-")).mkdir(parents=True)
        write(docs, place)
    shutil.copytree(SAMPLE, directory / "sample", ignore=shutil.ignore_patterns("*.py"))
    whole = gzip.compress(ndjson([event(**{"process.entity_id": "E4", "source.bytes": GiB})] * 9))
    (directory / "damaged.ndjson.gz").write_bytes(whole[: len(whole) * 2 // 3])
    (directory / "_SUCCESS").write_bytes(b"")
    (directory / "notes.txt").write_text("not an export\n")
    return directory


@pytest.fixture(scope="module")
def bucket(s3: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    local = _exports(tmp_path_factory.mktemp("remote") / "exports")
    return local, _upload(local, s3, "exports")


def _facts(result: Any, prefix: str) -> dict[str, Any]:
    """What a run found, with the inputs' place (a directory, or a URI prefix) left out,
    and how far the progress display had come (small local files are read together)."""
    files = [
        {**dataclasses.asdict(report), "name": report.name.removeprefix(prefix), "progress": 0}
        for report in result.files
    ]
    skipped = sorted(entry.removeprefix(prefix) for entry in result.skipped)
    text = [m.replace(prefix, "") for m in [*result.warnings, *result.alerts]]
    return {"rows": result.rows.to_dicts(), "counts": result.counts, "files": files,
            "skipped": skipped, "text": text}  # fmt: skip


@pytest.mark.parametrize("command", ["hunt", "sweep"])
def test_a_prefix_gives_what_the_same_files_give_from_a_directory(
    s3: dict[str, str], bucket: tuple[Path, str], command: str
) -> None:
    local, uri = bucket
    store = Store.from_hadoop(s3)
    if command == "hunt":
        here = run_hunt([str(local)], HuntSpec(now=NOW), hash_inputs=True)
        there = run_hunt([uri], HuntSpec(now=NOW), hash_inputs=True, store=store)
    else:
        here = run_sweep([str(local)], SweepSpec(), hash_inputs=True)
        there = run_sweep([uri], SweepSpec(), hash_inputs=True, store=store)
    found = _facts(there, uri)
    assert found == _facts(here, f"{local}/")
    assert here.counts.flagged >= 2 and here.counts.malformed >= 1
    assert all(len(report.sha256 or "") == 64 for report in there.files)
    assert found["files"][0]["name"] == "_SUCCESS"  # in a walk's order: files, then folders
    assert "notes.txt: not an export this tool reads (skipped)" in found["skipped"]


def test_the_default_now_latest_is_the_same_from_a_prefix(
    s3: dict[str, str], bucket: tuple[Path, str]
) -> None:
    local, uri = bucket
    here = run_hunt([str(local / "sample")])
    there = run_hunt([f"{uri}sample"], store=Store.from_hadoop(s3))
    assert _facts(there, f"{uri}sample/") == _facts(here, f"{local}/sample/")
    assert there.counts.flagged == 3  # the README's sample: three groups


def test_a_glob_and_a_single_object(s3: dict[str, str], bucket: tuple[Path, str]) -> None:
    _, uri = bucket
    store = Store.from_hadoop(s3)
    found = list_uri(f"{uri}sample/*.ndjson*", store)
    assert [name.removeprefix(uri) for name, _ in found] == [
        "sample/elasticdump-hits.ndjson",
        "sample/endpoint-network.ndjson.gz",
        "sample/endpoint-process.ndjson.gz",
    ]
    one = f"{uri}sample/flattened.parquet"
    assert list_uri(one, store) == [(one, (SAMPLE / "flattened.parquet").stat().st_size)]


def test_what_is_not_there_or_not_an_export_is_an_error_naming_it(
    s3: dict[str, str], bucket: tuple[Path, str]
) -> None:
    _, uri = bucket
    store = Store.from_hadoop(s3)
    with pytest.raises(InputError, match=r"s3a://exports/nothing/: no such object or prefix"):
        run_hunt([f"{uri}nothing/"], store=store)
    with pytest.raises(InputError, match=r"s3a://exports/sample/\*\.csv: the pattern matches no"):
        run_hunt([f"{uri}sample/*.csv"], store=store)
    with pytest.raises(InputError, match=r"s3a://exports/notes.txt: not a supported format"):
        run_hunt([f"{uri}notes.txt"], store=store)
    wrong = Store.from_hadoop({**s3, "fs.s3a.endpoint": "http://127.0.0.1:9"})  # nothing there
    with pytest.raises(InputError, match=r"s3a://exports/: cannot be listed .*credentials"):
        run_hunt([uri], store=wrong)


def test_a_copy_over_the_scratch_budget_stops_the_run_and_is_removed(
    s3: dict[str, str], bucket: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    _, uri = bucket
    with pytest.raises(ScratchError, match=r"more than 100,000 bytes .* raise --scratch-limit"):
        run_hunt([f"{uri}sample/elasticdump-hits.ndjson"], HuntSpec(now=NOW),
                 store=Store.from_hadoop(s3), scratch_limit=100_000)  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # the partial copy and its directory are gone


def test_the_local_engine_refuses_uris_and_names_the_engine_that_reads_them() -> None:
    result = CliRunner().invoke(app, ["hunt", "s3a://bucket/exports/", "-q"])
    assert result.exit_code == 1
    assert "s3a://bucket/exports/: a URI; the local engine reads files on this machine only" in (
        result.stderr
    )
    assert "--engine spark" in result.stderr and "Traceback" not in result.stderr


def test_a_file_uri_is_its_path(tmp_path: Path) -> None:
    path = tmp_path / "a b.ndjson"
    path.write_bytes(ndjson([event(**{"source.bytes": 2 * GiB})]))
    result = run_hunt([f"file://{str(path).replace(' ', '%20')}"], HuntSpec(now=NOW))
    assert result.counts.flagged == 1


def test_the_session_s_s3a_settings_make_the_store() -> None:
    store = Store.from_hadoop({
        "fs.s3a.endpoint": "minio.local:9000",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": "AKIA",
        "fs.s3a.secret.key": "very-secret",
        "fs.s3a.path.style.access": "true",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.AnonymousAWSCredentialsProvider",
        "fs.s3a.other": "ignored",
    })  # fmt: skip
    assert dict(store.s3) == {
        "endpoint_override": "minio.local:9000", "scheme": "http", "access_key": "AKIA",
        "secret_key": "very-secret", "region": "us-east-1", "force_virtual_addressing": False,
        "anonymous": True,
    }  # fmt: skip
    assert "very-secret" not in repr(store)
    on_aws = Store.from_hadoop({"fs.s3a.endpoint.region": "eu-west-1"})
    assert dict(on_aws.s3) == {"region": "eu-west-1"}


def test_other_stores_are_reached_through_pyarrow_or_said_how() -> None:
    fs, path = filesystem("abfss://logs@account.dfs.core.windows.net/endpoint/day1", None)
    assert type(fs).__name__ == "AzureFileSystem" and path == "logs/endpoint/day1"
    with pytest.raises(InputError, match=r"hdfs://nn:8020/x: .* libhdfs: set JAVA_HOME"):
        filesystem("hdfs://nn:8020/x", None)
    with pytest.raises(InputError, match=r"ftp:// URIs are not read"):
        filesystem("ftp://host/x", None)
    # an object listed under a prefix is named in the prefix's scheme and authority
    azure = "abfss://logs@account.dfs.core.windows.net/endpoint/"
    assert uri_of(azure, "logs/endpoint/a.gz") == f"{azure}a.gz"
    assert uri_of("hdfs://nn:8020/data/", "/data/x/a.gz") == "hdfs://nn:8020/data/x/a.gz"
    assert uri_of("s3a://bucket/pre/", "bucket/pre/a.gz") == "s3a://bucket/pre/a.gz"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["hunt", "sweep"])
def test_the_spark_engine_reads_s3a_uris_as_the_session_is_configured(
    spark: Any, s3: dict[str, str], bucket: tuple[Path, str], command: str
) -> None:
    from egress_offline import spark as on_spark  # noqa: PLC0415

    local, uri = bucket
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in s3.items():  # as a notebook sets them
        hadoop.set(key, value)
    try:
        if command == "hunt":
            here = run_hunt([str(local)], HuntSpec(now=NOW), hash_inputs=True)
            there = on_spark.run_hunt([uri], HuntSpec(now=NOW), spark=spark, hash_inputs=True)
        else:
            here = run_sweep([str(local)], SweepSpec(), hash_inputs=True)
            there = on_spark.run_sweep([uri], SweepSpec(), spark=spark, hash_inputs=True)
    finally:
        for key in s3:
            hadoop.unset(key)
    assert _facts(there, uri) == _facts(here, f"{local}/")
    assert there.counts.flagged >= 2


@pytest.mark.slow
def test_the_readme_s_command_for_an_s3_compatible_store(
    s3: dict[str, str], bucket: tuple[Path, str], tmp_path: Path
) -> None:
    pytest.importorskip("pyspark")
    local, uri = bucket
    command = str(Path(sys.executable).with_name("egress-offline"))
    settings = " ".join(f"--conf spark.hadoop.{key}={value}" for key, value in s3.items())
    rows = {}
    spark = ["--engine", "spark", "--spark-master", "local[1]"]
    for name, where, engine in (("here", str(local / "sample"), []),
                                ("there", f"{uri}sample/", spark)):  # fmt: skip
        out = tmp_path / f"{name}.csv"
        run = subprocess.run(
            [command, "hunt", where, *engine, "-q", "-o", str(out)],
            env={**os.environ, "PYSPARK_SUBMIT_ARGS": f"{settings} pyspark-shell"},
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        rows[name] = out.read_text()
    assert rows["there"] == rows["here"] and rows["here"].count("\n") == 4  # header, 3 groups


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3a://exports//sample/", r"s3a://exports//sample/: names no key \(an empty part"),
        ("s3a:///sample/", r"s3a:///sample/: names no bucket"),
        ("s3a://", r"s3a://: names no bucket"),  # not every bucket the keys can list
        ("s3a://AKIAKEY:s3cr3t@exports/sample/", r"s3a://<hidden>@exports/sample/: credentials"),
    ],
)
def test_a_uri_naming_no_place_or_holding_keys_is_one_error_that_hides_them(
    s3: dict[str, str], bucket: tuple[Path, str], uri: str, message: str
) -> None:
    for store in (Store.from_hadoop(s3), None):  # the Spark engine's, and the local one's
        with pytest.raises(InputError, match=message) as raised:
            run_hunt([uri], HuntSpec(now=NOW), store=store)
        assert "s3cr3t" not in f"{raised.value} {raised.value.file}"


def test_an_error_naming_a_hostile_name_writes_no_terminal_escape(tmp_path: Path) -> None:
    # an object's key, as a file's name, is the attacker's text: it reaches the Error line
    evil = "evil\x1b]0;pwned\x07\x1b[2J\nError: fine.ndjson"
    (tmp_path / evil).write_bytes(ndjson([event()]) + b"not json\n")
    result = CliRunner().invoke(
        app, ["hunt", str(tmp_path), "--strict", "-q", "--now", "2024-05-01T12:00:00Z"]
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "\x1b" not in result.stderr
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J\\nError: fine.ndjson: line 2" in result.stderr


@pytest.mark.parametrize(
    "pattern", ["*.ndjson", "*", "**/*.ndjson", "2024-*", "sub/*", "**", "*/*"]
)
def test_a_glob_matches_the_objects_it_matches_in_a_local_directory(
    s3: dict[str, str], tmp_path: Path, pattern: str
) -> None:
    # fnmatch's * went across / and took names starting with . : more files than here
    local = tmp_path / "tree"
    for number, name in enumerate(["top.ndjson", "sub/deep.ndjson", ".hidden.ndjson",
                                   "sub/.dot/x.ndjson", "2024-01/a.ndjson", "2024-01.ndjson",
                                   "sub/deeper/y.ndjson"]):  # fmt: skip
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(ndjson([event(**{"process.entity_id": f"E{number}"})]))
    uri = _upload(local, s3, "globbed")
    here = run_hunt([f"{local}/{pattern}"], HuntSpec(now=NOW))
    there = run_hunt([f"{uri}{pattern}"], HuntSpec(now=NOW), store=Store.from_hadoop(s3))
    assert _facts(there, uri) == _facts(here, f"{local}/")


def test_a_file_uri_with_a_host_is_refused_not_read_as_another_path(tmp_path: Path) -> None:
    # file://exports/a.ndjson meant ./exports/a.ndjson, and read /a.ndjson (the host dropped)
    (tmp_path / "a.ndjson").write_bytes(ndjson([event(**{"source.bytes": 2 * GiB})]))
    with pytest.raises(
        InputError, match=r"file://exports/.*/a\.ndjson: .* 'exports' is taken for a"
    ):
        run_hunt([f"file://exports{tmp_path}/a.ndjson"], HuntSpec(now=NOW))
    result = run_hunt([f"file://localhost{tmp_path}/a.ndjson"], HuntSpec(now=NOW))
    assert result.counts.flagged == 1


def test_an_object_whose_key_holds_glob_characters_is_read_when_named(
    s3: dict[str, str], tmp_path: Path
) -> None:
    # as a local path: what is there by that name first, a pattern only if nothing is
    local = tmp_path / "odd"
    local.mkdir()
    for name in ("a[1].ndjson", "a1.ndjson", "b*.ndjson"):
        (local / name).write_bytes(ndjson([event(**{"process.entity_id": name})]))
    uri = _upload(local, s3, "odd")
    store = Store.from_hadoop(s3)
    for name in ("a[1].ndjson", "b*.ndjson", "a[0-9].ndjson"):
        here = run_hunt([str(local / name)], HuntSpec(now=NOW))
        there = run_hunt([f"{uri}{name}"], HuntSpec(now=NOW), store=store)
        assert _facts(there, uri) == _facts(here, f"{local}/")
    assert [f.name for f in there.files] == [f"{uri}a1.ndjson"]  # the last one: a pattern


@pytest.mark.parametrize("uri", ["s3a://dots/logs/..", "s3a://dots/logs/../logs/a.ndjson",
                                 "s3a://dots/logs/./a.ndjson", "s3a://dots/"])  # fmt: skip
def test_a_key_with_a_dot_part_is_refused_not_read_as_another(
    s3: dict[str, str], tmp_path: Path, uri: str
) -> None:
    # s3a://b/logs/.. was the bucket itself, read as an empty object: 0 rows, exit 0; and
    # the key a/../b.ndjson, listed under a prefix, was read as b.ndjson's bytes
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.ndjson").write_bytes(ndjson([event()]))
    _upload(tmp_path, s3, "dots")
    boto3 = pytest.importorskip("boto3")  # pyarrow would write the key as logs/a.ndjson
    client = boto3.client("s3", endpoint_url=s3["fs.s3a.endpoint"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
    client.put_object(Bucket="dots", Key="x/../logs/a.ndjson", Body=ndjson([event()]))
    with pytest.raises(InputError, match=r"s3a://dots/.*: a key with a \. or \.\. part"):
        run_hunt([uri], HuntSpec(now=NOW), store=Store.from_hadoop(s3))


def test_a_store_failing_with_arrow_s_unknown_error_is_one_error_naming_the_uri(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Azure without credentials: pyarrow raises ArrowException, neither OSError nor
    # ValueError, which went through as a traceback
    import pyarrow as pa  # noqa: PLC0415

    from egress_offline.readers import remote  # noqa: PLC0415

    class Failing:
        def get_file_info(self, _: Any) -> Any:
            raise pa.ArrowException(
                "Unknown error: Failed to get token from DefaultAzureCredential"
            )

    monkeypatch.setattr(remote, "filesystem", lambda uri, store: (Failing(), "c/x"))
    uri = "abfss://c@acct.dfs.core.windows.net/x/"
    with pytest.raises(
        InputError, match=r"abfss://c@acct.*/x/: cannot be listed \(Unknown error: Failed"
    ):
        run_hunt([uri], HuntSpec(now=NOW), store=Store())
    with pytest.raises(InputError, match=r"cannot be listed .* check the Azure credentials"):
        run_hunt([f"{uri}*.gz"], HuntSpec(now=NOW), store=Store())


def test_gcs_gives_up_in_seconds_not_its_client_s_fifteen_minutes() -> None:
    # gs:// with no credentials or no network retried for 15 minutes: a run that hangs
    from egress_offline.readers.remote import GCS_RETRY_SECONDS  # noqa: PLC0415

    fs, path = filesystem("gs://some-bucket/exports/day1", None)
    assert type(fs).__name__ == "GcsFileSystem" and path == "some-bucket/exports/day1"
    assert fs.__reduce__()[1][0]["retry_time_limit"].total_seconds() == GCS_RETRY_SECONDS <= 30
