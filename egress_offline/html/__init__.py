"""``--html FILE``: one self-contained HTML page per run, to open in a browser on a
machine with no network. Nothing is fetched when it is opened: plotly.js, which draws the
charts, is inlined in the page, and the page's Content-Security-Policy allows no request.

    page      escaping, the data blocks, the policy, the page itself
    sections  tables: parameters, evidence (inputs with SHA-256), flagged rows
    charts    plotly figures: the funnel, a group over time, pivot's timeline
    search    hunt_html, sweep_html
    pivot     pivot_html

plotly is an optional dependency (``pip install 'egress-offline[html]'``): without it,
:func:`require_plotly` raises a :class:`~egress_offline.errors.UsageError` saying so.
"""

from __future__ import annotations

from egress_offline.html.page import INSTALL_HINT, require_plotly, script_json, text
from egress_offline.html.pivot import pivot_html
from egress_offline.html.search import hunt_html, sweep_html

__all__ = [
    "INSTALL_HINT",
    "hunt_html",
    "pivot_html",
    "require_plotly",
    "script_json",
    "sweep_html",
    "text",
]
