"""``--html``: the page's content (numbers, evidence), hostile values shown as text,
nothing fetched; the CLI option and the report's record of the outputs."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from egress_offline import HuntSpec, SweepSpec, run_hunt, run_pivot, run_sweep
from egress_offline.cli import app
from egress_offline.html import hunt_html, pivot_html, script_json, sweep_html, text
from tests.helpers import GiB, event, ndjson

NOW = "2024-05-01T12:00:00Z"
HOSTILE = "</script><img src=x onerror=alert(1)>"
#: a value that would close the script element, open a comment, end a JavaScript line
#: (U+2028) and reverse the text after it (U+202E)
HOSTILE_HOST = "WKS<!--\u2028-\u2029x\u202eexe.txt"
SCRIPT = re.compile(r"<script([^>]*)>(.*?)</script>", re.S)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "export.ndjson"
    path.write_bytes(
        ndjson(
            [
                event(
                    **{
                        "source.bytes": 3 * GiB,
                        "process.executable": HOSTILE,
                        "host.name": HOSTILE_HOST,
                    }
                ),
                event(**{"process.entity_id": "E2", "source.bytes": GiB}),
                event(**{"process.entity_id": "small", "source.bytes": 10}),
            ]
        )
    )
    return path


def _hunt_page(export: Path) -> str:
    result = run_hunt(
        [str(export)],
        HuntSpec(now=datetime(2024, 5, 1, 12, tzinfo=UTC)),
        hash_inputs=True,
        series=True,
    )
    return hunt_html(result, version="9.9").decode("utf-8")


def _scripts(page: str) -> list[tuple[str, str]]:
    """(attributes, content) of every script element."""
    return SCRIPT.findall(page)


def _markup(page: str) -> str:
    """The page without the content of its script elements (plotly.js holds URLs in
    strings it never fetches, such as SVG's namespace)."""
    return SCRIPT.sub("<script></script>", page)


def test_a_hostile_executable_is_text_in_the_page_and_in_the_chart_data(export: Path) -> None:
    page = _hunt_page(export)
    assert HOSTILE not in page
    assert "<img" not in _markup(page)
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    scripts = _scripts(page)
    # plotly.js and the page's own script run; every other is JSON data, never run
    runnable = [content for attributes, content in scripts if "application/json" not in attributes]
    assert len(runnable) == 2
    data = [content for attributes, content in scripts if "application/json" in attributes]
    assert len(data) == 3  # the funnel and the two flagged groups
    for block in data:
        assert "<" not in block and ">" not in block
        assert "\u2028" not in block and "\u2029" not in block
        figure = json.loads(block)
        assert set(figure) >= {"data", "layout"}
    # the page's own markup holds no raw hostile character either
    assert "\u2028" not in page.replace(runnable[0], "")
    assert "\u202e" not in page.replace(runnable[0], "")
    assert "WKS&lt;!--\\u2028-\\u2029x\\u202eexe.txt" in page


@pytest.mark.parametrize("command", ["hunt", "sweep"])
def test_a_long_key_is_shown_shortened_and_named_by_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """A flagged group's key longer than a long text (64 KiB; lowered here) is shown by its
    start, its length and its SHA-256: whole, two 40 MiB executables made a page of 234
    MB (1.6 GB to write it), eight were killed past 3 GB. The rows themselves keep it."""
    from egress_offline.readers import tuning  # noqa: PLC0415

    monkeypatch.setattr(tuning, "LONG_TEXT", 2_000)
    long_exe = "C:\\" + "é" * 1_500 + "x" * 2_000  # 5,003 bytes, 3,503 characters
    path = tmp_path / "long.ndjson"
    path.write_bytes(
        ndjson([event(**{"process.executable": long_exe, "host.name": "h" * 3_000}),
                event(**{"process.entity_id": "E2"})])
    )  # fmt: skip
    when = datetime(2024, 5, 1, 12, tzinfo=UTC)
    if command == "hunt":
        result: Any = run_hunt([str(path)], HuntSpec(now=when), series=True)
        page = hunt_html(result, version="9.9").decode("utf-8")
    else:
        result = run_sweep([str(path)], SweepSpec(), series=True)
        page = sweep_html(result, version="9.9").decode("utf-8")
    assert sorted(result.rows.get_column("process.executable").to_list()) == sorted(
        [long_exe, "C:\\evil.exe"]
    )
    digest = hashlib.sha256(long_exe.encode()).hexdigest()
    shown = "C:\\" + "é" * 1_021 + f"... (shortened here: 5,003 bytes, sha256 {digest})"
    assert long_exe not in page
    assert page.count(text(shown)) == 2  # the rows' table and the group's heading
    assert "h" * 3_000 not in page
    assert "h" * 1_024 + "... (shortened here: 3,000 bytes" in page


def test_nothing_is_fetched_and_only_the_page_s_own_scripts_may_run(export: Path) -> None:
    page = _hunt_page(export)
    markup = _markup(page)
    assert "<link" not in markup
    assert not re.search(r"<script[^>]*\bsrc=", markup)
    tags = re.findall(r"<[a-zA-Z][^>]*>", markup)
    assert len(tags) > 100
    for tag in tags:
        for target in re.findall(r"\s(?:src|href|action)\s*=\s*[\"']?([^\"' >]+)", tag):
            assert target.startswith("#"), target  # in-page links only
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None
    assert "default-src 'none'" in policy[1]
    assert "unsafe-inline" not in policy[1].split("script-src", 1)[1].split(";", 1)[0]
    runnable = [c for a, c in _scripts(page) if "application/json" not in a]
    for content in runnable:
        digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy[1]
    assert "Plotly" in runnable[0] and "Plotly.newPlot" in runnable[1]


def test_the_page_holds_the_numbers_and_the_evidence(export: Path) -> None:
    page = _hunt_page(export)
    assert hashlib.sha256(export.read_bytes()).hexdigest() in page
    assert "3,221,225,472" in page  # the first group's total_bytes_out
    assert "1,073,741,824" in page
    assert "3.00 GiB" in page
    assert "2024-05-01T04:00:00.000Z" in page  # the window's start
    markup = _markup(page)
    for label, count in (("records read", 3), ("groups", 3), ("flagged (&gt;= 1.00 GiB)", 2)):
        assert re.search(
            rf"<td class=\"\">{re.escape(label)}</td><td class=\"n\">{count}</td>", markup
        ), label
    funnel = json.loads(next(c for a, c in _scripts(page) if 'id="figure-0"' in a))
    assert funnel["data"][0]["type"] == "funnel"
    assert funnel["data"][0]["x"] == [3, 3, 3, 3, 3, 3, 2]
    group = json.loads(next(c for a, c in _scripts(page) if 'id="figure-1"' in a))
    cumulative = next(t for t in group["data"] if t["name"] == "cumulative bytes")
    assert cumulative["y"] == [3 * GiB]
    assert cumulative["x"] == ["2024-05-01 11:00:00.000"]


def test_without_a_window_no_window_is_shaded_or_claimed(export: Path) -> None:
    result = run_hunt([str(export)], HuntSpec(window=None), series=True)
    page = hunt_html(result, version="9.9").decode("utf-8")
    assert "No window (--all-time): the cumulative sum counts every event of the group." in page
    assert '<td class="">any time (no window)</td><td class="n">3</td>' in page
    assert "shaded band" not in page
    group = json.loads(next(c for a, c in _scripts(page) if 'id="figure-1"' in a))
    # the threshold's line, and no window's rectangle
    assert [shape["type"] for shape in group["layout"]["shapes"]] == ["line"]


def test_the_page_says_why_nothing_was_flagged(export: Path) -> None:
    # a window two years after the data: the summary's diagnosis is on the page too
    result = run_hunt([str(export)], HuntSpec(now=datetime(2026, 5, 1, 12, tzinfo=UTC)))
    assert result.counts.flagged == 0
    told = [d.message for d in result.diagnoses]
    assert told and told[0].startswith("time window: the window (after 2026-05-01T04:00:00.000Z)")
    page = hunt_html(result, version="9.9").decode("utf-8")
    assert all(text(message) in page for message in told)


def test_script_json_cannot_end_its_element() -> None:
    value = {"a": "</script><!--\u2028\u2029&x", "b": [1, None]}
    block = script_json(value)
    for character in ("<", ">", "&", "\u2028", "\u2029"):
        assert character not in block
    assert json.loads(block) == value


def test_text_escapes_markup_and_shows_invisible_characters() -> None:
    assert text("<b>&'\"") == "&lt;b&gt;&amp;&#x27;&quot;"
    assert text("a\u202eb\x1b[2J") == "a\\u202eb\\x1b[2J"
    assert text(["x", "<y>"]) == "x, &lt;y&gt;"
    assert text(None) == ""


def test_sweep_page_marks_the_peak_window(export: Path) -> None:
    result = run_sweep([str(export)], SweepSpec(), hash_inputs=True, series=True)
    page = sweep_html(result, version="9.9").decode("utf-8")
    assert HOSTILE not in page
    assert "peak window" in page
    assert "&lt;/script&gt;" in page
    assert "2 flagged" in page


def test_pivot_page_holds_the_tree_and_the_timeline(tmp_path: Path) -> None:
    path = tmp_path / "export.ndjson"
    path.write_bytes(
        ndjson(
            [
                event(**{"destination.address": HOSTILE, "process.parent.entity_id": "P1"}),
                {
                    "@timestamp": "2024-05-01T10:00:00Z",
                    "event": {"category": ["process"], "type": ["start"], "action": "start"},
                    "process": {
                        "entity_id": "C1",
                        "parent": {"entity_id": "E1"},
                        "executable": HOSTILE,
                        "pid": 7,
                    },
                },
            ]
        )
    )
    result = run_pivot(["E1", "missing"], [str(path)], hash_inputs=True)
    page = pivot_html(result, version="9.9").decode("utf-8")
    assert HOSTILE not in page
    assert "<img" not in _markup(page)
    assert hashlib.sha256(path.read_bytes()).hexdigest() in page
    assert 'class="tree"' in page
    assert "No event of the export holds this id." in page
    assert "<th>not found</th><td>missing</td>" in page
    # the queries keep their lines (the terminal's escapes are for values, not our text)
    assert "<pre>FROM logs-endpoint.events.*\n| WHERE process.entity_id IN (" in page
    (timeline,) = [json.loads(c) for a, c in _scripts(page) if "application/json" in a]
    # plotly reads labels as HTML-like markup: the destination is given escaped
    assert timeline["data"][0]["y"] == ["1. &lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"]


# ------------------------------------------------------------------------------ the CLI


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_cli_writes_the_page_and_the_report_records_every_output(
    export: Path, tmp_path: Path
) -> None:
    page, rows, report = tmp_path / "r.html", tmp_path / "rows.csv", tmp_path / "run.json"
    before = datetime.now(UTC)
    result = invoke(
        "hunt",
        str(export),
        "--now",
        NOW,
        "--html",
        str(page),
        "-o",
        str(rows),
        "--report",
        str(report),
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    assert page.read_bytes().startswith(b"<!DOCTYPE html>")
    data = json.loads(report.read_text())
    started = datetime.fromisoformat(data["started"])
    assert data["started"].endswith("Z")
    assert before.replace(microsecond=0) <= started <= datetime.now(UTC)
    # the page, written after the rows, lists them with their digest
    rows_digest = hashlib.sha256(rows.read_bytes()).hexdigest()
    size = rows.stat().st_size
    assert (
        f'<tr><td class="">--output</td><td class="mono">{rows}</td><td class="n">{size}<br>'
        f'<span class=note>{size} B</span></td><td class="mono">{rows_digest}</td></tr>'
    ) in page.read_text()
    assert data["outputs"] == [
        {
            "option": "--output",
            "path": str(rows),
            "written_through": False,
            "size_bytes": rows.stat().st_size,
            "sha256": hashlib.sha256(rows.read_bytes()).hexdigest(),
        },
        {
            "option": "--html",
            "path": str(page),
            "written_through": False,
            "size_bytes": page.stat().st_size,
            "sha256": hashlib.sha256(page.read_bytes()).hexdigest(),
        },
    ]


def test_html_alone_hashes_the_inputs_too(export: Path, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    assert invoke("sweep", str(export), "--html", str(page), "-q").exit_code == 0
    assert hashlib.sha256(export.read_bytes()).hexdigest() in page.read_text()


def test_pivot_html(export: Path, tmp_path: Path) -> None:
    page, rows = tmp_path / "p.html", tmp_path / "p.json"
    result = invoke("pivot", "E1", str(export), "--html", str(page), "-q")
    assert result.exit_code == 0, result.stderr
    assert "Process tree" in page.read_text()
    assert "<h3>Files written before this page</h3><p class=note>None.</p>" in page.read_text()
    result = invoke("pivot", "E1", str(export), "--html", str(page), "-o", str(rows), "-q")
    assert result.exit_code == 0, result.stderr
    assert json.loads(rows.read_text())["entities"][0]["found"] is True
    assert hashlib.sha256(rows.read_bytes()).hexdigest() in page.read_text()


def test_an_output_written_through_has_no_digest(export: Path, tmp_path: Path) -> None:
    report = tmp_path / "run.json"
    result = invoke(
        "hunt", str(export), "--now", NOW, "-o", "/dev/null", "--report", str(report), "-q"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(report.read_text())["outputs"] == [
        {
            "option": "--output",
            "path": "/dev/null",
            "written_through": True,
            "size_bytes": None,
            "sha256": None,
        }
    ]


def test_report_without_other_outputs_lists_none(export: Path, tmp_path: Path) -> None:
    report = tmp_path / "run.json"
    assert invoke("hunt", str(export), "--now", NOW, "--report", str(report), "-q").exit_code == 0
    assert json.loads(report.read_text())["outputs"] == []


@pytest.mark.parametrize("command", ["hunt", "sweep"])
def test_html_and_another_output_may_not_be_one_file(
    command: str, export: Path, tmp_path: Path
) -> None:
    same = tmp_path / "same.html"
    result = invoke(command, str(export), "--html", str(same), "--report", str(same))
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {same}: is the same file as --report {same}; give --html another file\n"
    )


def test_html_inside_an_input_directory_is_refused(export: Path) -> None:
    inside = export.parent / "r.html"
    result = invoke("hunt", str(export.parent), "--html", str(inside))
    assert result.exit_code == 2
    assert "is inside the input directory" in result.stderr
    assert not inside.exists()


@pytest.mark.parametrize("command", ["hunt", "pivot"])
def test_without_plotly_html_is_a_usage_error_before_reading(
    command: str, export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)  # import fails
    page = tmp_path / "r.html"
    args = ["E1"] if command == "pivot" else []
    # refused before the inputs are even looked at: a missing one is not what is said
    result = invoke(command, *args, str(export), str(tmp_path / "missing.ndjson"),
                    "--html", str(page))  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --html: needs plotly, which is not installed; install it with "
        "pip install 'egress-offline[html]' (or pip install plotly)\n"
    )
    assert result.stdout == ""
    assert not page.exists()
