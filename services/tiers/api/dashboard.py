"""The operator dashboard at ``/dashboard``: one read-only page of the figures ``service.projections.gather``
reads, rendered here in tables (for screen readers, copy and paste, and tests) and as JSON that
``services/tiers/static/dashboard.js`` draws with Chart.js.

Chart.js is vendored at build time (``deploy/local/vendor_assets.py``, run by ``make install`` and the
image build) into ``static/vendor/`` and served from here; the page loads nothing from anywhere else, and
its Content-Security-Policy says so to the browser.

The page asks for an admin key the way browsers understand: a Basic challenge, any user name, the key as
the password. ``Authorization: Bearer`` and ``X-API-Key`` work too, for scripts.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from services.tiers.domain import figures
from services.tiers.service.projections import WEEKS, Dashboard, gather
from shared.errors import Forbidden, LoyaltyError, RateLimited, ServiceUnavailable, Unauthorized
from shared.http.assets import asset_response
from shared.http.auth import KeyStore, Scope, client_address, presented_key
from shared.http.problems import problem_response, problem_responses
from shared.runtime import Db

router = APIRouter(tags=["analytics"])

STATIC = Path(__file__).parents[1] / "static"  # package data of services.tiers
ASSETS = {  # what /dashboard/static/ serves, by name; nothing else is reachable there
    "dashboard.js": STATIC / "dashboard.js",
    "chart.umd.min.js": STATIC / "vendor" / "chart.umd.min.js",
}
REALM = "loyalty dashboard"
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
LIFECYCLE_NAMES = {"new": "New", "active": "Active", "at_risk": "At risk", "lapsed": "Lapsed", "won_back": "Won back"}


# --- the key ---------------------------------------------------------------------------------------------


def _basic_password(request: Request) -> str | None:
    """The password of ``Authorization: Basic``, where the dashboard takes the key; None without one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


def _refusal(request: Request) -> Response | None:
    """None for an admin key; otherwise the problem+json answer, with the Basic challenge on a 401 so that a
    browser asks again."""
    key = _basic_password(request) or presented_key(request)
    if key is None:
        return _problem(Unauthorized("The dashboard needs an admin key: any user name, the key as the password."))
    store: KeyStore = request.app.state.keys
    try:
        principal = store.admit(key, client_address(request))  # a guesser at the prompt is braked like anyone
    except LoyaltyError as refused:
        return _problem(refused)
    if not principal.allows(Scope.ADMIN):
        return _problem(Forbidden("The dashboard needs a key with the 'admin' scope."))
    request.state.principal = principal
    return None


def _problem(error: LoyaltyError) -> Response:
    headers = {**CHALLENGE, **error.headers} if error.status == 401 else error.headers
    return problem_response(error.status, error.slug, error.title, error.detail, headers=headers or None)


# --- the charts ----------------------------------------------------------------------------------------


def charts(board: Dashboard) -> dict[str, dict[str, Any]]:
    """What each canvas draws, by canvas id: the chart type, labels and datasets (numbers, not strings)."""
    summary = board.summary
    tiers = summary.by_tier  # the ladder's tiers lowest first, then any a member is still in
    return {
        "chart-tiers": {"type": "bar", "labels": [board.tier_names.get(t, t) for t in tiers],
                        "datasets": [{"label": "Members", "data": list(tiers.values())}]},
        "chart-lifecycle": {"type": "bar", "labels": [LIFECYCLE_NAMES.get(s, s) for s in summary.by_lifecycle],
                            "datasets": [{"label": "Members", "data": list(summary.by_lifecycle.values())}]},
        "chart-pareto": {"type": "line", "labels": [f"{p.members_share * 100:.0f}%" for p in board.curve],
                         "datasets": [{"label": "Share of revenue (%)",
                                       "data": [round(float(p.revenue_share * 100), 2) for p in board.curve]}]},
        "chart-points": {"type": "bar", "labels": [w.label for w in board.weeks],
                         "datasets": [{"label": kind.capitalize(), "data": [getattr(w, kind) for w in board.weeks]}
                                      for kind in figures.POINTS_KINDS]},
        "chart-rewards": {"type": "bar", "horizontal": True, "labels": [r.reward_id for r in board.rewards],
                          "datasets": [{"label": "Redemptions", "data": [r.redemptions for r in board.rewards]}]},
    }


# --- the page --------------------------------------------------------------------------------------------


def _table(table_id: str, caption: str, head: list[str], rows: list[list[str]]) -> str:
    header = "".join(f'<th scope="col">{escape(h)}</th>' for h in head)
    body = "".join(
        "<tr>" + f'<th scope="row">{escape(row[0])}</th>' + "".join(f"<td>{escape(c)}</td>" for c in row[1:]) + "</tr>"
        for row in rows
    ) or f'<tr><td colspan="{len(head)}">None yet</td></tr>'
    return (f'<table id="{table_id}"><caption>{escape(caption)}</caption><thead><tr>{header}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _section(title: str, chart_id: str, note: str, table: str) -> str:
    return (f'<section><h2>{escape(title)}</h2><p class="note">{escape(note)}</p>'
            f'<div class="chart"><canvas id="{chart_id}" role="img" aria-label="{escape(title)}"></canvas></div>'
            f"{table}</section>")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "not yet"


def render(board: Dashboard) -> str:
    summary = board.summary
    tiers = summary.by_tier
    segmented = summary.segments.computed_at if summary.segments else None
    share = summary.pareto.top_20pct_revenue_share
    headline = [
        ("members", "Members", str(summary.members)),
        ("liability", "Points liability", f"{summary.points_liability or 0:,}"),
        ("pareto-share", "Revenue from the top 20% of members", figures.percent(share)),
    ]
    tiles = "".join(f'<div class="tile"><dt>{escape(label)}</dt><dd id="figure-{key}">{escape(value)}</dd></div>'
                    for key, label, value in headline)
    sections = [
        _section("Members by tier", "chart-tiers", "Every member tiers knows, by current tier.",
                 _table("table-tiers", "Members by tier", ["Tier", "Members"],
                        [[board.tier_names.get(t, t), str(n)] for t, n in tiers.items()])),
        _section("Members by lifecycle", "chart-lifecycle", f"As of the last segmentation run ({_when(segmented)}).",
                 _table("table-lifecycle", "Members by lifecycle", ["Lifecycle", "Members"],
                        [[LIFECYCLE_NAMES.get(s, s), str(n)] for s, n in summary.by_lifecycle.items()])),
        _section("Pareto curve", "chart-pareto",
                 "Cumulative share of revenue in the segmentation window by share of members, highest spenders first.",
                 _table("table-pareto", "Cumulative revenue share by member rank", ["Top members", "Revenue share"],
                        [[figures.percent(p.members_share), figures.percent(p.revenue_share)] for p in board.curve])),
        _section("Points per week", "chart-points", f"Issued, spent and expired in the last {WEEKS} ISO weeks (UTC).",
                 _table("table-points", "Points per week", ["Week", "Issued", "Spent", "Expired"],
                        [[w.label, str(w.issued), str(w.spent), str(w.expired)] for w in board.weeks])),
        _section("Top rewards", "chart-rewards", "Confirmed redemptions; cancelled ones do not count.",
                 _table("table-rewards", "Top rewards", ["Reward", "Redemptions", "Points"],
                        [[r.reward_id, str(r.redemptions), str(r.points)] for r in board.rewards])),
    ]
    data = json.dumps(charts(board)).replace("<", "\\u003c")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Loyalty dashboard</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 16px; color: #1b1f24; }}
header p {{ color: #57606a; margin: 0; }}
dl.tiles {{ display: flex; gap: 16px; margin: 16px 0; }}
.tile {{ border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 16px; }}
.tile dt {{ color: #57606a; }} .tile dd {{ font-size: 24px; margin: 0; }}
main {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 24px; }}
section h2 {{ font-size: 16px; margin: 0; }} .note {{ color: #57606a; margin: 2px 0 8px; }}
.chart {{ position: relative; height: 240px; }}
table {{ border-collapse: collapse; margin-top: 8px; font-size: 12px; }}
caption {{ text-align: left; color: #57606a; }}
th, td {{ border-bottom: 1px solid #eaeef2; padding: 2px 10px; text-align: right; }}
th[scope=row], thead th:first-child {{ text-align: left; }}
</style>
</head>
<body data-charts="pending">
<header><h1>Loyalty program</h1>
<p>As of {_when(board.as_of)}; segments as of {_when(segmented)}. Read only.</p>
<p id="charts-status" role="status"></p></header>
<dl class="tiles">{tiles}</dl>
<main>{"".join(sections)}</main>
<script type="application/json" id="dashboard-charts">{data}</script>
<script src="dashboard/static/chart.umd.min.js"></script>
<script src="dashboard/static/dashboard.js"></script>
</body>
</html>
"""


# --- routes ----------------------------------------------------------------------------------------------


@router.get(
    "/dashboard", summary="Operator dashboard (HTML)", response_class=HTMLResponse,
    responses=problem_responses(Unauthorized, Forbidden, RateLimited, ServiceUnavailable),
    openapi_extra={"x-required-scopes": ["admin"]},  # the key is checked in the route (Basic challenge)
)
async def get_dashboard(request: Request, db: Db) -> Response:
    """A read-only page for operators: members by tier and lifecycle, the Pareto curve, points issued, spent
    and expired per week, the points liability and the top rewards, as charts and tables. Asks for an
    `admin` key with a Basic challenge (any user name, the key as the password); `Authorization: Bearer`
    works too."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    async with db.read() as session:
        board = await gather(session)
    return HTMLResponse(render(board), headers=SECURITY_HEADERS)


@router.get("/dashboard/static/{name}", include_in_schema=False)
async def get_dashboard_asset(name: str) -> FileResponse:
    """The dashboard's script and the vendored chart library; public, like any page's scripts."""
    return asset_response(ASSETS, name, "dashboard")
