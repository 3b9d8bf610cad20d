"""Writers: format choice, atomic files, inert terminal text."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import pytest

from egress_offline.errors import UsageError
from egress_offline.writers import format_for, human_bytes, inert, write_atomic


def test_format_choice() -> None:
    assert format_for(None, None, terminal=True) == "table"
    assert format_for(None, None, terminal=False) == "csv"
    assert format_for(Path("x.NDJSON"), None, terminal=True) == "ndjson"
    assert format_for(Path("x.parquet"), "csv", terminal=True) == "csv"
    with pytest.raises(UsageError, match="cannot tell the format"):
        format_for(Path("x.xlsx"), None, terminal=False)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"

    def fail(sink: IO[bytes]) -> None:
        sink.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    write_atomic(target, lambda sink: sink.write(b"new\n") and None)
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_inert_and_sizes() -> None:
    assert inert("a\x1b[31mb\u202ec\td") == "a\\x1b[31mb\\u202ec\\td"
    assert human_bytes(1024**3) == "1.00 GiB"
    assert human_bytes(512) == "512 B"
    assert human_bytes(None) == ""
