"""The ``egress-offline`` command: parses options, builds the hunt, calls the library,
writes the result. The only package that imports typer or prints."""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, Final, Literal, NoReturn

import typer
from polars.exceptions import PanicException

from egress_offline import __version__
from egress_offline.cli.checks import check_not_an_input, check_outputs, names_input
from egress_offline.cli.engines import EngineName, SparkMaster, engine_runner
from egress_offline.cli.options import (
    CsvTimezone,
    ExcelSafe,
    ExcludeCidr,
    ExcludeCidrFile,
    Format,
    Html,
    OsFamily,
    Output,
    Paths,
    Quiet,
    Report,
    ScratchLimit,
    Strict,
    Threshold,
)
from egress_offline.cli.progress import ProgressDisplay
from egress_offline.cli.stopping import (
    Terminated,
    begin,
    on_signal,
    stopped,
    written_before,
    wrote,
)
from egress_offline.cli.written import output_record, require_html, write_html
from egress_offline.engine import run_hunt
from egress_offline.errors import EgressError, OutputError, UsageError
from egress_offline.outputs import write_output, write_stream
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
from egress_offline.writers import PIVOT_FORMATS, format_for, inert, render, render_pivot

__all__ = ["app", "run"]

#: how Polars words an OS error it raises as an ``OSError`` without ``errno``
_RUST_OS_ERROR: Final = re.compile(r"\(os error (\d+)\)")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold evidence
    help="Elastic's threat hunt 'Egress Network Connections with Total Bytes Greater than "
    "Threshold' over exported endpoint logs, offline.",
)


def _fail(message: str, code: int) -> NoReturn:
    # inert: a message names files and objects, whose names an attacker may have chosen
    sys.stderr.write(f"Error: {inert(message)}\n")
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


@dataclass(frozen=True)
class _Delivery:
    """Where and how a command's result goes."""

    paths: list[str]
    output: Path | None
    fmt: str | None
    report: Path | None
    excel_safe: bool
    quiet: bool
    scratch_limit: str | None = None
    html: Path | None = None
    engine: str = "local"
    spark_master: str | None = None
    #: other files the run reads (a CIDR file): never an output
    read: tuple[Path, ...] = ()


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
    csv_timezone: CsvTimezone = "UTC",
    output: Output = None,
    fmt: Format = None,
    report: Report = None,
    html: Html = None,
    strict: Strict = False,
    excel_safe: ExcelSafe = False,
    quiet: Quiet = False,
    scratch_limit: ScratchLimit = None,
    engine: EngineName = "local",
    spark_master: SparkMaster = None,
) -> None:
    """Flag processes that sent at least --threshold bytes to one public destination."""
    delivery = _Delivery(
        paths, output, fmt, report, excel_safe, quiet, scratch_limit, html, engine, spark_master,
        read=() if exclude_cidr_file is None else (exclude_cidr_file,),
    )  # fmt: skip

    def build() -> HuntSpec:
        families, extra = _filters(os_family, exclude_cidr, exclude_cidr_file)
        return HuntSpec(
            now=parse_now(now),
            window=None if all_time else parse_duration(window),
            os_families=families,
            threshold=parse_size(threshold),
            threshold_given=threshold,
            extra_cidrs=extra,
            strict=strict,
            csv_timezone=csv_timezone,
        )

    _run(delivery, build, run_hunt, summary_lines, report_json, command="hunt")


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
    csv_timezone: CsvTimezone = "UTC",
    output: Output = None,
    fmt: Format = None,
    report: Report = None,
    html: Html = None,
    strict: Strict = False,
    excel_safe: ExcelSafe = False,
    quiet: Quiet = False,
    scratch_limit: ScratchLimit = None,
    engine: EngineName = "local",
    spark_master: SparkMaster = None,
) -> None:
    """Flag every process that sent at least --threshold bytes to one public destination
    within any --window, over the whole dump (a true sliding window)."""
    delivery = _Delivery(
        paths, output, fmt, report, excel_safe, quiet, scratch_limit, html, engine, spark_master,
        read=() if exclude_cidr_file is None else (exclude_cidr_file,),
    )  # fmt: skip

    def build() -> SweepSpec:
        families, extra = _filters(os_family, exclude_cidr, exclude_cidr_file)
        return SweepSpec(
            window=parse_duration(window),
            since=None if since is None else parse_time(since, "--since"),
            until=None if until is None else parse_time(until, "--until"),
            os_families=families,
            threshold=parse_size(threshold),
            threshold_given=threshold,
            extra_cidrs=extra,
            strict=strict,
            csv_timezone=csv_timezone,
        )

    _run(delivery, build, run_sweep, sweep_summary_lines, sweep_report_json, command="sweep")


@app.command()
def pivot(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="ENTITY_ID|PATH",
            help="process.entity_id values and export files, directories, globs or -: "
            "an argument naming an existing file or directory is a path; one that names "
            "nothing but is shaped like a path (an export's extension, a glob, \\, a / "
            "first or last) is an error; any other is an id.",
            show_default=False,
        ),
    ],
    *,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the result here: a file is replaced atomically, a device or FIFO "
            "written through; default stdout.",
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
    html: Html = None,
    csv_timezone: CsvTimezone = "UTC",
    strict: Strict = False,
    quiet: Quiet = False,
    scratch_limit: ScratchLimit = None,
) -> None:
    """Everything the export holds about processes: start event, parent, children,
    network per destination, and queries to continue on a cluster."""
    with _user_errors():
        require_html(html)
        ids, paths = split_arguments(arguments, names_input)
        targets = check_outputs({"--output": output, "--html": html}, paths)
        out_format = format_for(
            output, fmt, terminal=sys.stdout.isatty(), formats=PIVOT_FORMATS, piped="json",
            extensions=".txt, .json or .ndjson", command="pivot",
            written_through="--output" in targets and targets["--output"].through,
        )  # fmt: skip
        display = ProgressDisplay(enabled=not quiet and sys.stderr.isatty())
        try:
            result = run_pivot(
                ids, paths, strict=strict, csv_timezone=csv_timezone, progress=display,
                scratch_limit=_scratch_limit(scratch_limit), hash_inputs=html is not None,
            )  # fmt: skip
        finally:
            display.close()
        check_not_an_input(output, result.files)
        check_not_an_input(html, result.files)
        payload = result.as_dict()
        _deliver(output, "--output", lambda sink: render_pivot(payload, out_format, sink))
        wrote("--output", output)
        if html is not None:
            written = [output_record("--output", output)] if output is not None else []
            write_html(html, "pivot", result, version=__version__, outputs=written)
            wrote("--html", html)
        if not quiet:
            sys.stderr.write("\n".join(pivot_summary_lines(result)) + "\n")


def _run(delivery: _Delivery, build: Callable[[], Any], runner: Callable[..., Any],
         summary: Callable[[Any], list[str]], report_of: Callable[..., bytes], *,
         command: Literal["hunt", "sweep"]) -> None:  # fmt: skip
    """Build the spec, run, write the rows, the HTML page, the report (last: it holds the
    others' SHA-256) and the summary; map every error a user can cause to one line and an
    exit code."""
    with _user_errors():
        spec = build()
        limit = _scratch_limit(delivery.scratch_limit)
        require_html(delivery.html)
        runner = engine_runner(delivery.engine, delivery.spark_master, command, runner)
        outputs = {
            "--output": delivery.output,
            "--report": delivery.report,
            "--html": delivery.html,
        }
        targets = check_outputs(outputs, delivery.paths, delivery.read)
        out_format = format_for(
            delivery.output, delivery.fmt, terminal=sys.stdout.isatty(),
            written_through="--output" in targets and targets["--output"].through,
        )  # fmt: skip
        if out_format == "parquet" and delivery.output is None and sys.stdout.isatty():
            raise UsageError("--format parquet: will not write binary to a terminal; add -o FILE")
        display = ProgressDisplay(enabled=not delivery.quiet and sys.stderr.isatty())
        try:
            result = runner(
                delivery.paths, spec,
                hash_inputs=delivery.report is not None or delivery.html is not None,
                progress=display, scratch_limit=limit, series=delivery.html is not None,
            )  # fmt: skip
        finally:
            display.close()
        for path in outputs.values():
            check_not_an_input(path, result.files)
        excel_safe = delivery.excel_safe
        _deliver(
            delivery.output,
            "--output",
            lambda sink: render(result.rows, out_format, sink, excel_safe=excel_safe),
        )
        wrote("--output", delivery.output)
        # each file's SHA-256 is recorded by what is written after it: the page lists
        # the rows' file, the report (written last) both
        written: list[dict[str, Any]] = []
        if delivery.output is not None and (delivery.html or delivery.report):
            written.append(output_record("--output", delivery.output))
        if delivery.html is not None:
            write_html(delivery.html, command, result, version=__version__, outputs=written)
            wrote("--html", delivery.html)
            written.append(output_record("--html", delivery.html))
        if delivery.report is not None:
            payload = report_of(result, version=__version__, outputs=written)
            write_output(
                delivery.report, lambda sink: _write_bytes(sink, payload), option="--report"
            )
            wrote("--report", delivery.report)
        if not delivery.quiet:
            sys.stderr.write("\n".join(summary(result)) + "\n")
        elif result.alerts:  # what can change the answer's meaning, even under --quiet
            sys.stderr.write("".join(f"warning: {inert(note)}\n" for note in result.alerts))


@contextmanager
def _user_errors() -> Iterator[None]:
    """Every error a user can cause, as one line on standard error and an exit code."""
    begin()  # a command's own record of what it wrote (tests run several in a process)
    try:
        yield
    except EgressError as exc:
        _fail(written_before(str(exc)) if isinstance(exc, OutputError) else str(exc),
              exc.exit_code)  # fmt: skip
    except KeyboardInterrupt:
        _fail(stopped("interrupted"), 130)
    except Terminated as exc:
        _fail(stopped(f"stopped by {exc.name}"), 128 + exc.signal)
    except MemoryError:
        _fail("the run needs more memory than there is; free memory, or split the input", 1)
    except PanicException as exc:  # a BaseException: Polars failed inside
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "a panic"
        _fail(f"Polars failed inside ({first}); please report this with the input's layout", 1)
    except BrokenPipeError:
        sys.stderr.close()
        raise typer.Exit(1) from None
    except OSError as exc:  # not an input's (InputError) nor an output's (OutputError)
        _fail(_os_failure(exc), 1)


def _scratch_limit(text: str | None) -> int | None:
    """``--scratch-limit``'s value in bytes, or None for the default."""
    return None if text is None else parse_size(text, "--scratch-limit")


def _os_failure(exc: OSError) -> str:
    """The message for an OS error met neither reading an input nor writing an output
    (those are InputError and OutputError): in the scratch directory, where a full disk
    can only be, or elsewhere."""
    scratch = tempfile.gettempdir()
    reason = exc.strerror or str(exc)
    code = exc.errno
    if code is None and (rust := _RUST_OS_ERROR.search(reason)):  # Polars' own OSError
        code = int(rust[1])
        reason = os.strerror(code)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"{scratch}: {reason} (the scratch directory, for temporary files); free space "
            "there, or set TMPDIR to a directory on a disk with room; nothing was written"
        )
    if exc.filename is None:
        return f"{reason}; nothing was written"
    name = os.fsdecode(exc.filename)
    if Path(os.path.realpath(name)).is_relative_to(os.path.realpath(scratch)):
        return (
            f"{name}: {reason} (in the scratch directory, for temporary files); check "
            f"{scratch}, or set TMPDIR to another directory; nothing was written"
        )
    return f"{name}: {reason}; nothing was written"


def _deliver(output: Path | None, option: str, write: Callable[[IO[bytes]], None]) -> None:
    """A result to ``output``, or to standard output when there is none."""
    if output is None:
        write_stream(sys.stdout.buffer, write)
    else:
        write_output(output, write, option=option)


def _filters(
    os_family: list[str] | None, exclude_cidr: list[str] | None, exclude_cidr_file: Path | None
) -> tuple[tuple[str, ...] | None, tuple[CidrBlock, ...]]:
    families = tuple(os_family or ["windows"])
    extra = tuple(parse_cidr(text) for text in exclude_cidr or [])
    if exclude_cidr_file is not None:
        extra += read_cidr_file(exclude_cidr_file)
    return (None if "any" in families else families), extra


def _write_bytes(sink: IO[bytes], payload: bytes) -> None:
    sink.write(payload)


def run() -> None:
    """Console-script entry point. Once the run is over and its output flushed, the
    process ends at once: interpreter teardown (threads, modules) would only add time."""
    code: int | str | None = 0
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, on_signal)
    try:
        app()
    except SystemExit as done:
        code = done.code
    except KeyboardInterrupt:  # a second Ctrl-C, while the first was being answered
        code = 130
    except Terminated as exc:  # the same of SIGTERM or SIGHUP
        code = 128 + exc.signal
    # the run is over: a signal now would only turn its exit code into a traceback
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        code = code or 1
    if isinstance(code, str):  # a message instead of a code, as SystemExit allows
        print(code, file=sys.stderr)
        code = 1
    os._exit(code or 0)
