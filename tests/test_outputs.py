"""Output files never harm what they replace: a device or FIFO is written through, a
symlink's target is replaced, anything else is refused before any input is read, and a
failed write names the output (never the inputs or the scratch directory).

No test names ``/dev/null`` or ``/dev/stdout`` as an output directly: run against code
without these rules, as root, that would replace the machine's own. They go through
symlinks in the test's directory instead, which such code would only replace.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from typer.testing import CliRunner

from egress_offline.cli import app
from egress_offline.engine import ingest as ingest_module
from egress_offline.errors import OutputError, UsageError
from egress_offline.outputs import output_target, write_output, write_stream
from tests.helpers import event, ndjson

NOW = "2024-05-01T12:00:00Z"
HEADER = b"total_bytes_out,process.entity_id,destination.address,process.executable"


def run(command: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [command, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "export.ndjson"
    path.write_bytes(ndjson([event()]))
    return path


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _write(text: bytes) -> Any:
    return lambda sink: sink.write(text) and None


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------- regular files, symlinks


def test_a_new_file_gets_the_umask_s_mode(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "new.csv"
    write_output(target, _write(b"rows\n"))
    assert target.read_bytes() == b"rows\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert _names(tmp_path) == ["new.csv"]


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "old.csv"
    target.write_bytes(b"old\n")
    target.chmod(0o640)
    before = target.stat().st_ino
    write_output(target, _write(b"new\n"))
    assert target.read_bytes() == b"new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != before  # renamed into place, not written in place
    assert _names(tmp_path) == ["old.csv"]


def test_nothing_is_left_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"

    def fail(sink: IO[bytes]) -> None:
        sink.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_output(target, fail)
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old\n")
    with pytest.raises(KeyboardInterrupt):
        write_output(target, fail)
    assert _names(tmp_path) == ["out.csv"]
    assert target.read_bytes() == b"old\n"


def test_a_signal_as_the_temporary_file_is_made_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal raises wherever the main thread is: taken between the temporary file's
    creation and its name's return, it left the file behind."""
    target = tmp_path / "out.csv"
    real = os.open

    def made_then_stopped(path: Any, *args: Any, **kwargs: Any) -> int:
        fd = real(path, *args, **kwargs)
        if str(path).endswith(".tmp"):
            os.close(fd)
            raise KeyboardInterrupt  # as SIGTERM's handler raises, there
        return fd

    for before in (None, b"old\n"):
        if before is not None:
            target.write_bytes(before)
        with monkeypatch.context() as patch:
            patch.setattr(os, "open", made_then_stopped)
            with pytest.raises(KeyboardInterrupt):
                write_output(target, lambda sink: sink.write(b"new\n"))
        assert _names(tmp_path) == ([] if before is None else ["out.csv"])
    assert target.read_bytes() == b"old\n"


def test_a_symlink_stays_a_symlink_and_its_target_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "rows.csv"
    real.write_bytes(b"old\n")
    link = tmp_path / "rows.csv"
    link.symlink_to(real)
    write_output(link, _write(b"new\n"))
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new\n"
    assert _names(tmp_path / "real") == ["rows.csv"]  # the temporary file was beside it


def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "rows.csv"
    link.symlink_to("made.csv")
    write_output(link, _write(b"new\n"))
    assert link.is_symlink()
    assert (tmp_path / "made.csv").read_bytes() == b"new\n"


# ------------------------------------------------------------- devices, FIFOs, descriptors


def test_a_character_device_is_written_through(tmp_path: Path) -> None:
    link = tmp_path / "null.csv"
    link.symlink_to(os.devnull)
    target = output_target(link)
    assert (target.through, target.device, target.file) == (True, True, Path(os.devnull))
    write_output(link, _write(b"gone\n"))
    assert link.is_symlink() and os.readlink(link) == os.devnull
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    try:
        write_output(fifo, _write(b"rows\n"))
    finally:  # a reader still waiting for a writer is let go (ENXIO: none is waiting)
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    reader.join(timeout=30)
    assert received == [b"rows\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _names(tmp_path) == ["rows.csv"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_descriptor_paths_are_written_through(tmp_path: Path) -> None:
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    for path in (link, Path("/dev/stdout"), Path("/dev/fd/1"), Path("/proc/self/fd/1")):
        assert output_target(path).through, path
    assert not output_target(tmp_path / "out.csv").through


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_stdout_redirected_to_a_file_is_added_to_not_replaced(export: Path, tmp_path: Path) -> None:
    """``hunt ... -o /dev/stdout >> log``: the rows go where standard output goes."""
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    log = tmp_path / "log.csv"
    log.write_bytes(b"before\n")
    with log.open("ab") as out:
        done = subprocess.run(
            [sys.executable, "-m", "egress_offline", "hunt", str(export), "--now", NOW, "-q",
             "-o", str(link)],
            stdout=out, stderr=subprocess.PIPE, check=False, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert link.is_symlink()
    lines = log.read_bytes().splitlines()
    assert lines[0] == b"before"
    assert lines[1].startswith(HEADER)  # no format given: csv, as when piped
    assert lines[2].startswith(b"1073741824,E1,")


def _read_terminal(master: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_terminal_as_output_is_written_through_and_shown_inert(tmp_path: Path) -> None:
    hostile = "C:\\x\x1b]0;pwned\x07\x1b[2J.exe"
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event(**{"process.executable": hostile})]))
    master, slave = os.openpty()
    try:
        tty = os.ttyname(slave)
        code, _, err = run("hunt", str(path), "--now", NOW, "-q", "-o", tty, "--format", "csv")
        os.close(slave)
        shown = _read_terminal(master)
    finally:
        os.close(master)
    assert (code, err) == (0, "")
    assert b"\x1b" not in shown and b"\x07" not in shown
    assert b"C:\\x\\x1b]0;pwned\\x07\\x1b[2J.exe" in shown


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_standard_output_on_a_terminal_is_inert_in_every_format(tmp_path: Path, fmt: str) -> None:
    hostile = "C:\\x\x1b]0;pwned\x07\x1b[2J\u009b31m\u202egpj.exe"
    path = tmp_path / "x.ndjson"
    path.write_bytes(ndjson([event(**{"process.executable": hostile})]))
    master, slave = os.openpty()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "egress_offline", "hunt", str(path), "--now", NOW, "-q",
             "--format", fmt],
            stdout=slave, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.close(slave)
        shown = _read_terminal(master)
        _, err = child.communicate(timeout=120)
    finally:
        os.close(master)
    assert (child.returncode, err) == (0, b"")
    for char in "\x1b\x07\u009b\u202e":  # JSON writers escape C0 themselves, not C1
        assert char.encode() not in shown, char
    if fmt == "csv":
        assert b"C:\\x\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202egpj.exe" in shown
    else:  # JSON's own escapes, which parse to the same value
        assert b"C:\\\\x\\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\\u202egpj.exe" in shown


# ------------------------------------------------------------------------ refused paths


def test_refused_paths_are_named_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("")
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "nowhere" / "x.csv")
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    sock = socket.socket(socket.AF_UNIX)
    short = Path(tempfile.mkdtemp(prefix="eo-")) / "s"  # a socket path must be short
    sock.bind(str(short))
    try:
        cases = {
            tmp_path / "dir": "is a directory; give --output the path of a file",
            short: "is a socket; give --output a regular file, a FIFO or a character device "
            "such as /dev/null",
            tmp_path / "missing" / "out.csv": f"the directory {tmp_path / 'missing'} does not "
            "exist; create it, or fix the path given to --output",
            tmp_path / "file" / "out.csv": f"{tmp_path / 'file'} is not a directory; fix the "
            "path given to --output",
            dangling: f"is a symlink to {tmp_path / 'nowhere' / 'x.csv'}, whose directory "
            "does not exist; fix the link, or give --output another path",
            loop: "cannot be used for --output (Too many levels of symbolic links); check the path",
        }
        for path, message in cases.items():
            with pytest.raises(UsageError) as caught:
                output_target(path)
            assert str(caught.value) == f"{path}: {message}"
    finally:
        sock.close()
        short.unlink()
        short.parent.rmdir()


def test_a_symlink_loop_is_named_not_a_traceback(export: Path, tmp_path: Path) -> None:
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    code, _, err = run("hunt", str(export), "-o", str(loop))
    assert code == 2
    assert err == (
        f"Error: {loop}: cannot be used for --output (Too many levels of symbolic links); "
        "check the path\n"
    )


def test_a_block_device_is_refused() -> None:
    block = next(
        (p for p in Path("/dev").glob("*") if not p.is_symlink() and p.is_block_device()), None
    )
    if block is None:
        pytest.skip("no block device here")
    with pytest.raises(UsageError) as caught:
        output_target(block, option="--report")
    assert str(caught.value) == (
        f"{block}: is a block device; give --report a regular file, a FIFO or a character "
        "device such as /dev/null"
    )


def test_unwritable_places_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    existing = tmp_path / "old.csv"
    existing.write_text("")
    monkeypatch.setattr(os, "access", lambda *_args, **_kwargs: False)  # root may write all
    with pytest.raises(UsageError) as caught:
        output_target(existing)
    assert str(caught.value) == (
        f"{existing}: is not writable (no permission, or a read-only file system); change "
        "its permissions, or give --output another file"
    )
    with pytest.raises(UsageError) as caught:
        output_target(tmp_path / "new.csv")
    assert str(caught.value) == (
        f"{tmp_path / 'new.csv'}: cannot create files in {tmp_path} (no permission, or a "
        "read-only file system); give --output a directory you can write to"
    )


@pytest.mark.parametrize("command", ["hunt", "sweep", "pivot"])
def test_outputs_are_checked_before_any_input_is_read(
    export: Path, tmp_path: Path, command: str
) -> None:
    """A typo in the output's directory fails at once, not after an hour of reading:
    the input here does not even exist, and the output is what is named (pivot would
    take a missing path for an entity id)."""
    missing_input = str(tmp_path / "missing.ndjson")
    output = tmp_path / "typo" / "out.json"
    given = ["E1", str(export)] if command == "pivot" else [missing_input]
    code, out, err = run(command, *given, "-o", str(output))
    assert (code, out) == (2, "")
    assert err == (
        f"Error: {output}: the directory {tmp_path / 'typo'} does not exist; create it, or "
        "fix the path given to --output\n"
    )
    if command != "pivot":
        code, _, err = run(command, missing_input, "--report", str(tmp_path))
        assert code == 2
        assert err == f"Error: {tmp_path}: is a directory; give --report the path of a file\n"


def test_output_and_report_may_not_be_one_file(export: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    link = tmp_path / "link.json"
    link.symlink_to(out)
    for report in (str(out), str(tmp_path / "." / "out.json"), str(link)):
        code, _, err = run("hunt", str(export), "-o", str(out), "--report", report)
        assert code == 2
        assert err == (
            f"Error: {report}: is the same file as --output {out}; give --report another file\n"
        )
    assert _names(tmp_path) == ["export.ndjson", "link.json"]
    # a character device can take both
    null_a, null_b = tmp_path / "a", tmp_path / "b"
    null_a.symlink_to(os.devnull)
    null_b.symlink_to(os.devnull)
    code, _, err = run("hunt", str(export), "--now", NOW, "-q", "-o", str(null_a),
                       "--report", str(null_b))  # fmt: skip
    assert (code, err) == (0, "")
    assert null_a.is_symlink() and null_b.is_symlink()


def test_a_quoted_glob_of_evidence_directories_is_evidence(tmp_path: Path) -> None:
    """``hunt 'evidence/*' -o evidence/host1/out.csv``: the glob names host1."""
    host = tmp_path / "evidence" / "host1"
    host.mkdir(parents=True)
    (host / "a.ndjson").write_bytes(ndjson([event()]))
    pattern = str(tmp_path / "evidence" / "*")
    code, _, err = run("hunt", pattern, "-o", str(host / "out.csv"))
    assert code == 2
    assert err == (
        f"Error: {host / 'out.csv'}: is inside the input directory {host}; write the result "
        "outside it (input directories are never written to)\n"
    )
    assert _names(host) == ["a.ndjson"]


# ------------------------------------------------------------------ failures while writing


def test_a_full_disk_names_the_output(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.csv"

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code, _, err = run("hunt", str(export), "-o", str(target), "--now", NOW, "-q")
    assert code == 1
    assert err == (
        f"Error: {target}: cannot be written (No space left on device); free space on its "
        "disk, or write elsewhere; no file was left\n"
    )
    target.write_bytes(b"old\n")
    code, _, err = run("hunt", str(export), "--report", str(target), "--now", NOW, "-q")
    assert code == 1
    assert err.endswith("write elsewhere; the file is unchanged\n")
    assert target.read_bytes() == b"old\n"
    assert _names(tmp_path) == ["export.ndjson", "out.csv"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json", "parquet", "table"])
def test_a_full_device_names_the_output_in_every_format(
    export: Path, tmp_path: Path, fmt: str
) -> None:
    """/dev/full fails every write with ENOSPC: Polars' own errors (Parquet) and its
    ``OSError`` without ``errno`` still give the output's name and the cause."""
    link = tmp_path / "full"
    link.symlink_to("/dev/full")
    code, _, err = run("hunt", str(export), "--now", NOW, "-q", "-o", str(link), "--format", fmt)
    assert code == 1
    assert err == (
        f"Error: {link}: cannot be written (No space left on device); free space on its "
        "disk, or write elsewhere; what was written may be incomplete\n"
    )
    assert link.is_symlink()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_report_that_fails_after_the_rows_names_them(export: Path, tmp_path: Path) -> None:
    """The rows' file written, then the report's write failed: the message said nothing
    of the rows' file replaced."""
    link = tmp_path / "full"
    link.symlink_to("/dev/full")
    out = tmp_path / "out.csv"
    code, _, err = run("hunt", str(export), "--now", NOW, "-q", "-o", str(out),
                       "--report", str(link))  # fmt: skip
    assert code == 1
    assert err == (
        f"Error: {link}: cannot be written (No space left on device); free space on its "
        "disk, or write elsewhere; what was written may be incomplete (--output "
        f"{out} had been written before it)\n"
    )


def test_standard_output_s_failure_names_it() -> None:
    class Full:
        def write(self, _data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    with pytest.raises(OutputError) as caught:
        write_stream(Full(), _write(b"x" * (2 << 20)))  # type: ignore[arg-type]
    assert str(caught.value) == (
        "standard output: cannot be written (No space left on device); free space on its "
        "disk, or write elsewhere"
    )


def test_a_scratch_failure_is_not_blamed_on_the_output(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OS error that escapes the run, not the writing of an output: Polars raises a
    full scratch disk as an ``OSError`` without ``errno`` or file name."""
    target = tmp_path / "out.csv"

    def scratch_full(*_args: object, **_kwargs: object) -> None:
        raise OSError("No space left on device (os error 28)")

    monkeypatch.setattr(ingest_module, "reduce_batch", scratch_full)
    code, _, err = run("hunt", str(export), "-o", str(target), "--now", NOW)
    assert code == 1
    assert err == (
        f"Error: {tempfile.gettempdir()}: No space left on device (the scratch directory, "
        "for temporary files); free space there, or set TMPDIR to a directory on a disk "
        "with room; nothing was written\n"
    )

    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), "/elsewhere/x")

    monkeypatch.setattr(ingest_module, "reduce_batch", broken)
    code, _, err = run("hunt", str(export), "-o", str(target), "--now", NOW)
    assert (code, err) == (1, "Error: /elsewhere/x: Input/output error; nothing was written\n")
    assert not target.exists()


@pytest.mark.parametrize(
    ("option", "given", "shown"),
    [
        ("--output", "s3a://bucket/rows.csv", "s3a://bucket/rows.csv"),
        ("--html", "gs://bucket/page.html", "gs://bucket/page.html"),
        ("--report", "ABFSS://box@acct.dfs.core.windows.net/r.json",
         "abfss://box@acct.dfs.core.windows.net/r.json"),
    ],
)  # fmt: skip
def test_an_output_named_by_a_store_uri_is_a_usage_error(
    tmp_path: Path, option: str, given: str, shown: str
) -> None:
    """The tool writes on this machine only: a store's URI for an output is refused
    before anything is read (it was "the directory s3a:/bucket does not exist")."""
    export = tmp_path / "e.ndjson"
    export.write_bytes(ndjson([event()]))
    result = CliRunner().invoke(app, ["hunt", str(export), "-q", option, given])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {shown}: a URI; egress-offline writes its outputs on this machine only and "
        f"never touches the network: give {option} a local file, and copy it to the store "
        "afterwards\n"
    )


def test_a_local_directory_named_like_a_scheme_is_still_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "s3a:" / "bucket").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    target = output_target(Path("s3a://bucket/rows.csv"))
    assert target.file == tmp_path / "s3a:" / "bucket" / "rows.csv"
