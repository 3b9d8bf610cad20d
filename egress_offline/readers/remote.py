"""Inputs named by URI (``s3a://``, ``s3://``, ``gs://``, ``abfss://``, ``hdfs://``): listed,
sniffed and read through pyarrow's file systems. Only the Spark engine reads them (the
local engine never touches the network: it says so and names the option).

Where they are read: the driver lists them, reads each one's first bytes to sniff it (and,
for ``--now latest``, its last 64 KiB when uncompressed), and compares files of the same
size by SHA-256 to read two copies once; a Spark task then copies its file, one at a time,
into its scratch directory (charged to the scratch budget, removed once read) and reads the
copy with the same readers as a local file (:func:`staged`).

How they are reached: :class:`Store` holds what the Spark session's Hadoop configuration
says of S3 (``fs.s3a.endpoint``, keys, region, path-style access, anonymous access), so
that an ``s3a://`` URI the session reads is read alike; everything else (AWS, Azure and
Google credentials, libhdfs for ``hdfs://``) comes from the environment of the driver and
executors, as pyarrow takes it.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, BinaryIO, Final, cast

from egress_offline.errors import InputError, first_line
from egress_offline.readers import tuning
from egress_offline.scratch import Scratch, scratch_errors

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from egress_offline.readers.model import InputFile

__all__ = [
    "S3A_SETTINGS", "SCHEMES", "Store", "check_uri", "list_uri", "open_uri", "staged", "uri_of",
    "uri_scheme",
]  # fmt: skip

#: The URI schemes read, and pyarrow's name for each.
SCHEMES: Final = {
    "s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs", "gcs": "gs",
    "abfs": "abfs", "abfss": "abfss", "hdfs": "hdfs",
}  # fmt: skip
_COPIES: Final = itertools.count()
_URI: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: The Hadoop settings of S3A (``fs.s3a.<name>``) that :class:`Store` takes.
S3A_SETTINGS: Final = (
    "endpoint", "endpoint.region", "access.key", "secret.key", "session.token",
    "path.style.access", "connection.ssl.enabled", "aws.credentials.provider",
)  # fmt: skip
_ANONYMOUS: Final = "AnonymousAWSCredentialsProvider"


def uri_scheme(raw: str) -> str | None:
    """The scheme of an input named by URI (lower case), None for a path (or a
    ``file://`` URI, which is one)."""
    found = _URI.match(raw)
    if found is None or found.group(1).lower() == "file":
        return None
    return found.group(1).lower()


def check_uri(raw: str) -> None:
    """Refuse a URI that names no place (``s3a://``, ``s3a:///key``, an empty part:
    ``s3a://bucket//key``) or that holds credentials (``s3a://KEY:SECRET@bucket/``):
    the message shows them hidden, as reports would otherwise keep them."""
    scheme = uri_scheme(raw)
    if scheme is None:
        return
    rest = raw[len(scheme) + 3 :]
    authority, _, path = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if at and (":" in user or SCHEMES.get(scheme) == "s3"):
        shown = f"{raw[: len(scheme) + 3]}<hidden>@{host}/{path}"
        raise InputError(
            f"{shown}: credentials in a URI are not read (nor shown); give them as the "
            "session's settings (spark.hadoop.fs.s3a.access.key...) or the environment",
            file=shown,
        )
    no_bucket = not authority and SCHEMES.get(scheme) != "hdfs"  # hdfs:/// is the default
    if {".", ".."} & set(path.split("/")):  # a client takes a/../b for b: another object
        raise InputError(
            f"{raw}: a key with a . or .. part names no one object (it is read as another "
            "key, or as the bucket); name the prefix or object without them",
            file=raw,
        )
    if no_bucket or path.startswith("/") or "//" in path:
        raise InputError(
            f"{raw}: names no {'bucket' if no_bucket else 'key'} (an empty part between "
            f"slashes); name {scheme}://bucket/prefix/ or an object's key",
            file=raw,
        )


@dataclass(frozen=True)
class Store:
    """How to reach an object store, beyond what the environment says: the S3 settings
    of the Spark session's Hadoop configuration (``spark.hadoop.fs.s3a.*``). The values
    are never shown (they may hold keys)."""

    s3: tuple[tuple[str, Any], ...] = field(default=(), repr=False)

    @classmethod
    def from_hadoop(cls, conf: Mapping[str, str]) -> Store:
        """A store from a Hadoop configuration's ``fs.s3a.*`` settings (``conf``: by
        their names, ``fs.s3a.endpoint``...)."""
        get = {k.removeprefix("fs.s3a."): v for k, v in conf.items() if k.startswith("fs.s3a.")}
        s3: dict[str, Any] = {}
        endpoint = get.get("endpoint", "").strip()
        if endpoint:
            scheme, _, rest = endpoint.partition("://")
            if rest:
                s3["scheme"], endpoint = scheme.lower(), rest
            elif get.get("connection.ssl.enabled", "true").lower() == "false":
                s3["scheme"] = "http"
            s3["endpoint_override"] = endpoint.rstrip("/")
        for key, name in (("access.key", "access_key"), ("secret.key", "secret_key"),
                          ("session.token", "session_token")):  # fmt: skip
            if get.get(key):
                s3[name] = get[key]
        region = get.get("endpoint.region")
        if region:
            s3["region"] = region
        elif endpoint:
            s3["region"] = "us-east-1"  # an S3-compatible store: no region to look up
        if get.get("path.style.access", "").lower() == "true":
            s3["force_virtual_addressing"] = False
        if _ANONYMOUS in get.get("aws.credentials.provider", ""):
            s3["anonymous"] = True
        return cls(s3=tuple(sorted(s3.items())))


def filesystem(uri: str, store: Store | None) -> tuple[pafs.FileSystem, str]:
    """The file system that holds ``uri``, and the path in it."""
    check_uri(uri)
    scheme = uri_scheme(uri)
    if scheme is None or scheme not in SCHEMES:
        raise InputError(
            f"{uri}: {scheme}:// URIs are not read; name s3a://, s3://, gs://, abfss:// "
            "or hdfs:// URIs, local paths or file:// URIs",
            file=uri,
        )
    kind = SCHEMES[scheme]
    rest = uri[len(scheme) + 3 :]
    try:
        if kind == "s3":
            return _s3(store or Store(), rest.split("/", 1)[0]), rest
        if kind == "gs":
            return _gcs(), rest
        return _from_uri(f"{kind}://{rest}")
    except (OSError, ValueError, ImportError) as exc:
        raise InputError(
            f"{uri}: its file system cannot be reached ({first_line(exc, 300)}); {_HOW[kind]}",
            file=uri,
        ) from exc


_HOW: Final = {
    "s3": "check the credentials (AWS_* variables, an instance profile, or the session's "
    "fs.s3a.* settings) and the endpoint",
    "gs": "check the Google credentials (GOOGLE_APPLICATION_CREDENTIALS)",
    "abfs": "check the Azure credentials (AZURE_* variables or a managed identity)",
    "abfss": "check the Azure credentials (AZURE_* variables or a managed identity)",
    "hdfs": "hdfs:// is read through libhdfs: set JAVA_HOME, ARROW_LIBHDFS_DIR and "
    "CLASSPATH=$(hadoop classpath --glob) on the driver and every executor",
}


@lru_cache(maxsize=64)
def _s3(store: Store, bucket: str) -> pafs.FileSystem:
    """S3 as ``store`` says; on AWS with no region given, the bucket's own (looked up
    once), as S3A finds it."""
    import pyarrow.fs as pafs  # noqa: PLC0415 - only URIs need it

    options = dict(store.s3)
    if "region" not in options and "endpoint_override" not in options:
        options["region"] = pafs.resolve_s3_region(bucket)
    return pafs.S3FileSystem(**options)


#: How long GCS retries a request that fails (its client's own default: 15 minutes, a
#: run that seems to hang without credentials or network); about twice this in all.
GCS_RETRY_SECONDS: Final = 15


@lru_cache(maxsize=1)
def _gcs() -> pafs.FileSystem:
    from datetime import timedelta  # noqa: PLC0415

    import pyarrow.fs as pafs  # noqa: PLC0415

    return pafs.GcsFileSystem(retry_time_limit=timedelta(seconds=GCS_RETRY_SECONDS))


@lru_cache(maxsize=16)
def _from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    import pyarrow.fs as pafs  # noqa: PLC0415

    return cast("tuple[pafs.FileSystem, str]", pafs.FileSystem.from_uri(uri))


def list_uri(raw: str, store: Store | None) -> list[tuple[str, int]]:
    """The files (URI, size) ``raw`` names: an object, every object under a prefix (a
    "directory"), or those a glob in its last parts matches; in the order a local walk
    takes them (a directory's files in name order, then its subdirectories')."""
    scheme = uri_scheme(raw) or ""
    fs, path = filesystem(raw, store)
    import pyarrow.fs as pafs  # noqa: PLC0415
    from pyarrow import ArrowException  # noqa: PLC0415

    pattern = None
    if set("*?[") & set(path) and not _there(fs, path):  # as a local path: a name first
        literal = re.split(r"[*?\[]", path, maxsplit=1)[0].rsplit("/", 1)[0]
        pattern, path = path, literal
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File and pattern is None:
            return [(raw, info.size)]
        if info.type != pafs.FileType.Directory:
            what = "the pattern matches no object" if pattern else "no such object or prefix"
            raise InputError(f"{raw}: {what}; check the URI", file=raw)
        found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except (OSError, ArrowException) as exc:  # ArrowException: Azure's credential failures
        raise InputError(
            f"{raw}: cannot be listed ({first_line(exc, 300)}); {_HOW[SCHEMES[scheme]]}", file=raw
        ) from exc
    files = [(entry.path, entry.size) for entry in found if entry.type == pafs.FileType.File]
    if pattern is None:
        files.sort(key=lambda found: _walk_order(found[0]))
        return [(uri_of(raw, key), size) for key, size in files]
    # as a local glob: its matches in name order, a "directory" matched walked
    parts = pattern.split("/")
    order: dict[str, tuple[str, list[tuple[int, str]]]] = {}
    for key, _ in files:
        whole = key.split("/")
        matched = _glob_prefix(whole, parts)
        if matched is not None:
            order[key] = ("/".join(whole[:matched]), _walk_order("/".join(whole[matched:])))
    if not order:
        raise InputError(f"{raw}: the pattern matches no object; check the pattern", file=raw)
    files = sorted((found for found in files if found[0] in order), key=lambda f: order[f[0]])
    return [(uri_of(raw, key), size) for key, size in files]


def _there(fs: pafs.FileSystem, path: str) -> bool:
    """Whether an object or prefix is named ``path`` (a key may hold ``*?[``)."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.fs as pafs  # noqa: PLC0415

    try:
        return bool(fs.get_file_info(path).type != pafs.FileType.NotFound)
    except (OSError, pa.ArrowException):  # not a name S3 takes (a bucket named b*): a pattern
        return False


def _glob_prefix(parts: list[str], pattern: list[str]) -> int | None:
    """How many of a key's ``parts`` a glob's ``pattern`` parts match, as a local glob
    matches a path (None if it does not): part by part, ``*`` never across a ``/``,
    names starting with ``.`` only by a part that does, ``**`` any number of parts
    (none starting with ``.``). A match shorter than the key is a directory: all below
    it is read."""
    if not pattern:
        return 0
    if not parts:
        return None
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        if not rest:
            return 0
        for skipped in range(len(parts)):
            matched = _glob_prefix(parts[skipped:], rest)
            if matched is not None:
                return skipped + matched
            if parts[skipped].startswith("."):
                return None
        return None
    if parts[0].startswith(".") and not head.startswith("."):
        return None
    if not fnmatch.fnmatchcase(parts[0], head):
        return None
    matched = _glob_prefix(parts[1:], rest)
    return None if matched is None else matched + 1


def uri_of(raw: str, path: str) -> str:
    """The URI of ``path`` (as the file system of ``raw``, a URI, names it): in the
    same scheme and authority as ``raw``. Azure's container is the path's first part,
    and the URI's user (``abfss://container@account.dfs.core.windows.net/...``)."""
    scheme, _, rest = raw.partition("://")
    authority = rest.split("/", 1)[0]
    if SCHEMES.get(scheme.lower(), "").startswith("abfs") and "@" in authority:
        path = path.split("/", 1)[1] if "/" in path else ""
        return f"{scheme}://{authority}/{path}"
    if SCHEMES.get(scheme.lower()) == "hdfs":
        return f"{scheme}://{authority}/{path.lstrip('/')}"
    return f"{scheme}://{path}"


def _walk_order(key: str) -> list[tuple[int, str]]:
    """A key's place in a local walk's order: in each directory, files before
    subdirectories, each in name order."""
    *directories, name = key.split("/")
    return [*((1, part) for part in directories), (0, name)]


def open_uri(uri: str, store: Store | None) -> BinaryIO:
    """``uri`` opened for reading, with seeking (a random-access file)."""
    fs, path = filesystem(uri, store)
    return cast(BinaryIO, fs.open_input_file(path))


@contextmanager
def staged(file: InputFile, scratch: Scratch) -> Iterator[InputFile]:
    """``file`` as a copy in ``scratch`` (charged to its budget as it is written,
    removed on exit), for the readers to read as any local file (named by its URI still);
    a local file as it is."""
    if file.uri is None:
        yield file
        return
    fs, path = filesystem(file.uri, file.store)
    copy = scratch.path(f"remote-{next(_COPIES)}")  # not the key's name: any text may be one
    try:
        with (
            scratch_errors(scratch),
            fs.open_input_stream(path, compression=None) as source,
            copy.open("wb") as out,
        ):
            while block := source.read(tuning.BLOCK):
                out.write(block)
                scratch.charge(copy, len(block))
        yield replace(file, path=copy, uri=None, store=None)
    finally:
        scratch.release(copy)
