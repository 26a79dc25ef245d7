"""The operator dashboard in a real browser: the three services as processes, known data seeded through the
public API, tiers' projections built from the events, and /dashboard opened in headless Chromium (Debian's
package, driven by Playwright) to check that every chart was drawn by the vendored library with the figures
computed here from the seed. The page's screenshot is kept as a CI artifact: .artifacts/dashboard.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright

from tests.support import ADMIN_KEY
from tests.system.browser import ARTIFACTS, launch
from tests.system.harness import System, eventually
from tests.tiers.pages import read_tables

pytestmark = pytest.mark.system

NOW = datetime.now(UTC).replace(microsecond=0)

# --- the seed, and what the dashboard must show for it -----------------------------------------------------

TIERS: dict[str, Any] = {  # multipliers of 1, so every purchase earns its total whenever tiers' upgrade reaches points
    "basis": "spend", "window_days": 365, "retention_days": 365, "downgrade": "to_qualified",
    "tiers": [
        {"tier_id": "bronze", "name": "Bronze", "threshold": "0", "earn_multiplier": "1", "perks": []},
        {"tier_id": "silver", "name": "Silver", "threshold": "500", "earn_multiplier": "1", "perks": []},
        {"tier_id": "gold", "name": "Gold", "threshold": "1500", "earn_multiplier": "1", "perks": []},
    ],
}
REWARDS = {"cup": 100, "tote": 250, "mug": 50}  # points cost each
PURCHASES = {  # member -> (total, days ago); eve only enrols
    "ann": [("1000.00", 40), ("600.00", 0.1)],
    "ben": [("600.00", 0.1)],
    "cal": [("200.00", 0.1)],
    "dan": [("100.00", 0.1)],
    "eve": [],
}


@dataclass(frozen=True)
class Redeem:
    redemption_id: str
    member_id: str
    reward_id: str
    quantity: int = 1
    outcome: str = "confirmed"  # or rejected (not enough points), or cancelled after the confirmation


REDEMPTIONS = [
    Redeem("r-ann-1", "ann", "cup", quantity=2),
    Redeem("r-ann-2", "ann", "tote"),
    Redeem("r-ben-1", "ben", "cup", outcome="cancelled"),
    Redeem("r-ben-2", "ben", "mug"),
    Redeem("r-cal-1", "cal", "tote", outcome="rejected"),  # 250 points wanted, 200 held
]


def tier_of(spend: Decimal) -> str:
    return max((t for t in TIERS["tiers"] if spend >= Decimal(t["threshold"])), key=lambda t: Decimal(t["threshold"]))[
        "name"]


def spend_of(member_id: str) -> Decimal:
    return sum((Decimal(total) for total, _ in PURCHASES[member_id]), Decimal(0))


@dataclass(frozen=True)
class Expected:
    by_tier: list[list[str]]
    by_lifecycle: list[list[str]]
    issued: int
    spent: int
    liability: int
    rewards: list[list[str]]
    pareto: dict[str, str]  # top members -> revenue share, at the marks checked
    pareto_share: str


def expected() -> Expected:
    """The figures worked out from the seed alone."""
    counts = {t["name"]: 0 for t in TIERS["tiers"]}
    for member_id in PURCHASES:
        counts[tier_of(spend_of(member_id))] += 1
    # Everyone enrolled just now: one purchase or none is "new"; ann, with two (the last today), is "active".
    lifecycle = {"New": 4, "Active": 1, "At risk": 0, "Lapsed": 0, "Won back": 0}
    issued = sum(spend_of(m) for m in PURCHASES)  # one point per unit, multipliers 1, no bonus rules
    paid = [r for r in REDEMPTIONS if r.outcome != "rejected"]
    spent = sum(REWARDS[r.reward_id] * r.quantity for r in paid)  # points.spent, cancelled ones included
    refunded = sum(REWARDS[r.reward_id] * r.quantity for r in paid if r.outcome == "cancelled")
    rewards: dict[str, list[int]] = {}
    for r in paid:
        if r.outcome == "confirmed":
            count = rewards.setdefault(r.reward_id, [0, 0])
            count[0] += r.quantity
            count[1] += REWARDS[r.reward_id] * r.quantity
    top = sorted(rewards.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))
    # Revenue 1600, 600, 200, 100 (2500 in all) over four buyers: each is 25% of the members.
    # 20% of the members is 0.8 of ann: 1280 / 2500.
    pareto = {"0.0%": "0.0%", "20.0%": "51.2%", "25.0%": "64.0%", "50.0%": "88.0%", "75.0%": "96.0%",
              "100.0%": "100.0%"}
    return Expected(
        by_tier=[[name, str(n)] for name, n in counts.items()],
        by_lifecycle=[[name, str(n)] for name, n in lifecycle.items()],
        issued=int(issued), spent=spent, liability=int(issued) - spent + refunded,
        rewards=[[reward_id, str(n), str(points)] for reward_id, (n, points) in top],
        pareto=pareto, pareto_share="51.2%",
    )


# --- seeding through the public API --------------------------------------------------------------------------


def settle(rewards: httpx.Client, redemption_id: str) -> str:
    status: dict[str, str] = {}

    def settled() -> bool:
        status["now"] = rewards.get(f"/v1/redemptions/{redemption_id}", params={"wait": 5}).json()["status"]
        return status["now"] != "pending"

    eventually(settled, f"redemption {redemption_id} settles")
    return status["now"]


def seed(system: System) -> None:
    points, rewards, tiers = system.client("points"), system.client("rewards"), system.client("tiers")
    assert points.put("/v1/program", json={"currency": "USD", "points_per_unit": "1", "expiry_days": 365,
                                           "pending_days": 0, "excluded_categories": []}).status_code == 200
    assert tiers.put("/v1/tiers", json=TIERS).status_code == 200
    for reward_id, cost in REWARDS.items():
        body = {"name": reward_id.title(), "points_cost": cost, "stock": None, "per_member_limit": None, "active": True}
        assert rewards.put(f"/v1/rewards/{reward_id}", json=body).status_code == 201
    for member_id, bought in PURCHASES.items():
        assert points.put(f"/v1/members/{member_id}", json={"name": member_id.title()}).status_code == 201
        for index, (total, days_ago) in enumerate(bought):
            occurred = (NOW - timedelta(days=days_ago)).isoformat()
            response = points.post("/v1/purchases", json={
                "purchase_id": f"{member_id}-{index}", "member_id": member_id, "occurred_at": occurred,
                "currency": "USD", "total": total})
            assert response.status_code == 201, response.text
    for r in REDEMPTIONS:
        response = rewards.post("/v1/redemptions", json={"redemption_id": r.redemption_id, "member_id": r.member_id,
                                                          "reward_id": r.reward_id, "quantity": r.quantity})
        assert response.status_code == 202, response.text
        assert settle(rewards, r.redemption_id) == ("rejected" if r.outcome == "rejected" else "confirmed")
        if r.outcome == "cancelled":
            assert rewards.post(f"/v1/redemptions/{r.redemption_id}/cancel").status_code == 200


def consumed(system: System, want: Expected) -> None:
    """Until tiers has every purchase (each member's qualifying spend) and every points event (the
    liability), then segment, then until the page shows the redemptions and the week's points."""
    tiers = system.client("tiers")

    def spend_known(member_id: str) -> bool:
        standing = tiers.get(f"/v1/members/{member_id}/tier").json()
        return Decimal(standing.get("qualifying_value", -1)) == spend_of(member_id)

    for member_id in PURCHASES:
        eventually(partial(spend_known, member_id), f"tiers knows {member_id}'s purchases")
    eventually(lambda: tiers.get("/v1/analytics/summary").json()["points_liability"] == want.liability,
               "tiers knows every balance")
    assert tiers.post("/v1/jobs/segments").status_code == 200

    def shown() -> bool:
        tables = read_tables(tiers.get("/dashboard").text)
        weeks = tables["table-points"]
        return (tables["table-rewards"] == want.rewards and sum(int(w[1]) for w in weeks) == want.issued
                and sum(int(w[2]) for w in weeks) == want.spent)

    eventually(shown, "the dashboard counts every redemption and points event")


# --- the browser -------------------------------------------------------------------------------------------


@pytest.fixture
def context(playwright: Playwright, chromium: str, tmp_path: Path) -> Iterator[BrowserContext]:
    """A browser that answers the dashboard's challenge with the admin key (any user name)."""
    browser = launch(playwright, chromium, tmp_path / "profile", viewport={"width": 1280, "height": 900},
                     http_credentials={"username": "operator", "password": ADMIN_KEY})
    yield browser
    browser.close()


CHARTS_JS = """() => Object.fromEntries([...document.querySelectorAll('canvas')].map(canvas => {
  const chart = Chart.getChart(canvas);
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) painted++; }
  const meta = chart.getDatasetMeta(0);
  const horizontal = chart.options.indexAxis === 'y';
  const length = bar => Math.abs(horizontal ? bar.x - bar.base : bar.base - bar.y);
  const sizes = meta.type === 'bar' ? meta.data.map(length) : [];
  return [canvas.id, {labels: chart.data.labels, data: chart.data.datasets.map(set => set.data),
                      painted, area: canvas.width * canvas.height, sizes}];
}))"""


def open_dashboard(page: Page, url: str) -> list[str]:
    """Opens the page and waits for dashboard.js to report; returns every URL the page requested."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = page.goto(f"{url}/dashboard")
    assert response is not None and response.status == 200
    page.wait_for_selector("body[data-charts]:not([data-charts='pending'])", state="attached")
    return requested


def test_the_dashboard_draws_the_seeded_figures(system: System, context: BrowserContext) -> None:
    want = expected()
    seed(system)
    consumed(system, want)
    tiers_url = system["tiers"].url

    page = context.new_page()
    requested = open_dashboard(page, tiers_url)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    assert page.get_attribute("body", "data-charts") == "drawn", page.text_content("#charts-status")
    assert page.evaluate("() => Chart.version") == "4.5.1"
    assert f"{tiers_url}/dashboard/static/chart.umd.min.js" in requested
    assert all(url.startswith(f"{tiers_url}/") for url in requested), requested  # no CDN, nothing else

    tables = read_tables(page.content())
    assert tables["table-tiers"] == want.by_tier
    assert tables["table-lifecycle"] == want.by_lifecycle
    assert tables["table-rewards"] == want.rewards
    assert {top: share for top, share in tables["table-pareto"] if top in want.pareto} == want.pareto
    assert page.text_content("#figure-members") == str(len(PURCHASES))
    assert page.text_content("#figure-liability") == f"{want.liability:,}"
    assert page.text_content("#figure-pareto-share") == want.pareto_share

    charts: dict[str, dict[str, Any]] = page.evaluate(CHARTS_JS)
    assert set(charts) == {"chart-tiers", "chart-lifecycle", "chart-pareto", "chart-points", "chart-rewards"}
    for chart_id, chart in charts.items():
        assert chart["painted"] > chart["area"] // 50, f"{chart_id} is blank"
    assert charts["chart-tiers"]["labels"] == [row[0] for row in want.by_tier]
    assert charts["chart-tiers"]["data"] == [[int(row[1]) for row in want.by_tier]]
    assert charts["chart-lifecycle"]["data"] == [[int(row[1]) for row in want.by_lifecycle]]
    assert charts["chart-rewards"]["labels"] == [row[0] for row in want.rewards]
    assert charts["chart-rewards"]["data"] == [[int(row[1]) for row in want.rewards]]
    issued, spent, expired = charts["chart-points"]["data"]
    assert (sum(issued), sum(spent), sum(expired)) == (want.issued, want.spent, 0)
    curve = dict(zip(charts["chart-pareto"]["labels"], charts["chart-pareto"]["data"][0], strict=True))
    assert curve["20%"] == 51.2 and curve["50%"] == 88.0 and curve["100%"] == 100.0
    # the bars were drawn to scale: their lengths in pixels are in the ratio of the figures
    for chart_id in ("chart-tiers", "chart-rewards"):
        sizes, values = charts[chart_id]["sizes"], charts[chart_id]["data"][0]
        longest = max(sizes)
        assert longest > 0
        for size, value in zip(sizes, values, strict=True):
            assert size / longest == pytest.approx(value / max(values), abs=0.02), (chart_id, sizes, values)


def test_the_dashboard_asks_for_a_key(system: System, playwright: Playwright, chromium: str, tmp_path: Path) -> None:
    url = f"{system['tiers'].url}/dashboard"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith('Basic realm="loyalty dashboard"')
    assert anonymous.headers["content-type"] == "application/problem+json"

    # A browser with a wrong key is challenged again and shows the refusal, not the page.
    stranger = launch(playwright, chromium, tmp_path / "profile",
                      http_credentials={"username": "operator", "password": "not-the-key"})
    try:
        page = stranger.new_page()
        response = page.goto(url)
        assert response is not None and response.status == 401
        assert "/problems/unauthorized" in page.content() and "Loyalty program" not in page.content()
    finally:
        stranger.close()
