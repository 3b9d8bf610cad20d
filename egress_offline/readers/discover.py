"""Discovery: the paths a user names (files, directories, globs, ``-``) as input files."""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from egress_offline.errors import InputError
from egress_offline.readers import tuning
from egress_offline.readers.linescan import check_read_settings
from egress_offline.readers.model import InputFile, Inputs
from egress_offline.readers.sniff import KNOWN_LAYOUTS, describe
from egress_offline.readers.walk import GLOB_CHARS, glob_matches, kind_of_named, walk
from egress_offline.scratch import Scratch, scratch_errors

__all__ = ["GLOB_CHARS", "open_inputs"]


@contextmanager
def open_inputs(paths: Sequence[str], scratch: Scratch | None = None) -> Iterator[Inputs]:
    """Resolve files, directories, globs and ``-`` (standard input) into input files.

    Standard input is copied to the scratch directory (``scratch``, or one of its own)
    first, so that it can be sniffed and read like any file; its first bytes are sniffed
    before the rest is copied, and the copy is removed on exit.
    """
    if not paths:
        raise InputError("no input given; name files, directories, globs or - for stdin")
    with contextlib.ExitStack() as stack:
        if scratch is None:
            scratch = stack.enter_context(Scratch())
        files: dict[Path, InputFile] = {}
        skipped: list[str] = []
        for raw in paths:
            if raw == "-":
                spool = _spool_stdin(scratch)
                stack.callback(scratch.release, spool)
                files[spool] = _named(spool, "<stdin>")
                continue
            kind = kind_of_named(raw)
            if kind == "file":
                path = Path(raw)
                files.setdefault(path.resolve(), _named(path, raw))
            elif kind == "directory":
                for found in walk(Path(raw), skipped):
                    _add_found(found, files, skipped)
            elif GLOB_CHARS & set(raw):
                before = len(skipped)
                matches = glob_matches(raw, skipped)
                if not matches and len(skipped) == before:
                    raise InputError(f"{raw}: the pattern matches no file; check the pattern")
                for match in matches:
                    if match.is_dir():
                        for found in walk(match, skipped):
                            _add_found(found, files, skipped)
                    else:
                        _add_found(match, files, skipped)
            else:
                raise InputError(f"{raw}: no such file or directory; check the path")
        if not files:
            shown = "; ".join(skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
            raise InputError(
                f"nothing in {', '.join(paths)} is an export this tool understands "
                f"({len(skipped)} files skipped: {shown}); it reads {KNOWN_LAYOUTS}"
            )
        if any(file.format == "ndjson" for file in files.values()):
            check_read_settings()
        unique = _read_once(list(files.values()), skipped)
        yield Inputs(files=unique, skipped=skipped)


def _read_once(files: list[InputFile], skipped: list[str]) -> list[InputFile]:
    """``files`` without those whose bytes another one has already (two copies of one
    export): each is listed in ``skipped``. Only files of the same size are compared,
    by their SHA-256."""
    sizes = Counter(file.size for file in files)
    seen: dict[tuple[int, str], InputFile] = {}
    unique = []
    for file in files:
        if sizes[file.size] > 1 and file.size > 0:
            with file.path.open("rb") as handle:
                key = (file.size, hashlib.file_digest(handle, "sha256").hexdigest())
            if key in seen:
                skipped.append(f"{file.name}: the same bytes as {seen[key].name} (read once)")
                continue
            seen[key] = file
        unique.append(file)
    return unique


def _spool_stdin(scratch: Scratch) -> Path:
    """Copy standard input to the scratch directory, charged to its budget. Its first
    bytes are sniffed first: what is not an export (``cat /dev/zero``) is refused before
    more is copied."""
    spool = scratch.path("stdin")
    source = sys.stdin.buffer
    with scratch_errors(scratch), spool.open("wb") as out:
        head = source.read(tuning.PEEK)
        out.write(head)
        out.flush()
        scratch.charge(spool, len(head))
        if head:
            try:
                describe(spool, name="<stdin>", explicit=True)
            except InputError:
                scratch.release(spool)
                raise
        while block := source.read(tuning.BLOCK):
            out.write(block)
            scratch.charge(spool, len(block))
    return spool


def _named(path: Path, name: str) -> InputFile:
    """A file the user named: one that is not an export is an error, not skipped."""
    described = describe(path, name=name, explicit=True)
    assert isinstance(described, InputFile)  # explicit: raised otherwise
    return described


def _add_found(path: Path, files: dict[Path, InputFile], skipped: list[str]) -> None:
    resolved = path.resolve()
    if resolved in files:
        return
    described = describe(path, name=str(path), explicit=False)
    if isinstance(described, str):
        skipped.append(f"{path}: {described}")
    else:
        files[resolved] = described
