"""The README documents every option, the two set-up commands, and the exit codes; the
reference in docs/ is linked from it, and its links resolve."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from egress_offline.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}


def test_every_option_of_hunt_is_documented() -> None:
    text = CliRunner().invoke(app, ["hunt", "--help"], env={"COLUMNS": "200"}).stdout
    options = set(re.findall(r"(--[a-z][a-z-]+)", text)) - {"--help"}
    assert len(options) >= 12
    missing = sorted(o for o in options if f"`{o}" not in README and f" {o}" not in README)
    assert not missing, f"undocumented options: {missing}"


def test_the_help_s_install_hints_keep_their_extras() -> None:
    """An extra's brackets are text, not Rich markup: "pip install 'egress-offline'"
    would install neither plotly nor PySpark."""
    for command in ("hunt", "sweep", "pivot"):
        text = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).stdout
        assert "'egress-offline[html]'" in text, command
        assert "'egress-offline'" not in text, command
    text = CliRunner().invoke(app, ["hunt", "--help"], env={"COLUMNS": "200"}).stdout
    assert "'egress-offline[spark]'" in text


def test_two_setup_commands_at_the_top_and_ci_runs_the_second() -> None:
    block = README.split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2
    assert "egress-offline hunt sample_data/" in block[0]
    assert "pytest" in block[1]
    assert block[1] in (ROOT / ".ci" / "run").read_text()


def test_exit_codes_and_report_fields_are_documented() -> None:
    for needle in ("| 0 |", "| 1 |", "| 2 |"):
        assert needle in README
    for needle in (
        "`sha256`",
        "`after_public_destination`",
        "`data_time_range`",
        "`excluded_cidrs`",
    ):
        assert needle in DOCS["report.md"]


def test_every_reference_page_is_linked_from_the_readme_and_every_link_resolves() -> None:
    for name in DOCS:
        assert f"](docs/{name}" in README, f"docs/{name} is not linked from the README"
    pages = {ROOT / "README.md": README, **{ROOT / "docs" / n: t for n, t in DOCS.items()}}
    for page, text in pages.items():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_every_option_of_sweep_is_documented() -> None:
    text = CliRunner().invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"}).stdout
    options = set(re.findall(r"(--[a-z][a-z-]+)", text)) - {"--help"}
    assert {"--window", "--since", "--until"} <= options
    sweep_section = README.split("### Sweep", 1)[1].split("### Library", 1)[0]
    missing = sorted(
        o for o in options if f"`{o}" not in sweep_section and f" {o}" not in sweep_section
    )
    assert not missing, f"undocumented sweep options: {missing}"


def test_every_option_of_pivot_is_documented() -> None:
    text = CliRunner().invoke(app, ["pivot", "--help"], env={"COLUMNS": "200"}).stdout
    options = set(re.findall(r"(--[a-z][a-z-]+)", text)) - {"--help"}
    assert {"--output", "--format", "--strict", "--quiet"} <= options
    section = README.split("### Pivot", 1)[1].split("### Library", 1)[0]
    missing = sorted(o for o in options if f"`{o}" not in section and f" {o}" not in section)
    assert not missing, f"undocumented pivot options: {missing}"


def test_the_pivot_example_is_the_real_output() -> None:
    section = README.split("### Pivot", 1)[1].split("### Library", 1)[0]
    example = section.split("```text\n", 1)[1].split("```", 1)[0]
    command, shown = example.split("\n", 1)
    arguments = command.removeprefix("$ egress-offline ").split()
    arguments = [str(ROOT / a) if a == "sample_data/" else a for a in arguments]
    done = CliRunner().invoke(app, [*arguments, "--format", "table", "-q"])
    assert done.exit_code == 0
    assert done.stdout == shown


def test_the_table_examples_are_the_real_output() -> None:
    """docs/report.md's tables: the hunt on the sample data at 200 and 80 columns."""
    wide, narrow = _blocks(DOCS["report.md"], "## The table")[:2]
    for width, shown in ((200, wide), (80, narrow)):
        done = CliRunner().invoke(
            app,
            ["hunt", str(ROOT / "sample_data"), "-q", "--format", "table"],
            env={"COLUMNS": str(width)},
        )
        assert done.exit_code == 0
        real = done.stdout if width == 200 else done.stdout.split("\n\n")[0] + "\n"
        assert real == shown


def test_the_package_exports_match_their_homes() -> None:
    import egress_offline  # noqa: PLC0415

    assert sorted(egress_offline.__all__) == sorted([*egress_offline._HOMES, "__version__"])
    for name in egress_offline._HOMES:
        assert getattr(egress_offline, name).__name__ == name


def _blocks(text: str, after: str) -> list[str]:
    """The ```text blocks of ``text`` after the heading ``after``."""
    section = text.split(after, 1)[1]
    return [block.split("```", 1)[0] for block in section.split("```text\n")[1:]]


def test_the_readme_s_sample_output_and_summary_are_the_real_ones() -> None:
    """The first example's rows (ids shortened as the README says) and the summary that
    follows, except the time it took."""
    rows, summary = _blocks(README, "## Output on the sample data")[:2]
    command, shown = rows.split("\n", 1)
    arguments = command.removeprefix("$ egress-offline ").split()
    arguments = [str(ROOT / a) if a == "sample_data/" else a for a in arguments]
    done = CliRunner().invoke(app, arguments)
    assert done.exit_code == 0
    real = [
        re.sub(r",([A-Za-z0-9+/]{8})[A-Za-z0-9+/]+(NQ==),", r",\1…\2,", line)
        for line in done.stdout.splitlines()
    ]
    assert real == shown.splitlines()
    told = [line for line in done.stderr.splitlines() if not line.startswith("elapsed")]
    told = [line.replace(str(ROOT) + "/", "") for line in told]
    assert told == summary.splitlines()


def test_the_query_in_the_docs_is_the_seed_query() -> None:
    query = DOCS["semantics.md"].split("```sql\n", 1)[1].split("```", 1)[0]
    assert "from logs-endpoint.events.network-*" in query
    assert 'event.action == "disconnect_received"' in query
    assert "| where total_bytes_out >= 1073741824" in query
