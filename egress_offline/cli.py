"""The ``egress-offline`` command: parses options, builds the hunt, calls the library,
writes the result. The only module that imports typer or prints."""

from __future__ import annotations

import glob
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn

import typer

from egress_offline import __version__
from egress_offline.engine import run_hunt
from egress_offline.errors import EgressError, UsageError
from egress_offline.pivot import run_pivot, split_arguments
from egress_offline.ranges import CidrBlock, parse_cidr
from egress_offline.report import (
    pivot_summary_lines,
    report_json,
    summary_lines,
    sweep_report_json,
    sweep_summary_lines,
)
from egress_offline.spec import (
    HuntSpec,
    SweepSpec,
    parse_duration,
    parse_now,
    parse_size,
    parse_time,
    read_cidr_file,
)
from egress_offline.sweep import run_sweep
from egress_offline.writers import (
    PIVOT_FORMATS,
    format_for,
    inert,
    render,
    render_pivot,
    write_atomic,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold evidence
    help="Elastic's threat hunt 'Egress Network Connections with Total Bytes Greater than "
    "Threshold' over exported endpoint logs, offline.",
)


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"Error: {message}\n")
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"egress-offline {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Offline threat hunting over Elastic Endpoint exports."""


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
        help="Write the rows here (atomically); default stdout.",
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


@dataclass(frozen=True)
class _Delivery:
    """Where and how a command's result goes."""

    paths: list[str]
    output: Path | None
    fmt: str | None
    report: Path | None
    excel_safe: bool
    quiet: bool


@app.command()
def hunt(
    paths: Paths,
    *,
    now: Annotated[
        str,
        typer.Option(
            metavar="latest|wall|TIME",
            help="Reference time of the window: 'latest' (newest @timestamp in the input), "
            "'wall' (the clock, as ES|QL now()) or an ISO-8601 time.",
        ),
    ] = "latest",
    window: Annotated[
        str,
        typer.Option(
            metavar="DURATION", help="Look-back from --now: s, m, h, d, e.g. 8h, 1h30m, 2d."
        ),
    ] = "8h",
    all_time: Annotated[bool, typer.Option("--all-time", help="No time filter.")] = False,
    os_family: OsFamily = None,
    threshold: Threshold = "1073741824",
    exclude_cidr: ExcludeCidr = None,
    exclude_cidr_file: ExcludeCidrFile = None,
    output: Output = None,
    fmt: Format = None,
    report: Report = None,
    strict: Strict = False,
    excel_safe: ExcelSafe = False,
    quiet: Quiet = False,
) -> None:
    """Flag processes that sent at least --threshold bytes to one public destination."""
    delivery = _Delivery(paths, output, fmt, report, excel_safe, quiet)

    def build() -> HuntSpec:
        families, extra = _filters(os_family, exclude_cidr, exclude_cidr_file)
        return HuntSpec(
            now=parse_now(now),
            window=None if all_time else parse_duration(window),
            os_families=families,
            threshold=parse_size(threshold),
            extra_cidrs=extra,
            strict=strict,
        )

    _run(delivery, build, run_hunt, summary_lines, report_json)


@app.command()
def sweep(
    paths: Paths,
    *,
    window: Annotated[
        str,
        typer.Option(
            metavar="DURATION",
            help="The sliding window in which a group's bytes are summed: s, m, h, d.",
        ),
    ] = "8h",
    since: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help="Sweep events at or after this ISO-8601 time only.",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help="Sweep events before this ISO-8601 time only.",
            show_default=False,
        ),
    ] = None,
    os_family: OsFamily = None,
    threshold: Threshold = "1073741824",
    exclude_cidr: ExcludeCidr = None,
    exclude_cidr_file: ExcludeCidrFile = None,
    output: Output = None,
    fmt: Format = None,
    report: Report = None,
    strict: Strict = False,
    excel_safe: ExcelSafe = False,
    quiet: Quiet = False,
) -> None:
    """Flag every process that sent at least --threshold bytes to one public destination
    within any --window, over the whole dump (a true sliding window)."""
    delivery = _Delivery(paths, output, fmt, report, excel_safe, quiet)

    def build() -> SweepSpec:
        families, extra = _filters(os_family, exclude_cidr, exclude_cidr_file)
        return SweepSpec(
            window=parse_duration(window),
            since=None if since is None else parse_time(since, "--since"),
            until=None if until is None else parse_time(until, "--until"),
            os_families=families,
            threshold=parse_size(threshold),
            extra_cidrs=extra,
            strict=strict,
        )

    _run(delivery, build, run_sweep, sweep_summary_lines, sweep_report_json)


@app.command()
def pivot(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="ENTITY_ID|PATH",
            help="process.entity_id values and export files, directories, globs or -: "
            "an argument naming an existing file or directory is a path, any other an id.",
            show_default=False,
        ),
    ],
    *,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the result here (atomically); default stdout.",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="table, json or ndjson (one line per entity id); default from the "
            "output's extension, else table on a terminal and json when piped.",
            show_default=False,
        ),
    ] = None,
    strict: Strict = False,
    quiet: Quiet = False,
) -> None:
    """Everything the export holds about processes: start event, parent, children,
    network per destination, and queries to continue on a cluster."""
    with _user_errors():
        ids, paths = split_arguments(arguments, _names_input)
        out_format = format_for(
            output, fmt, terminal=sys.stdout.isatty(), formats=PIVOT_FORMATS, piped="json",
            extensions=".txt, .json or .ndjson", command="pivot",
        )  # fmt: skip
        _check_outside_inputs(output, paths)
        display = _ProgressDisplay(enabled=not quiet and sys.stderr.isatty())
        try:
            result = run_pivot(ids, paths, strict=strict, progress=display)
        finally:
            display.close()
        _check_not_an_input(output, result.files)
        payload = result.as_dict()
        if output is None:
            render_pivot(payload, out_format, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            write_atomic(output, lambda sink: render_pivot(payload, out_format, sink))
        if not quiet:
            sys.stderr.write("\n".join(pivot_summary_lines(result)) + "\n")


def _names_input(argument: str) -> bool:
    """Does ``argument`` name an input: an existing path, or a glob that matches one."""
    if Path(argument).exists():
        return True
    return bool(set("*?[") & set(argument)) and bool(glob.glob(argument, recursive=True))


def _run(delivery: _Delivery, build: Callable[[], Any], runner: Callable[..., Any],
         summary: Callable[[Any], list[str]],
         report_of: Callable[..., bytes]) -> None:  # fmt: skip
    """Build the spec, run, write the rows, the report and the summary; map every error a
    user can cause to one line and an exit code."""
    with _user_errors():
        spec = build()
        out_format = format_for(delivery.output, delivery.fmt, terminal=sys.stdout.isatty())
        if out_format == "parquet" and delivery.output is None and sys.stdout.isatty():
            raise UsageError("--format parquet: will not write binary to a terminal; add -o FILE")
        for target in (delivery.output, delivery.report):
            _check_outside_inputs(target, delivery.paths)
        display = _ProgressDisplay(enabled=not delivery.quiet and sys.stderr.isatty())
        try:
            result = runner(
                delivery.paths, spec, hash_inputs=delivery.report is not None, progress=display
            )
        finally:
            display.close()
        _check_not_an_input(delivery.output, result.files)
        _check_not_an_input(delivery.report, result.files)
        excel_safe = delivery.excel_safe
        if delivery.output is None:
            render(result.rows, out_format, sys.stdout.buffer, excel_safe=excel_safe)
            sys.stdout.buffer.flush()
        else:
            write_atomic(
                delivery.output,
                lambda sink: render(result.rows, out_format, sink, excel_safe=excel_safe),
            )
        if delivery.report is not None:
            payload = report_of(result, version=__version__)
            write_atomic(delivery.report, lambda sink: _write_bytes(sink, payload))
        if not delivery.quiet:
            sys.stderr.write("\n".join(summary(result)) + "\n")


@contextmanager
def _user_errors() -> Iterator[None]:
    """Every error a user can cause, as one line on standard error and an exit code."""
    try:
        yield
    except EgressError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted; no output file was written", 130)
    except BrokenPipeError:
        sys.stderr.close()
        raise typer.Exit(1) from None
    except OSError as exc:
        _fail(f"{exc.filename or 'output'}: {exc.strerror}; nothing was written", 1)


def _filters(
    os_family: list[str] | None, exclude_cidr: list[str] | None, exclude_cidr_file: Path | None
) -> tuple[tuple[str, ...] | None, tuple[CidrBlock, ...]]:
    families = tuple(os_family or ["windows"])
    extra = tuple(parse_cidr(text) for text in exclude_cidr or [])
    if exclude_cidr_file is not None:
        extra += read_cidr_file(exclude_cidr_file)
    return (None if "any" in families else families), extra


def _check_outside_inputs(target: Path | None, paths: list[str]) -> None:
    """Before reading: an output file is never an input, nor inside an input directory
    (the evidence is never written to)."""
    if target is None:
        return
    resolved = target.resolve()
    for raw in paths:
        given = Path(raw)
        if raw == "-" or not given.exists():
            continue
        place = given.resolve()
        if place == resolved:
            raise UsageError(
                f"{target}: is one of the inputs; write the result to another file "
                "(evidence is never modified)"
            )
        if given.is_dir() and resolved.is_relative_to(place):
            raise UsageError(
                f"{target}: is inside the input directory {raw}; write the result outside "
                "it (input directories are never written to)"
            )


def _check_not_an_input(target: Path | None, files: list) -> None:  # type: ignore[type-arg]
    if target is None:
        return
    resolved = target.resolve()
    for file in files:
        if file.name != "<stdin>" and Path(file.name).resolve() == resolved:
            raise UsageError(
                f"{target}: is one of the inputs; write the result to another file "
                "(evidence is never modified)"
            )


class _ProgressDisplay:
    """Bytes read of each file, on standard error, once a run has taken two seconds. One
    line whatever the terminal's width: the bar, the bytes and the time keep their room,
    and a long file name gives up its start (the name's end tells files apart)."""

    _DELAY = 2.0
    _OTHERS = 26  # "12.3/45.6 GB", "0:00:01" and the gaps between the columns

    def __init__(self, *, enabled: bool, console: Any = None) -> None:
        self._enabled = enabled
        self._console = console  # standard error, unless given (tests)
        self._started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        self._file: int | None = None  # the number of the file shown; 0 is the sampling
        self._width = 20  # the bar's

    def __call__(self, name: str, number: int, files: int, fraction: float, size: int) -> None:
        if not self._enabled or time.monotonic() - self._started < self._DELAY:
            return
        if self._bar is None:
            self._bar = self._start()
        if number != self._file:
            if self._task is not None:
                self._bar.remove_task(self._task)
            counter = "" if number == 0 else f"[{number}/{files}] "
            room = max(12, self._bar.console.width - self._width - self._OTHERS - len(counter))
            # a file's name gives up its start; the sampling's own label, its end
            label = shortened(inert(name), room) if number else name[:room]
            self._task = self._bar.add_task(counter + label, total=size)
            self._file = number
        self._bar.update(self._task, completed=int(fraction * size))

    def _start(self) -> Any:
        from rich.console import Console  # noqa: PLC0415 - only when shown
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.table import Column  # noqa: PLC0415

        def one_line() -> Any:
            return Column(no_wrap=True, overflow="ellipsis")

        console = self._console or Console(stderr=True)
        # a bar of 20 columns, narrower on a narrow terminal: the file's name keeps 30
        self._width = max(6, min(20, console.width - self._OTHERS - 30))
        bar = Progress(
            TextColumn("{task.description}", markup=False, table_column=one_line()),  # data
            BarColumn(bar_width=self._width),
            DownloadColumn(table_column=one_line()),
            TimeElapsedColumn(table_column=one_line()),
            console=console,
            transient=True,
        )
        bar.start()
        return bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def shortened(label: str, room: int) -> str:
    """``label`` in at most ``room`` characters: its start gives way to an ellipsis."""
    return label if len(label) <= room else "\u2026" + label[len(label) - room + 1 :]


def _write_bytes(sink: IO[bytes], payload: bytes) -> None:
    sink.write(payload)


def run() -> None:
    """Console-script entry point. Once the run is over and its output flushed, the
    process ends at once: interpreter teardown (threads, modules) would only add time."""
    code: int | str | None = 0
    try:
        app()
    except SystemExit as done:
        code = done.code
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        code = code or 1
    if isinstance(code, str):  # a message instead of a code, as SystemExit allows
        print(code, file=sys.stderr)
        code = 1
    os._exit(code or 0)


if __name__ == "__main__":
    run()
