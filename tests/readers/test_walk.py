"""Directory walks and globs: every entry read, listed as skipped with its reason, or an
error naming it; never passed over in silence, and never a search without end."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from egress_offline import HuntSpec, InputError, run_hunt
from egress_offline.cli import app
from egress_offline.readers import open_inputs
from egress_offline.readers.walk import glob_matches, walk
from tests.helpers import NOW, event, ndjson


def _export(path: Path, entity: str = "E1") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ndjson([event(**{"process.entity_id": entity})]))
    return path


def _names(tmp_path: Path, paths: list[Path]) -> list[str]:
    return [str(path.relative_to(tmp_path)) for path in paths]


def test_a_walk_goes_depth_first_in_name_order(tmp_path: Path) -> None:
    for name in ("b/z.ndjson", "b/a/y.ndjson", "a.ndjson", "c/x.ndjson", "b.ndjson"):
        _export(tmp_path / name)
    skipped: list[str] = []
    found = list(walk(tmp_path, skipped))
    assert _names(tmp_path, found) == [
        "a.ndjson", "b.ndjson", "b/z.ndjson", "b/a/y.ndjson", "c/x.ndjson",
    ]  # fmt: skip
    assert skipped == []


def test_links_and_special_files_in_a_walk_are_listed_with_the_reason(tmp_path: Path) -> None:
    _export(tmp_path / "real.ndjson")
    (tmp_path / "dangling.ndjson").symlink_to(tmp_path / "gone.ndjson")
    (tmp_path / "self").symlink_to(tmp_path / "self")
    (tmp_path / "ping").symlink_to(tmp_path / "pong")
    (tmp_path / "pong").symlink_to(tmp_path / "ping")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to(tmp_path)
    (tmp_path / "other").mkdir()
    _export(tmp_path / "other" / "o.ndjson")
    (tmp_path / "sub" / "side").symlink_to(tmp_path / "other")
    (tmp_path / "sub" / "to-file.ndjson").symlink_to(tmp_path / "real.ndjson")
    os.mkfifo(tmp_path / "pipe.ndjson")
    skipped: list[str] = []
    found = list(walk(tmp_path, skipped))
    assert _names(tmp_path, found) == ["real.ndjson", "other/o.ndjson", "sub/to-file.ndjson"]
    assert skipped == [
        f"{tmp_path / 'dangling.ndjson'}: a dangling symlink (to {tmp_path / 'gone.ndjson'}: "
        "no such file or directory) (skipped)",
        f"{tmp_path / 'ping'}: a symlink loop (following it never reaches a file) (skipped)",
        f"{tmp_path / 'pipe.ndjson'}: not a regular file but a FIFO (named pipe) (skipped)",
        f"{tmp_path / 'pong'}: a symlink loop (following it never reaches a file) (skipped)",
        f"{tmp_path / 'self'}: a symlink loop (following it never reaches a file) (skipped)",
        f"{tmp_path / 'sub' / 'side'}: a symlink to a directory, not followed; name the "
        "directory to read it (skipped)",
        f"{tmp_path / 'sub' / 'up'}: a symlink loop (to a directory that holds it), not "
        "followed (skipped)",
    ]


def test_a_hunt_over_a_walk_with_bad_links_reads_the_rest_and_lists_them(tmp_path: Path) -> None:
    """A looping file symlink crashed the walk with a traceback; a dangling one stopped
    the whole hunt."""
    _export(tmp_path / "a.ndjson")
    (tmp_path / "dangling.ndjson").symlink_to("gone.ndjson")
    (tmp_path / "loop.ndjson").symlink_to("loop.ndjson")
    result = run_hunt([str(tmp_path)], HuntSpec(now=NOW))
    assert result.rows["process.entity_id"].to_list() == ["E1"]
    assert result.counts.records == 1
    assert result.skipped == [
        f"{tmp_path / 'dangling.ndjson'}: a dangling symlink (to gone.ndjson: no such file or "
        "directory) (skipped)",
        f"{tmp_path / 'loop.ndjson'}: a symlink loop (following it never reaches a file) (skipped)",
    ]


def test_a_tree_deeper_than_the_recursion_limit_is_walked(tmp_path: Path) -> None:
    """``os.walk`` recursed, one level a frame: 1,500 levels raised RecursionError."""
    levels = [tmp_path.joinpath(*["d"] * depth) for depth in range(1, 1501)]
    for level in levels:  # os.makedirs recurses too
        level.mkdir()
    deepest = _export(levels[-1] / "x.ndjson")
    try:
        assert list(walk(tmp_path, [])) == [deepest]
    finally:  # so does shutil.rmtree, which pytest cleans up with
        deepest.unlink()
        for level in reversed(levels):
            level.rmdir()


class _Listing:
    """``os.scandir`` where listing ``bad`` fails with ``error``, at once or after the
    first entry (``late``)."""

    def __init__(self, bad: Path, error: OSError, *, late: bool = False) -> None:
        self.real = os.scandir
        self.bad, self.error, self.late = bad, error, late

    def __call__(self, path: Any = ".") -> Any:
        if isinstance(path, int) or Path(path) != self.bad:  # an fd: shutil.rmtree's
            return self.real(path)
        if not self.late:
            raise self.error
        return _Failing(self.real(path), self.error)


class _Failing:
    def __init__(self, entries: Any, error: OSError) -> None:
        self.entries, self.error = entries, error

    def __enter__(self) -> _Failing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.entries.close()

    def __iter__(self) -> Iterator[Any]:
        yield next(iter(self.entries))
        raise self.error


@pytest.mark.parametrize(
    ("error", "late", "reason"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), False,
         "cannot be read (Permission denied); check its permissions"),
        (OSError(errno.EIO, "Input/output error"), True,
         "cannot be read (Input/output error); check the disk or file system it is on"),
    ],
    ids=["permission", "io-error-while-listing"],
)  # fmt: skip
def test_a_subdirectory_that_cannot_be_listed_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, late: bool, reason: str
) -> None:
    """It was passed over in silence: exit 0, its events missing. (Tests run as root,
    which permission bits do not stop: the listing is made to fail.)"""
    _export(tmp_path / "a.ndjson")
    _export(tmp_path / "secret" / "b.ndjson")
    _export(tmp_path / "secret" / "c.ndjson")
    monkeypatch.setattr(os, "scandir", _Listing(tmp_path / "secret", error, late=late))
    with pytest.raises(InputError) as raised:
        run_hunt([str(tmp_path)], HuntSpec(now=NOW))
    assert str(raised.value) == f"{tmp_path / 'secret'}: {reason}"
    assert raised.value.file == str(tmp_path / "secret")


@pytest.mark.parametrize("command", ["hunt", "sweep", "pivot"])
def test_the_command_exits_1_naming_what_cannot_be_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    _export(tmp_path / "a.ndjson")
    _export(tmp_path / "secret" / "b.ndjson")
    error = PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(os, "scandir", _Listing(tmp_path / "secret", error))
    ids = ["E1"] if command == "pivot" else []
    done = CliRunner().invoke(app, [command, *ids, str(tmp_path), "-q"])
    assert (done.exit_code, done.stdout) == (1, "")
    assert done.stderr == (
        f"Error: {tmp_path / 'secret'}: cannot be read (Permission denied); check its permissions\n"
    )


def test_an_entry_whose_status_cannot_be_read_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _export(tmp_path / "a.ndjson")
    bad = _export(tmp_path / "b.ndjson")
    real = os.lstat

    def lstat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(path) == bad:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat)
    with pytest.raises(InputError, match=r"b\.ndjson: cannot be read \(Permission denied\); "):
        run_hunt([str(tmp_path)], HuntSpec(now=NOW))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads what permission bits forbid")
def test_an_unreadable_directory_or_file_is_an_error_without_root(tmp_path: Path) -> None:
    _export(tmp_path / "a.ndjson")
    _export(tmp_path / "secret" / "b.ndjson")
    (tmp_path / "secret").chmod(0)
    try:
        with pytest.raises(InputError) as raised:
            run_hunt([str(tmp_path)], HuntSpec(now=NOW))
    finally:
        (tmp_path / "secret").chmod(0o755)
    assert str(raised.value) == (
        f"{tmp_path / 'secret'}: cannot be read (Permission denied); check its permissions"
    )
    (tmp_path / "secret" / "b.ndjson").chmod(0)
    with pytest.raises(InputError) as raised:
        run_hunt([str(tmp_path)], HuntSpec(now=NOW))
    assert str(raised.value) == (
        f"{tmp_path / 'secret' / 'b.ndjson'}: cannot be read (Permission denied); check its "
        "permissions"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.symlink_to("gone.ndjson"),
         "a dangling symlink (to gone.ndjson: no such file or directory); name the file itself"),
        (lambda p: p.symlink_to(p), "a symlink loop (following it never reaches a file); name "
         "the file itself"),
        (os.mkfifo, "not a regular file or directory; name a file"),
    ],
    ids=["dangling", "loop", "fifo"],
)  # fmt: skip
def test_a_named_path_that_leads_nowhere_is_an_error(
    tmp_path: Path, make: Any, message: str
) -> None:
    path = tmp_path / "named.ndjson"
    make(path)
    with pytest.raises(InputError) as raised:
        run_hunt([str(path)], HuntSpec(now=NOW))
    assert str(raised.value) == f"{path}: {message}"


def test_a_glob_through_links_to_their_own_directory_ends(tmp_path: Path) -> None:
    """``glob.glob('d/**/*.ndjson', recursive=True)`` followed every link: with three
    links to ``.`` it searched for ever (3^40 paths)."""
    _export(tmp_path / "d" / "x.ndjson")
    _export(tmp_path / "d" / "sub" / "y.ndjson", "E2")
    for name in ("a", "b", "c"):
        (tmp_path / "d" / name).symlink_to(".")
    skipped: list[str] = []
    pattern = str(tmp_path / "d" / "**" / "*.ndjson")
    found = glob_matches(pattern, skipped)
    assert _names(tmp_path, found) == ["d/sub/y.ndjson", "d/x.ndjson"]
    loop = "a symlink loop (to a directory that holds it), not followed (skipped)"
    assert skipped == [f"{tmp_path / 'd' / name}: {loop}" for name in ("a", "b", "c")]
    result = run_hunt([pattern], HuntSpec(now=NOW))
    assert (result.counts.records, result.skipped) == (2, skipped)


def test_a_glob_matches_as_glob_does(tmp_path: Path) -> None:
    for name in ("x1.ndjson", "x2.ndjson", ".x3.ndjson", "y/x4.ndjson", "y/z/x5.ndjson",
                 ".hidden/x6.ndjson"):  # fmt: skip
        _export(tmp_path / name)
    (tmp_path / "linked").symlink_to(tmp_path / "y")
    (tmp_path / "x9.ndjson").symlink_to("gone")
    skipped: list[str] = []
    assert _names(tmp_path, glob_matches(str(tmp_path / "x*.ndjson"), skipped)) == [
        "x1.ndjson", "x2.ndjson",
    ]  # fmt: skip
    assert skipped == [
        f"{tmp_path / 'x9.ndjson'}: a dangling symlink (to gone: no such file or directory) "
        "(skipped)"
    ]
    assert _names(tmp_path, glob_matches(str(tmp_path / ".x*"), [])) == [".x3.ndjson"]
    skipped = []
    assert _names(tmp_path, glob_matches(str(tmp_path / "**" / "x[45].ndjson"), skipped)) == [
        "y/x4.ndjson", "y/z/x5.ndjson",
    ]  # fmt: skip
    assert skipped == [
        f"{tmp_path / 'linked'}: a symlink to a directory, not followed; name the directory "
        "to read it (skipped)"
    ]
    # a match that is a link to a directory is read as if named: walked
    assert _names(tmp_path, glob_matches(str(tmp_path / "l*"), [])) == ["linked"]
    assert _names(tmp_path, glob_matches(str(tmp_path / "*" / "z"), [])) == ["linked/z", "y/z"]
    assert glob_matches(str(tmp_path / "nothing" / "*"), []) == []


def test_a_glob_that_must_list_an_unreadable_directory_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``glob`` passed over a directory it could not list."""
    _export(tmp_path / "a" / "x.ndjson")
    _export(tmp_path / "b" / "x.ndjson")
    error = PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(os, "scandir", _Listing(tmp_path / "b", error))
    with pytest.raises(InputError) as raised:
        glob_matches(str(tmp_path / "*" / "*.ndjson"), [])
    assert (
        str(raised.value) == f"{tmp_path / 'b'}: cannot be read (Permission denied); check "
        "its permissions"
    )


def test_a_glob_that_matches_only_what_is_skipped_says_why(tmp_path: Path) -> None:
    (tmp_path / "a.ndjson").symlink_to("gone.ndjson")
    with pytest.raises(InputError) as raised, open_inputs([str(tmp_path / "*.ndjson")]):
        pass
    assert str(raised.value).startswith(
        f"nothing in {tmp_path / '*.ndjson'} is an export this tool understands (1 file "
        f"skipped: {tmp_path / 'a.ndjson'}: a dangling symlink (to gone.ndjson: no such file "
        "or directory) (skipped)); it reads "
    )
