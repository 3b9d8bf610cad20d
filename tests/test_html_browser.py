"""``--html`` pages opened in a real browser: headless Chromium draws every chart, under
the page's policy nothing is refused (every script the page runs is allowed, nothing
tries to load), and a hostile value makes no element.

Skipped where Chromium is not installed (``apt-get install chromium``), except under
``CI=true``, where ``.ci/run`` installs it and its absence fails the test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from egress_offline.cli import app
from tests.helpers import GiB, event, ndjson

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
RCLONE = "MTE3MDMxODktMGVjOS00OTYxLTgwNWUtOGVkMmZjNGMwNDNiLTczMTItMTMyOTM1NDkxMDkuNzM1OTUwNQ=="
HOSTILE = "</script><img src=x onerror=alert(1)>"
#: the browser's console, as Chromium logs it to standard error
CONSOLE = re.compile(r"CONSOLE[^\]]*\] (.*)")


#: no request of Chromium's own either (updates, DNS prefetch, metrics...): every host
#: name resolves to nothing, and the page itself is held to its own policy
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--no-pings",
    "--dns-prefetch-disable",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",
    "--window-size=1400,2000",
)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    return found


def _write(*args: str) -> None:
    result = CliRunner().invoke(app, [*args, "-q"])
    assert result.exit_code == 0, result.stderr


@dataclass
class Opened:
    """A page as the browser left it: its DOM once its scripts ran, and what its console
    said (policy refusals, script errors)."""

    dom: str
    console: list[str]


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Opened]:
    """The three pages of the sample export, with a hostile event added (in the hunt's
    window, flagged), written by the CLI and opened at once: a page takes the browser
    about 5 s of work, mostly plotly.js."""
    chromium = _chromium()
    work = tmp_path_factory.mktemp("browser")
    hostile = work / "hostile.ndjson"
    hostile.write_bytes(
        ndjson(
            [
                event(
                    **{
                        "@timestamp": "2026-11-20T12:00:00Z",
                        "source.bytes": 2 * GiB,
                        "process.executable": HOSTILE,
                        "destination.address": HOSTILE,
                        "host.name": HOSTILE,
                    }
                ),
            ]
        )
    )
    inputs = [str(SAMPLE), str(hostile)]
    pages = {name: work / f"{name}.html" for name in ("hunt", "sweep", "pivot")}
    _write("hunt", *inputs, "--html", str(pages["hunt"]), "-o", str(work / "h.csv"))
    _write("sweep", *inputs, "--html", str(pages["sweep"]), "-o", str(work / "s.csv"))
    _write(
        "pivot", RCLONE, "E1", *inputs, "--html", str(pages["pivot"]), "-o", str(work / "p.json")
    )
    runs = {
        name: subprocess.Popen(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={work / f'profile-{name}'}",
                "--dump-dom",
                page.as_uri(),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, page in pages.items()
    }
    found = {}
    for name, run in runs.items():
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-2000:]
        found[name] = Opened(out, CONSOLE.findall(err))
    return found


def _drawn(dom: str) -> tuple[int, int]:
    """(charts in the page, charts plotly drew: their div holds its SVG)."""
    charts = re.findall(r'<div class="chart[^"]*" data-figure="[^"]+"', dom)
    drawn = [c for c in charts if "js-plotly-plot" in c]
    return len(charts), len(drawn)


@pytest.mark.parametrize(("name", "charts"), [("hunt", 5), ("sweep", 6), ("pivot", 2)])
def test_every_chart_is_drawn_and_nothing_refused(
    opened: dict[str, Opened], name: str, charts: int
) -> None:
    page = opened[name]
    assert page.console == []  # no policy refusal (nothing loaded), no script error
    # hunt and sweep: the funnel and each flagged group (the sample's and the hostile
    # one); pivot: each id's timeline
    assert _drawn(page.dom) == (charts, charts)
    assert page.dom.count('class="main-svg"') >= 2 * charts


def test_the_pages_hold_the_sample_s_findings(opened: dict[str, Opened]) -> None:
    assert "3,344,682,261" in opened["hunt"].dom
    assert "185.220.101.7" in opened["hunt"].dom
    assert "OneDrive.exe" in opened["sweep"].dom  # the sweep's fourth finding
    assert "rclone.exe" in opened["pivot"].dom
    assert "conhost.exe" in opened["pivot"].dom  # a child, in the tree


@pytest.mark.parametrize("name", ["hunt", "sweep", "pivot"])
def test_a_hostile_value_is_text_in_the_browser(opened: dict[str, Opened], name: str) -> None:
    dom = opened[name].dom
    assert "<img" not in dom  # no element made, so no onerror ran
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in dom
