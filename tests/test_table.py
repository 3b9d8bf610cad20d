"""The table (egress_offline.table; the hunt's, the sweep's and pivot's tables laid out
with it): fitted to the width, each id whole on a line of its own, long values shortened
with a mark or wrapped, numbers right-aligned; exactly, on the sample data."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import termios
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from egress_offline.cli import app
from egress_offline.table import (
    MARK,
    Column,
    cells,
    laid_out,
    shortened,
    table_width,
    wrapped,
)
from egress_offline.writers import render, table_text

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
RCLONE = "MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTczMTItMTMyOTM1NDkxMDkuNzM1OTUwNQ=="
SVHOST = "MTgwNzgzOTMtMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTkwMDEtMTMyOTM1NDkxMDkuNzM1OTUwNQ=="
POWERSHELL = "MDg5Mjg2NzItMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTQ0MjAtMTMyOTM1NDkxMDkuNzM1OTUwNQ=="
ONEDRIVE = "MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTY2MDAtMTMyOTM1NDkxMDkuNzM1OTUwNQ=="
GiB = 1024**3


def shown(*arguments: str, width: int) -> str:
    """What a command writes as a table, ``COLUMNS`` wide."""
    done = CliRunner().invoke(
        app, [*arguments, "-q", "--format", "table"], env={"COLUMNS": str(width)}
    )
    assert done.exit_code == 0, done.stderr
    return str(done.stdout)


def assert_fits(text: str, width: int, ids: list[str]) -> None:
    """Each id whole on a line; every line within ``width`` but for an id alone on its
    line, which is whole however wide."""
    lines = text.splitlines()
    for entity in ids:
        assert any(entity in line.split() for line in lines), entity
    for line in lines:
        if line.strip() not in ids:
            assert cells(line) <= width, line


HUNT_80 = r"""
total_bytes_out      3.11 GiB
process.entity_id
  MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTczMTItMTMyOTM1NDkxMDkuNzM1OTUwNQ==
destination.address  185.220.101.7
process.executable   C:\Users\jdoe\AppData\Local\Temp\rclone.exe
host.name            WIN-WKS-03
user.name            jdoe
connections          40
first_seen           2026-11-20 09:29:59
last_seen            2026-11-20 15:29:59
destination.port     443
destination.as.organization.name

total_bytes_out      1.00 GiB
process.entity_id
  MTgwNzgzOTMtMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTkwMDEtMTMyOTM1NDkxMDkuNzM1OTUwNQ==
destination.address  45.77.12.9
process.executable   C:\ProgramData\svc\svhost.exe
host.name            WIN-WKS-01
user.name            jdoe
connections          25
first_seen           2026-11-20 12:59:59
last_seen            2026-11-20 15:47:59
destination.port     443
destination.as.organization.name
                     CHOOPA

total_bytes_out      1.00 GiB
process.entity_id
  MDg5Mjg2NzItMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTQ0MjAtMTMyOTM1NDkxMDkuNzM1OTUwNQ==
destination.address  sync.exfil-cdn.example
process.executable   C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe
host.name            WIN-WKS-05
user.name            jdoe
connections          12
first_seen           2026-11-20 08:29:59
last_seen            2026-11-20 14:59:59
destination.port     443
destination.as.organization.name
                     AMAZON-02
"""[1:]

HUNT_200 = r"""
    total_  destination.address     process.executable                                         host.name   user.name  connections  first_seen           last_seen            destination.  destination.
 bytes_out                                                                                                                                                                           port  as.
                                                                                                                                                                                           organization.
                                                                                                                                                                                           name
    process.entity_id
────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────
  3.11 GiB  185.220.101.7           C:\Users\jdoe\AppData\Local\Temp\rclone.exe                WIN-WKS-03  jdoe                40  2026-11-20 09:29:59  2026-11-20 15:29:59           443
    MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTczMTItMTMyOTM1NDkxMDkuNzM1OTUwNQ==
  1.00 GiB  45.77.12.9              C:\ProgramData\svc\svhost.exe                              WIN-WKS-01  jdoe                25  2026-11-20 12:59:59  2026-11-20 15:47:59           443  CHOOPA
    MTgwNzgzOTMtMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTkwMDEtMTMyOTM1NDkxMDkuNzM1OTUwNQ==
  1.00 GiB  sync.exfil-cdn.example  C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe  WIN-WKS-05  jdoe                12  2026-11-20 08:29:59  2026-11-20 14:59:59           443  AMAZON-02
    MDg5Mjg2NzItMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTQ0MjAtMTMyOTM1NDkxMDkuNzM1OTUwNQ==
"""[1:]

SWEEP_80 = r"""
peak_bytes           3.27 GiB
process.entity_id
  MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTY2MDAtMTMyOTM1NDkxMDkuNzM1OTUwNQ==
destination.address  13.107.42.14
process.executable   C:\Users\jdoe\AppData\Local\Microsoft\OneDrive\OneDrive.exe
peak_window_start    2026-11-19 21:27:59
peak_window_end      2026-11-20 04:47:59
total_bytes_out      4.00 GiB
host.name            WIN-WKS-03
user.name            jdoe
connections          16
first_seen           2026-11-19 19:59:59
last_seen            2026-11-20 06:59:59
destination.port     443
destination.as.organization.name

peak_bytes           3.11 GiB
process.entity_id
  MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTczMTItMTMyOTM1NDkxMDkuNzM1OTUwNQ==
destination.address  185.220.101.7
process.executable   C:\Users\jdoe\AppData\Local\Temp\rclone.exe
peak_window_start    2026-11-20 09:29:59
peak_window_end      2026-11-20 15:29:59
total_bytes_out      3.11 GiB
host.name            WIN-WKS-03
user.name            jdoe
connections          40
first_seen           2026-11-20 09:29:59
last_seen            2026-11-20 15:29:59
destination.port     443
destination.as.organization.name

peak_bytes           1.00 GiB
process.entity_id
  MTgwNzgzOTMtMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTkwMDEtMTMyOTM1NDkxMDkuNzM1OTUwNQ==
destination.address  45.77.12.9
process.executable   C:\ProgramData\svc\svhost.exe
peak_window_start    2026-11-20 12:59:59
peak_window_end      2026-11-20 15:47:59
total_bytes_out      1.00 GiB
host.name            WIN-WKS-01
user.name            jdoe
connections          25
first_seen           2026-11-20 12:59:59
last_seen            2026-11-20 15:47:59
destination.port     443
destination.as.organization.name
                     CHOOPA

peak_bytes           1.00 GiB
process.entity_id
  MDg5Mjg2NzItMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTQ0MjAtMTMyOTM1NDkxMDkuNzM1OTUwNQ==
destination.address  sync.exfil-cdn.example
process.executable   C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe
peak_window_start    2026-11-20 08:29:59
peak_window_end      2026-11-20 14:59:59
total_bytes_out      1.00 GiB
host.name            WIN-WKS-05
user.name            jdoe
connections          12
first_seen           2026-11-20 08:29:59
last_seen            2026-11-20 14:59:59
destination.port     443
destination.as.organization.name
                     AMAZON-02
"""[1:]

SWEEP_240 = r"""
   peak_  destination.address     process.executable                                   peak_window_start    peak_window_end        total_  host.name   user.  connections  first_seen           last_seen            destination.  destination.
   bytes                                                                                                                           bytes_              name                                                                  port  as.
                                                                                                                                      out                                                                                          organization.
                                                                                                                                                                                                                                   name
    process.entity_id
────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────
3.27 GiB  13.107.42.14            C:\Users\jdoe\AppData\Loc…oft\OneDrive\OneDrive.exe  2026-11-19 21:27:59  2026-11-20 04:47:59  4.00 GiB  WIN-WKS-03  jdoe            16  2026-11-19 19:59:59  2026-11-20 06:59:59           443
    MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTY2MDAtMTMyOTM1NDkxMDkuNzM1OTUwNQ==
3.11 GiB  185.220.101.7           C:\Users\jdoe\AppData\Local\Temp\rclone.exe          2026-11-20 09:29:59  2026-11-20 15:29:59  3.11 GiB  WIN-WKS-03  jdoe            40  2026-11-20 09:29:59  2026-11-20 15:29:59           443
    MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTczMTItMTMyOTM1NDkxMDkuNzM1OTUwNQ==
1.00 GiB  45.77.12.9              C:\ProgramData\svc\svhost.exe                        2026-11-20 12:59:59  2026-11-20 15:47:59  1.00 GiB  WIN-WKS-01  jdoe            25  2026-11-20 12:59:59  2026-11-20 15:47:59           443  CHOOPA
    MTgwNzgzOTMtMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTkwMDEtMTMyOTM1NDkxMDkuNzM1OTUwNQ==
1.00 GiB  sync.exfil-cdn.example  C:\Windows\System32\Windo…Shell\v1.0\powershell.exe  2026-11-20 08:29:59  2026-11-20 14:59:59  1.00 GiB  WIN-WKS-05  jdoe            12  2026-11-20 08:29:59  2026-11-20 14:59:59           443  AMAZON-02
    MDg5Mjg2NzItMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTQ0MjAtMTMyOTM1NDkxMDkuNzM1OTUwNQ==
… marks a value shortened to fit 240 columns; --format csv or json shows them whole.
"""[1:]

PIVOT_RCLONE_80 = r"""
process.entity_id
  MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTczMTItMTMyOTM1NDkxMDkuNzM1OTUwNQ==
  42 events; process from its start event
  executable      C:\Users\jdoe\AppData\Local\Temp\rclone.exe
  pid             7312
  host / user     WIN-WKS-03 / CORP\jdoe
  started         2026-11-20T09:25:00.000Z
  command line    rclone.exe copy C:\Users\jdoe\Documents remote:loot
                  --transfers 8 -q
  sha256
    831154ef831154ef831154ef831154ef831154ef831154ef831154ef831154ef
  sha1            831154ef831154ef831154ef831154ef831154ef
  md5             831154ef831154ef831154ef831154ef
  code signature  unsigned (exists: false)
  parent (its start event)
    entity id
      MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTczMTEtMS41MDAwMDAw
    executable      C:\Windows\System32\cmd.exe
    pid             7311
    host / user     WIN-WKS-03 / CORP\jdoe
    started         2026-11-20T08:55:00.000Z
    command line    cmd.exe /c C:\Users\jdoe\AppData\Local\Temp\run.bat
    sha256
      aad80e22aad80e22aad80e22aad80e22aad80e22aad80e22aad80e22aad80e22
    sha1            aad80e22aad80e22aad80e22aad80e22aad80e22
    md5             aad80e22aad80e22aad80e22aad80e22
    code signature  Microsoft Windows (trusted: true, status: trusted)
  children (2)
    started       2026-11-20T09:25:06.000Z
    first seen    2026-11-20T09:25:06.000Z
    pid           7400
    executable    C:\Windows\System32\conhost.exe
    command line  \??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1
    entity id
      MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTc0MDAtMTMyOTM1NDkyMDAuMTAwMDAwNA==

    started       2026-11-20T15:26:00.000Z
    first seen    2026-11-20T15:26:00.000Z
    pid           7404
    executable    C:\Windows\System32\cmd.exe
    command line  cmd.exe /c del /q C:\Users\jdoe\AppData\Local\Temp\run.bat
    entity id
      MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTc0MDQtMTMyOTM1NDk1NjEuMDAwMDAwMA==
  network, per destination (1)
    first seen   2026-11-20T09:29:59.965Z
    last seen    2026-11-20T15:29:59.562Z
    destination  185.220.101.7
    ip           185.220.101.7
    port         443
    bytes out    3344682261
    bytes in     1009810
    connections  40
    events       40

"""[1:]

PIVOT_ONEDRIVE_200 = r"""
process.entity_id MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTY2MDAtMTMyOTM1NDkxMDkuNzM1OTUwNQ==
  16 events; process from its other events
  executable      C:\Users\jdoe\AppData\Local\Microsoft\OneDrive\OneDrive.exe
  pid             6600
  host / user     WIN-WKS-03 / NT AUTHORITY\jdoe
  started         unknown (no start event; first seen 2026-11-19T19:59:59.341Z)
  command line    -
  sha256          -
  sha1            -
  md5             -
  code signature  none recorded
  parent          MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTY1OTktMS41MDAwMDAw (no start event in the export)
  children (0)
  network, per destination (1)
    first seen                last seen                 destination   ip            port   bytes out  bytes in  connections  events
    ───────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────
    2026-11-19T19:59:59.341Z  2026-11-20T06:59:59.317Z  13.107.42.14  13.107.42.14   443  4294967296    657468           16      16

"""[1:]


@pytest.mark.parametrize(("width", "expected"), [(80, HUNT_80), (200, HUNT_200)])
def test_the_hunt_on_the_sample_data(width: int, expected: str) -> None:
    """At 200 columns, a row a line, the id under it; at 80 the rows cannot fit (an id
    is 84 characters), so a record per row; nothing shortened in either."""
    text = shown("hunt", str(SAMPLE_DIR), width=width)
    assert text == expected
    assert_fits(text, width, [RCLONE, SVHOST, POWERSHELL])
    assert MARK not in text


@pytest.mark.parametrize(("width", "expected"), [(80, SWEEP_80), (200, SWEEP_80), (240, SWEEP_240)])
def test_the_sweep_on_the_sample_data(width: int, expected: str) -> None:
    """Two more time columns: rows fit from 217 columns, the executables shortened in
    the middle at 240, and said so under the table."""
    text = shown("sweep", str(SAMPLE_DIR), width=width)
    assert text == expected
    assert_fits(text, width, [ONEDRIVE, RCLONE, SVHOST, POWERSHELL])


@pytest.mark.parametrize(
    ("width", "entity", "expected"),
    [(80, RCLONE, PIVOT_RCLONE_80), (200, ONEDRIVE, PIVOT_ONEDRIVE_200)],
)
def test_pivot_on_the_sample_data(width: int, entity: str, expected: str) -> None:
    """The report within the width, its ids (and hashes) whole; the queries that follow
    are kept as they are to be pasted."""
    text = shown("pivot", entity, str(SAMPLE_DIR), width=width)
    report, queries = text.split("ES|QL (paste", 1)
    assert report == expected
    children = [line.strip() for line in report.splitlines() if line.startswith("      MTE3")]
    assert_fits(report, width, [entity, *children])
    assert queries.startswith(" into Discover or the ES|QL console):\n  FROM logs-endpoint")


def test_the_width_is_columns_else_the_terminal_s_else_200(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leader, follower = os.openpty()
    try:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        with os.fdopen(follower, "wb", closefd=False) as terminal:
            assert table_width(terminal) == 132
            assert table_width(io.BytesIO()) == 200  # not a terminal: a file, a pipe
            assert table_width(None) == 200
            monkeypatch.setenv("COLUMNS", "100")  # the user's word comes first
            assert table_width(terminal) == 100
            monkeypatch.setenv("COLUMNS", "12")
            assert table_width(terminal) == 40  # narrower is taken as 40
            monkeypatch.setenv("COLUMNS", "wide")
            assert table_width(terminal) == 132
    finally:
        os.close(leader)
        os.close(follower)


def test_render_fits_the_terminal_it_writes_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--format table`` to a terminal 100 columns wide, with no COLUMNS."""
    rows = pl.DataFrame(
        {
            "total_bytes_out": [3 * GiB],
            "process.entity_id": [RCLONE],
            "process.executable": ["C:\\Users\\jdoe\\AppData\\Local\\Temp\\" + "x" * 100 + ".exe"],
            "connections": [7],
        }
    )
    leader, follower = os.openpty()
    try:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 100, 0, 0))
        with os.fdopen(follower, "wb", closefd=False) as terminal:
            render(rows, "table", terminal)
        os.set_blocking(leader, False)
        text = os.read(leader, 65536).decode().replace("\r\n", "\n")
    finally:
        os.close(leader)
        os.close(follower)
    assert text.splitlines() == [
        "  total_  process.executable                                                             connections",
        "  bytes_",
        "     out",
        "    process.entity_id",
        "─" * 100,
        "3.00 GiB  C:\\Users\\jdoe\\AppData\\Local\\Temp\\xxxxx…xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.exe            7",
        f"    {RCLONE}",
        "… marks a value shortened to fit 100 columns; --format csv or json shows them whole.",
    ]


@pytest.mark.parametrize("width", [40, 80, 120])
def test_an_id_is_whole_on_one_line_however_long_and_escaped(width: int) -> None:
    """An id wider than the terminal is still whole: the terminal wraps it for the eye,
    and copies it as one line. An escaped one too: its escapes hold no line break."""
    hostile = "A" * 150 + "\n\x1b[2J\u200b\u2215="
    rows = pl.DataFrame(
        {"total_bytes_out": [GiB], "process.entity_id": [hostile], "host.name": ["WKS-1"]}
    )
    escaped = "A" * 150 + "\\n\\x1b[2J\\u200b\\u2215="
    text = table_text(rows, width=width)
    assert escaped in text.splitlines() or f"    {escaped}" in text.splitlines()
    assert "\x1b" not in text and "\u200b" not in text
    assert_fits(text, width, [escaped])


def test_numbers_right_aligned_text_left() -> None:
    rows = [["5", "a"], ["12345", "bcd"], ["443, 8443", "e"]]
    lines, cut = laid_out([Column("n", "number"), Column("name")], rows, width=40)
    assert (lines, cut) == (
        ["        n  name", "─" * 15, "        5  a", "    12345  bcd", "443, 8443  e"],
        False,
    )


def test_headings_fold_before_values_are_shortened_then_records() -> None:
    columns = [Column("destination.as.organization.name"), Column("process.executable")]
    columns.append(Column("id", "id"))
    exe = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    row = [["AMAZON-02", exe, "E1"]]
    assert laid_out(columns, row, width=80) == (
        [
            "destination.as.        process.executable",
            "organization.name",
            "    id",
            "─" * 80,
            "AMAZON-02              C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "    E1",
        ],
        False,
    )
    assert laid_out(columns, row, width=40) == (
        [
            "destination.   process.executable",
            "as.",
            "organization.",
            "name",
            "    id",
            "─" * 40,
            "AMAZON-02      C:\\Windows\\S…wershell.exe",
            "    E1",
        ],
        True,
    )
    # no room for 24 cells of the executable: a record a row, wrapped, nothing shortened
    assert laid_out(columns, row, width=38) == (
        [
            "destination.as.organization.name",
            "                   AMAZON-02",
            "process.executable C:\\Windows\\",
            "                   System32\\",
            "                   WindowsPowerShell\\",
            "                   v1.0\\powershell.exe",
            "id",
            "  E1",
        ],
        False,
    )


def test_shortened_and_wrapped() -> None:
    assert shortened("C:\\Users\\jdoe\\AppData\\Local\\Temp\\rclone.exe", 24) == (
        "C:\\Users\\jd…p\\rclone.exe"
    )
    assert shortened("short", 24) == "short"
    assert shortened("報告書類報告書類", 7) == "報…類"  # two cells each: 5 of 7 used
    assert shortened("報ab", 3) == "…b"  # a wide first character that has no room
    assert (
        shortened("Cafe\u0301Cafe\u0301Cafe\u0301", 6) == "Ca…afe\u0301"
    )  # é whole, a mark no cell
    assert wrapped("rclone.exe copy C:\\Users\\jdoe\\Documents remote:loot", 30) == [
        "rclone.exe copy C:\\Users\\jdoe\\",  # 30
        "Documents remote:loot",
    ]
    assert wrapped("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


@given(st.text(min_size=0, max_size=80), st.integers(min_value=2, max_value=40))
def test_shortened_and_wrapped_keep_to_the_width(text: str, width: int) -> None:
    assert cells(shortened(text, width)) <= width
    assert shortened(text, width) == text or MARK in shortened(text, width)
    lines = wrapped(text, width)
    assert "".join(lines) == text
    assert all(cells(line) <= width or len(line) == 1 for line in lines)


def test_a_huge_value_is_laid_out_in_linear_time() -> None:
    """A hostile 2 MB executable: shortened in a row, wrapped in a record (quadratic
    wrapping took minutes)."""
    rows = pl.DataFrame({"total_bytes_out": [GiB], "process.executable": ["\\x" * 1_000_000]})
    assert MARK in table_text(rows, width=200)
    assert len(wrapped("é" * 2_000_000, 40)) == 50_000
    assert len(wrapped("\\x" * 1_000_000, 40)) == 50_001  # broken after a backslash


def test_data_formats_do_not_depend_on_the_width() -> None:
    csv = [
        CliRunner().invoke(
            app, ["hunt", str(SAMPLE_DIR), "-q", "--format", "csv"], env={"COLUMNS": w}
        )
        for w in ("80", "200")
    ]
    assert csv[0].stdout == csv[1].stdout
    assert (
        f",{RCLONE},185.220.101.7,C:\\Users\\jdoe\\AppData\\Local\\Temp\\rclone.exe,"
        in csv[0].stdout
    )
