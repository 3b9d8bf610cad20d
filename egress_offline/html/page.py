"""One self-contained HTML page: nothing fetched when it is opened, attacker-chosen text
shown as text, charts drawn by plotly.js inlined in the page.

- Every value from the export goes through :func:`text`: the characters that would make
  it read as another value are shown as escapes (as in the terminal table,
  :func:`~egress_offline.writers.legible`), then ``& < > " '`` become entities.
- Chart data is JSON in ``<script type="application/json">`` blocks, never executed;
  :func:`script_json` escapes ``<``, ``>`` and ``&`` (so neither ``</script>`` nor
  ``<!--`` can appear) and U+2028, U+2029.
- The page's Content-Security-Policy allows only its own two scripts (by their SHA-256),
  no request of any kind (``default-src 'none'``), and images only from ``data:``/``blob:``
  (plotly's download button): even a value that slipped through could neither run script
  nor reach the network.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Final

from egress_offline.errors import UsageError
from egress_offline.writers import legible

__all__ = ["INSTALL_HINT", "Page", "plotly", "require_plotly", "script_json", "text"]

INSTALL_HINT: Final = "pip install 'egress-offline[html]'"

#: draws every chart: each ``div[data-figure]`` from its JSON block
_BOOT: Final = """
(function () {
  var divs = document.querySelectorAll("div[data-figure]");
  for (var i = 0; i < divs.length; i++) {
    var block = document.getElementById(divs[i].getAttribute("data-figure"));
    var figure = JSON.parse(block.textContent);
    Plotly.newPlot(divs[i], figure.data, figure.layout,
                   {displaylogo: false, responsive: true});
  }
})();
"""

_STYLE: Final = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2933; margin: 0; background: #f5f7fa; }
main { max-width: 1320px; margin: 0 auto; padding: 16px 28px 48px; }
header { background: #1f2933; color: #f5f7fa; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: #cbd2d9; }
nav { margin-top: 8px; } nav a { color: #9fb3c8; margin-right: 16px; }
section { background: #fff; border: 1px solid #e4e7eb; border-radius: 6px;
          padding: 12px 20px 16px; margin: 16px 0; }
h2 { font-size: 18px; margin: 4px 0 10px; } h3 { font-size: 15px; margin: 14px 0 6px; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 3px 10px 3px 0; text-align: left;
         vertical-align: top; }
td { overflow-wrap: anywhere; }
th { font-weight: 600; color: #52606d; white-space: nowrap; }
td.t { white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.mono, code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
                   font-size: 12.5px; overflow-wrap: anywhere; }
pre { background: #f5f7fa; padding: 8px; white-space: pre-wrap; }
.kv th { width: 220px; }
.warn { background: #fff3c4; border-left: 4px solid #f0b429; padding: 6px 10px; }
.note { color: #616e7c; }
.flag { color: #ab091e; font-weight: 600; }
.chart { width: 100%; height: 380px; }
.wide { overflow-x: auto; }
.group { display: grid; grid-template-columns: minmax(380px, 2fr) minmax(0, 5fr); gap: 16px;
         align-items: start; border-top: 1px solid #e4e7eb; padding-top: 8px; }
.group .kv th { width: auto; }
.grid { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 16px; }
ul.tree, ul.tree ul { list-style: none; margin: 0; padding-left: 22px; }
ul.tree { padding-left: 0; }
ul.tree li { border-left: 2px solid #cbd2d9; margin: 4px 0; padding: 2px 0 2px 10px; }
ul.tree li.self { border-left-color: #ab091e; background: #fff5f5; }
.role { font-size: 11px; text-transform: uppercase; letter-spacing: .05em; color: #7b8794; }
"""


def require_plotly() -> None:
    """Raise :class:`UsageError` (exit 2) with the install command when plotly, which
    draws the charts, is not installed; the command asks this before reading."""
    plotly()


def plotly() -> Any:
    """``plotly.graph_objects``, loaded on first use (an optional dependency)."""
    try:
        return import_module("plotly.graph_objects")
    except ImportError as exc:
        raise UsageError(
            f"--html: needs plotly, which is not installed; install it with {INSTALL_HINT} "
            "(or pip install plotly)"
        ) from exc


def text(value: Any) -> str:
    """A value from the export as HTML text: shown legibly, then escaped."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(text(item) for item in value)
    return html.escape(legible(str(value)), quote=True)


_SCRIPT_SAFE: Final = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element: it cannot close the
    element (``</script>``), open a comment (``<!--``) or hold a line terminator that
    older JavaScript parsers choke on; it still parses to the same values."""
    if not isinstance(data, str):
        data = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return data.translate(_SCRIPT_SAFE)


def _source_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


@dataclass
class Page:
    """A report page: sections of HTML (already escaped) and the charts they hold."""

    title: str
    subtitle: str
    nav: list[tuple[str, str]] = field(default_factory=list)  # (anchor, label)
    parts: list[str] = field(default_factory=list)
    _figures: list[str] = field(default_factory=list)

    def add(self, html_text: str) -> None:
        self.parts.append(html_text)

    def figure(self, figure: Any, *, height: int = 380) -> str:
        """A div for a plotly figure, its JSON kept for the end of the page."""
        number = len(self._figures)
        plotly_io = import_module("plotly.io")
        data = plotly_io.to_json(figure, validate=False, pretty=False)
        self._figures.append(
            f'<script type="application/json" id="figure-{number}">{script_json(data)}</script>'
        )
        return (
            f'<div class="chart" data-figure="figure-{number}" style="height:{height}px">'
            "<noscript>The chart needs JavaScript; the numbers are in the tables.</noscript>"
            "</div>"
        )

    def render(self) -> bytes:
        """The whole page, plotly.js inlined once."""
        bundle = import_module("plotly.offline").get_plotlyjs()
        if "</script" in bundle.lower():  # cannot happen with plotly's bundle; never inline one
            raise AssertionError("plotly.js holds </script>; cannot inline it")
        policy = (
            "default-src 'none'; "
            f"script-src {_source_hash(bundle)} {_source_hash(_BOOT)}; "
            "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; "
            "base-uri 'none'; form-action 'none'"
        )
        links = "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in self.nav)
        return "".join(
            [
                '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
                f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n',
                '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
                '<meta name="referrer" content="no-referrer">\n',
                f"<title>{self.title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n",
                f"<header><h1>{self.title}</h1><p>{self.subtitle}</p>",
                f"<nav>{links}</nav></header>\n<main>\n",
                "\n".join(self.parts),
                "\n</main>\n",
                "\n".join(self._figures),
                f"\n<script>{bundle}</script>\n<script>{_BOOT}</script>\n</body>\n</html>\n",
            ]
        ).encode("utf-8")
