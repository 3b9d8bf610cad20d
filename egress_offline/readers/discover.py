"""Discovery: the paths a user names (files, directories, globs, ``-``) as input files."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from egress_offline.errors import InputError
from egress_offline.readers import tuning
from egress_offline.readers.boundary import translated
from egress_offline.readers.linescan import check_read_settings
from egress_offline.readers.model import InputFile, Inputs
from egress_offline.readers.remote import Store, check_uri, list_uri, uri_scheme
from egress_offline.readers.sniff import KNOWN_LAYOUTS, describe, describe_file
from egress_offline.readers.walk import GLOB_CHARS, glob_matches, kind_of_named, walk
from egress_offline.scratch import Scratch, scratch_errors

__all__ = ["GLOB_CHARS", "open_inputs"]


@contextmanager
def open_inputs(paths: Sequence[str], scratch: Scratch | None = None, *,
                store: Store | None = None) -> Iterator[Inputs]:  # fmt: skip
    """Resolve files, directories, globs and ``-`` (standard input) into input files.

    Standard input is copied to the scratch directory (``scratch``, or one of its own)
    first, so that it can be sniffed and read like any file; its first bytes are sniffed
    before the rest is copied, and the copy is removed on exit. A ``file://`` URI is its
    path. Other URIs (``s3a://``...) are read only with a ``store`` (the Spark engine's,
    :mod:`~egress_offline.readers.remote`); without one they are refused: the local
    engine never touches the network.
    """
    if not paths:
        raise InputError("no input given; name files, directories, globs or - for stdin")
    with contextlib.ExitStack() as stack:
        if scratch is None:
            scratch = stack.enter_context(Scratch())
        files: dict[Any, InputFile] = {}  # by resolved path, or URI
        skipped: list[str] = []
        stdin_read = False
        for named in paths:
            if named == "-":
                if stdin_read:  # read once: named again, it is the same input (a second
                    continue  # copy, of what was left of it, was empty: 0 records)
                stdin_read = True
                spool = _spool_stdin(scratch)
                stack.callback(scratch.release, spool)
                files[spool] = _named(spool, "<stdin>")
                continue
            if uri_scheme(named) is not None:
                _add_uris(named, store, files, skipped)
                continue
            raw = _path_of(named)
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
            held = (
                f"{len(skipped):,} file{'' if len(skipped) == 1 else 's'} skipped: {shown}"
                if skipped
                else f"no file in {'it' if len(paths) == 1 else 'them'}"
            )
            raise InputError(
                f"nothing in {', '.join(paths)} is an export this tool understands "
                f"({held}); it reads {KNOWN_LAYOUTS}"
            )
        if any(file.format == "ndjson" for file in files.values()):
            check_read_settings()
        unique = [_readable(file, scratch) for file in _read_once(list(files.values()), skipped)]
        yield Inputs(files=unique, skipped=skipped)


_LINKS = itertools.count()  # the scratch links' numbers


def _readable(file: InputFile, scratch: Scratch) -> InputFile:
    """``file``, or, when its path is no UTF-8 text (a name of other bytes, which Polars
    and pyarrow cannot take), the same file through a link of a plain name in the
    scratch directory, removed with it; its name as given still names it."""
    try:
        str(file.path).encode("utf-8")
    except UnicodeEncodeError:
        link = scratch.path(f"link-{next(_LINKS)}")
        link.symlink_to(file.path.absolute())
        return replace(file, path=link)
    return file


def _read_once(files: list[InputFile], skipped: list[str]) -> list[InputFile]:
    """``files`` without those whose bytes another one has already (two copies of one
    export): each is listed in ``skipped``. Only files of the same size are compared,
    by their SHA-256."""
    sizes = Counter(file.size for file in files)
    seen: dict[tuple[int, str], InputFile] = {}
    unique = []
    for file in files:
        if sizes[file.size] > 1 and file.size > 0:
            with translated(file), file.open() as handle:
                digest = hashlib.file_digest(handle, "sha256")  # type: ignore[arg-type]
                key = (file.size, digest.hexdigest())
            if key in seen:
                skipped.append(f"{file.name}: the same bytes as {seen[key].name} (read once)")
                continue
            seen[key] = file
        unique.append(file)
    return unique


def _path_of(raw: str) -> str:
    """A path as named, or a ``file://`` URI's path."""
    if raw[:7].lower() == "file://":
        parts = urlsplit(raw)
        if parts.netloc.lower() not in ("", "localhost"):  # file://data/x is not ./data/x
            raise InputError(
                f"{raw}: a file:// URI names a path after its third slash, and "
                f"{parts.netloc!r} is taken for a host; name file:///absolute/path or a "
                "plain path",
                file=raw,
            )
        return unquote(parts.path)
    return raw


def _add_uris(raw: str, store: Store | None, files: dict[Any, InputFile],
              skipped: list[str]) -> None:  # fmt: skip
    """The files a URI names (:func:`~egress_offline.readers.remote.list_uri`), sniffed
    through their file system; the one a user named is an error if not understood."""
    check_uri(raw)
    if store is None:
        raise InputError(
            f"{raw}: a URI; the local engine reads files on this machine only and never "
            "touches the network: run with --engine spark (which reads s3a://, s3://, gs://, "
            "abfss:// and hdfs:// URIs), or copy the files here and name them",
            file=raw,
        )
    found = list_uri(raw, store)
    for uri, size in found:
        if uri in files:
            continue
        file = InputFile(Path(uri), uri, size, "ndjson", "none", uri=uri, store=store)
        described = describe_file(file, explicit=len(found) == 1 and uri == raw)
        if isinstance(described, str):
            skipped.append(f"{uri}: {described}")
        else:
            files[uri] = described


def _spool_stdin(scratch: Scratch) -> Path:
    """Copy standard input to the scratch directory, charged to its budget. Its first
    bytes are sniffed first: what is not an export (``cat /dev/zero``) is refused before
    more is copied."""
    try:
        source = sys.stdin.buffer
    except AttributeError as exc:  # closed (`<&-`): Python made no stream of it
        raise InputError(
            "- names standard input, which is closed; pipe an export into it, or name a file"
        ) from exc
    spool = scratch.path("stdin")
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
