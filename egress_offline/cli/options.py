"""The options that several commands share, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "CsvTimezone",
    "ExcelSafe",
    "ExcludeCidr",
    "ExcludeCidrFile",
    "Format",
    "Html",
    "OsFamily",
    "Output",
    "Paths",
    "Quiet",
    "Report",
    "ScratchLimit",
    "Strict",
    "Threshold",
]

# Options that hunt and sweep share, declared once.
Paths = Annotated[
    list[str],
    typer.Argument(
        metavar="PATH",
        help="Export files, directories (searched recursively), globs, or - for stdin. "
        "NDJSON (.gz/.zst too), a JSON array or _search response, or Parquet.",
        show_default=False,
    ),
]


OsFamily = Annotated[
    list[str] | None,
    typer.Option(
        help="host.os.family to keep (repeatable); 'any' removes the filter. Default: windows.",
        show_default=False,
        metavar="NAME",
    ),
]


Threshold = Annotated[
    str,
    typer.Option(
        metavar="SIZE",
        help="Flag groups at or above this: bytes, KB/MB/GB/TB or KiB/MiB/GiB/TiB.",
    ),
]


ExcludeCidr = Annotated[
    list[str] | None,
    typer.Option(
        help="Another non-public range to exclude (repeatable).",
        show_default=False,
        metavar="CIDR",
    ),
]


ExcludeCidrFile = Annotated[
    Path | None,
    typer.Option(
        help="File of ranges to exclude, one per line, # comments.",
        show_default=False,
        metavar="FILE",
    ),
]


Output = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write the rows here: a file is replaced atomically, a device or FIFO "
        "written through; default stdout.",
        show_default=False,
        metavar="FILE",
    ),
]


Format = Annotated[
    str | None,
    typer.Option(
        "--format",
        metavar="FORMAT",
        help="csv, ndjson, json, parquet or table; default from the "
        "output's extension, else table on a terminal and csv when piped.",
        show_default=False,
    ),
]


Report = Annotated[
    Path | None,
    typer.Option(
        help="Write a JSON run report: parameters, inputs with SHA-256, counts.",
        show_default=False,
        metavar="FILE",
    ),
]


Html = Annotated[
    Path | None,
    typer.Option(
        help="Write a self-contained HTML report (charts inlined, nothing fetched when "
        # "\\[": a bracket Rich's markup would take for a tag, and drop, is written as text
        "opened), as -o writes its file. Needs plotly: pip install 'egress-offline\\[html]'.",
        show_default=False,
        metavar="FILE",
    ),
]


Strict = Annotated[
    bool, typer.Option("--strict", help="Stop at the first malformed record (exit 1).")
]


ExcelSafe = Annotated[
    bool,
    typer.Option(
        "--excel-safe",
        help="CSV: prefix cells starting with = + - @ with a quote "
        "so spreadsheets do not run them as formulas.",
    ),
]


Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No summary and no progress bar on stderr.")
]
CsvTimezone = Annotated[
    str,
    typer.Option(
        metavar="ZONE",
        help="The time zone of a Kibana CSV export's dates, which carry none: an IANA name "
        "(Europe/Paris) or an offset (+02:00).",
    ),
]


ScratchLimit = Annotated[
    str | None,
    typer.Option(
        metavar="SIZE",
        help="Stop with an error before temporary files (in TMPDIR) pass this: bytes, "
        "KB/MB/GB or KiB/MiB/GiB. Default: the free space there less a tenth of the disk "
        "(at least 1 GiB).",
        show_default=False,
    ),
]
