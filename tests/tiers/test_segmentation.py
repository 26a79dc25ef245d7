"""Segments and analytics against PostgreSQL: the segmentation run and its events, lifecycle moved by a
purchase, a member's segment, the summary, the points liability, the job and its triggers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from ops.cli import app as cli
from services.tiers import jobs
from services.tiers.app import SPEC
from services.tiers.service import segmentation
from shared.clock import clock
from shared.db.database import Database
from shared.http.auth import hash_key
from shared.messaging import events
from tests.support import deliver, outbox_events, service_client, service_db_url
from tests.tiers.builders import balance_event, enrolled, points_earned, program, purchase, refund, updated


@pytest.fixture(autouse=True)
async def ladder(client: httpx.AsyncClient) -> None:
    assert (await client.put("/v1/tiers", json=program())).status_code == 200


async def member_with(app: FastAPI, member_id: str, *purchases: tuple[float, str], enrolled_days_ago: float = 800,
                      status: str = "active") -> None:
    """Enrol ``member_id`` and deliver their purchases as (days ago, total)."""
    await deliver(app, enrolled(member_id, status, days_ago=enrolled_days_ago))
    for index, (days_ago, total) in enumerate(purchases):
        await deliver(app, purchase(f"{member_id}-p{index}", member_id, total, days_ago=days_ago))


async def segment_of(client: httpx.AsyncClient, member_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/members/{member_id}/segment")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def announcements(app: FastAPI, member_id: str | None = None) -> list[dict[str, Any]]:
    return [e["data"] for e in await outbox_events(app, "member.segment_changed")
            if member_id is None or e["subject"] == member_id]


async def a_small_program(app: FastAPI) -> None:
    await member_with(app, "big", (400, "100"), (30, "100"), (20, "100"), (10, "100"))  # won back 30 days ago
    await member_with(app, "mid", (200, "50"), (60, "50"))
    await member_with(app, "small", (5, "50"))
    await member_with(app, "old", (500, "100"))
    await member_with(app, "fresh", enrolled_days_ago=3)
    await member_with(app, "gone", (10, "1000"), status="closed")


# --- the run ----------------------------------------------------------------------------------------


async def test_the_run_segments_every_member_and_announces_each(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    await a_small_program(app)
    run = await segmentation.recompute_segments(db)
    assert (run.members, run.scored, run.changed) == (6, 4, 6)

    got = {m: await segment_of(client, m) for m in ("big", "mid", "small", "old", "fresh", "gone")}
    assert {m: (s["rfm"]["recency"], s["rfm"]["frequency"], s["rfm"]["monetary"], s["value_class"], s["lifecycle"])
            for m, s in got.items()} == {
        "big": (3, 4, 4, "A", "won_back"), "mid": (2, 3, 3, "B", "active"), "small": (4, 2, 2, "C", "active"),
        "old": (1, 1, 1, "D", "lapsed"), "fresh": (1, 1, 1, "D", "new"), "gone": (1, 1, 1, "D", "active")}
    # of the previous window's buyers (big, old) one bought again: r = 0.5, one more year
    assert [got[m]["clv_estimate"] for m in ("big", "mid", "small", "old", "gone")] == [
        "300.00", "100.00", "50.00", "0.00", "0.00"]
    assert all(s["computed_at"] == run.computed_at.isoformat().replace("+00:00", "Z") for s in got.values())

    told = {e["member_id"]: e for e in await announcements(app)}
    assert set(told) == set(got)
    assert told["big"]["value_class"] == "A" and told["big"]["lifecycle"] == "won_back"
    assert told["big"]["previous_value_class"] is None and told["big"]["previous_lifecycle"] is None
    assert told["big"]["rfm"] == {"recency": 3, "frequency": 4, "monetary": 4}

    again = await segmentation.recompute_segments(db)
    assert again.changed == 0, "nothing changed: nothing to tell"
    assert len(await announcements(app)) == 6


async def test_a_change_of_class_is_announced_with_the_previous_one(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    await a_small_program(app)
    await segmentation.recompute_segments(db)
    assert (await segment_of(client, "small"))["value_class"] == "C"
    await deliver(app, purchase("small-p9", "small", "1000.00", days_ago=2))
    run = await segmentation.recompute_segments(db)
    assert (await segment_of(client, "small"))["value_class"] == "A"
    latest = (await announcements(app, "small"))[-1]
    assert (latest["previous_value_class"], latest["value_class"]) == ("C", "A")
    assert latest["previous_lifecycle"] == latest["lifecycle"] == "active"
    assert run.changed == len(await announcements(app)) - 6


async def test_a_purchase_wins_a_lapsed_member_back_at_once(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    await a_small_program(app)
    await segmentation.recompute_segments(db)
    before = await segment_of(client, "old")
    assert before["lifecycle"] == "lapsed"
    await deliver(app, purchase("old-back", "old", "20.00", days_ago=0.1))
    after = await segment_of(client, "old")
    assert after["lifecycle"] == "won_back", "at once, not at the next run"
    assert after["value_class"] == "D" and after["rfm"] == before["rfm"], "the rest waits for the run"
    latest = (await announcements(app, "old"))[-1]
    assert (latest["previous_lifecycle"], latest["lifecycle"]) == ("lapsed", "won_back")
    assert latest["previous_value_class"] == latest["value_class"] == "D"


async def test_a_full_refund_takes_the_purchase_back_out_of_the_lifecycle(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    await member_with(app, "C-1", (300, "40"), (100, "40"))
    await segmentation.recompute_segments(db)
    assert (await segment_of(client, "C-1"))["lifecycle"] == "at_risk"
    await deliver(app, purchase("C-1-p2", "C-1", "60.00", days_ago=1))
    assert (await segment_of(client, "C-1"))["lifecycle"] == "active"
    await deliver(app, refund("rf-1", "C-1-p2", "C-1", "60.00"))
    assert (await segment_of(client, "C-1"))["lifecycle"] == "at_risk"
    assert [(e["previous_lifecycle"], e["lifecycle"]) for e in await announcements(app, "C-1")] == [
        (None, "at_risk"), ("at_risk", "active"), ("active", "at_risk")]


async def test_suspended_members_leave_the_scored_base(client: httpx.AsyncClient, app: FastAPI, db: Database) -> None:
    await member_with(app, "C-1", (10, "500"))
    await member_with(app, "C-2", (10, "100"))
    await segmentation.recompute_segments(db)
    assert (await segment_of(client, "C-1"))["value_class"] == "A"
    await deliver(app, updated("C-1", "suspended", days_ago=800))
    run = await segmentation.recompute_segments(db)
    assert run.scored == 1
    assert (await segment_of(client, "C-1"))["value_class"] == "D"
    assert (await segment_of(client, "C-2"))["value_class"] == "A"


async def test_runs_and_purchases_at_once_lose_no_lifecycle(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    """A purchase refreshing a lifecycle while a run writes: whichever goes first, the other builds on it."""
    for index in range(8):
        await member_with(app, f"C-{index}", (500, "30"), (400, "30"))
    await segmentation.recompute_segments(db)
    deliveries = [deliver(app, purchase(f"C-{index}-back", f"C-{index}", "10.00", days_ago=0.1)) for index in range(8)]
    await asyncio.gather(segmentation.recompute_segments(db), *deliveries, segmentation.recompute_segments(db))
    assert {(await segment_of(client, f"C-{index}"))["lifecycle"] for index in range(8)} == {"won_back"}
    for index in range(8):
        told = await announcements(app, f"C-{index}")
        moves = [(e["previous_lifecycle"], e["lifecycle"]) for e in told if e["previous_lifecycle"] != e["lifecycle"]]
        assert moves == [(None, "lapsed"), ("lapsed", "won_back")], told


# --- a member's segment -----------------------------------------------------------------------------


async def test_before_the_first_run_a_member_is_d_with_rfm_1_and_a_lifecycle_of_their_own(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await member_with(app, "C-1", (300, "40"), (100, "40"))
    got = await segment_of(client, "C-1")
    assert got == {"member_id": "C-1", "rfm": {"recency": 1, "frequency": 1, "monetary": 1}, "value_class": "D",
                   "lifecycle": "at_risk", "clv_estimate": "80.00", "computed_at": None}
    await member_with(app, "C-2", enrolled_days_ago=1)
    assert (await segment_of(client, "C-2"))["lifecycle"] == "new"


async def test_the_recency_threshold_is_a_setting(empty_db: Callable[[str], Awaitable[str]]) -> None:
    await empty_db("tiers")
    async with service_client("tiers", recency_threshold_days=30) as (app, client):
        await member_with(app, "C-1", (300, "40"), (45, "40"))
        assert (await segment_of(client, "C-1"))["lifecycle"] == "at_risk"
        await client.post("/v1/jobs/segments")
        assert (await segment_of(client, "C-1"))["lifecycle"] == "at_risk"
        assert (await client.get("/v1/analytics/summary")).json()["segments"]["recency_threshold_days"] == 30


async def test_an_unknown_member_has_no_segment(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/members/nobody/segment")
    assert response.status_code == 404 and response.json()["type"] == "/problems/member-not-found"


# --- the summary and the points liability -----------------------------------------------------------


async def test_the_summary_counts_from_the_stored_tiers_and_segments(
    client: httpx.AsyncClient, app: FastAPI, db: Database
) -> None:
    empty = (await client.get("/v1/analytics/summary")).json()
    assert empty == {"members": 0, "by_tier": {"bronze": 0, "silver": 0, "gold": 0},
                     "by_status": {"active": 0, "suspended": 0, "closed": 0},
                     "by_value_class": {"A": 0, "B": 0, "C": 0, "D": 0},
                     "by_lifecycle": {"new": 0, "active": 0, "at_risk": 0, "lapsed": 0, "won_back": 0},
                     "pareto": {"top_20pct_revenue_share": None}, "points_liability": 0, "segments": None}

    await a_small_program(app)
    await deliver(app, purchase("anon-p1", "anon", "5.00", days_ago=1))  # known from a purchase only
    before_run = (await client.get("/v1/analytics/summary")).json()
    assert before_run["members"] == 7 and before_run["by_value_class"] == {"A": 0, "B": 0, "C": 0, "D": 0}
    assert before_run["by_status"] == {"active": 5, "suspended": 0, "closed": 1, "unknown": 1}

    run = await segmentation.recompute_segments(db)
    summary = (await client.get("/v1/analytics/summary")).json()
    assert summary["by_tier"] == {"bronze": 6, "silver": 0, "gold": 1}, "gone spent 1000 in the window"
    assert summary["by_value_class"] == {"A": 1, "B": 1, "C": 1, "D": 4}
    # anon was first seen now, with one purchase: new
    assert summary["by_lifecycle"] == {"new": 2, "active": 3, "at_risk": 0, "lapsed": 1, "won_back": 1}
    # base: big 300, mid 100, small 50, anon 5, old 0: the top 20% is big alone
    assert summary["pareto"] == {"top_20pct_revenue_share": pytest.approx(300 / 455, abs=1e-5)}
    assert summary["segments"] == {
        "computed_at": run.computed_at.isoformat().replace("+00:00", "Z"), "segmented": 7, "scored": 5,
        "window_days": 365, "recency_threshold_days": 90, "new_member_days": 30, "revenue": "455.00",
        "retention_rate": 0.5, "expected_lifetime_years": 1.0}


async def test_the_points_liability_is_the_last_balance_each_points_event_told(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await deliver(app, points_earned("p-1", "C-1", 100))  # 100 available
    await deliver(app, balance_event(events.PointsSpent, "C-1", 60))
    await deliver(app, balance_event(events.PointsEarned, "C-2", 10, 40))  # 50 outstanding, 40 of them pending
    await deliver(app, balance_event(events.PointsExpired, "C-2", 5, 40))
    await deliver(app, balance_event(events.PointsAdjusted, "C-3", 500))
    await deliver(app, balance_event(events.PointsTransferred, "C-3", 300))
    await deliver(app, balance_event(events.PointsTransferred, "C-4", 200, direction="in", to_member_id="C-4"))
    await deliver(app, balance_event(events.PointsRefunded, "C-4", 250))
    await deliver(app, balance_event(events.PointsReversed, "C-5", -30))  # spent, then a refund took points back
    summary = (await client.get("/v1/analytics/summary")).json()
    assert summary["points_liability"] == 60 + 45 + 300 + 250, "a negative balance owes the program; it is no debt"
    assert summary["members"] == 0, "balances alone make nobody a member"


async def test_the_points_liability_counts_held_points_until_they_are_captured(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    async def liability() -> int:
        owed: int = (await client.get("/v1/analytics/summary")).json()["points_liability"]
        return owed

    await deliver(app, points_earned("p-1", "C-1", 100))
    await deliver(app, balance_event(events.PointsHeld, "C-1", 40, held=60))
    assert await liability() == 100, "a hold takes nothing yet"
    await deliver(app, balance_event(events.PointsSpent, "C-1", 40, held=10, hold_id="h-1", redemption_id=None))
    assert await liability() == 50, "the capture of 50 of the 60"
    await deliver(app, balance_event(events.PointsReleased, "C-1", 50, reason="captured"))
    await deliver(app, balance_event(events.PointsHeld, "C-2", -20, held=15))
    assert await liability() == 50, "held points of a member owing the program do not make it owed"


# --- triggers, scopes -------------------------------------------------------------------------------


async def test_the_job_runs_every_15_minutes_with_the_service_settings(app: FastAPI) -> None:
    assert (900.0, jobs.recompute_segments) in SPEC.jobs
    await member_with(app, "C-1", (10, "40"))
    await jobs.recompute_segments(app.state.runtime)
    assert len(await announcements(app, "C-1")) == 1
    await member_with(app, "C-2", (10, "40"))
    await jobs.recompute_segments(app.state.runtime)
    assert len(await announcements(app, "C-2")) == 0, "another instance ran it lately: skipped"
    clock.offset = timedelta(minutes=8)
    try:
        await jobs.recompute_segments(app.state.runtime)
    finally:
        clock.offset = timedelta(0)
    assert len(await announcements(app, "C-2")) == 1


async def test_operators_run_it_on_demand_over_http(client: httpx.AsyncClient, app: FastAPI) -> None:
    await a_small_program(app)
    response = await client.post("/v1/jobs/segments")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["members"], body["scored"], body["changed"]) == (6, 4, 6) and body["computed_at"].endswith("Z")
    assert (await client.post("/v1/jobs/segments")).json()["changed"] == 0


def test_operators_run_it_from_the_command_line(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERS_DATABASE_URL", service_db_url("tiers"))
    result = CliRunner().invoke(cli, ["jobs", "segments"])
    assert result.exit_code == 0, result.output
    assert "tiers: 0 members segmented, 0 scored, 0 changed" in result.output


async def test_scopes(tmp_path: Path, empty_db: Callable[[str], Awaitable[str]]) -> None:
    await empty_db("tiers")
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([{"name": "shop", "key_sha256": hash_key("shop-key"), "scopes": ["members:read"]}]))
    async with service_client("tiers", api_keys_file=keys) as (app, client):
        await member_with(app, "C-1", (10, "40"))
        shop = {"Authorization": "Bearer shop-key"}
        assert (await client.get("/v1/members/C-1/segment", headers=shop)).status_code == 200
        assert (await client.get("/v1/analytics/summary", headers=shop)).status_code == 403
        assert (await client.post("/v1/jobs/segments", headers=shop)).status_code == 403
        assert (await client.get("/v1/analytics/summary", headers={"Authorization": ""})).status_code == 401


async def test_clv_uses_the_retention_of_the_last_run(client: httpx.AsyncClient, app: FastAPI, db: Database) -> None:
    # previous window's buyers: A (again now), B (again now), C (not): r = 2/3, two more years
    await member_with(app, "A", (400, "10"), (100, "50"), (50, "50"))
    await member_with(app, "B", (500, "10"), (20, "10"))
    await member_with(app, "C", (600, "10"))
    run = await segmentation.recompute_segments(db)
    assert run.scored == 3
    assert (await segment_of(client, "A"))["clv_estimate"] == "200.00"  # 100 a year x 2 years
    await member_with(app, "D", (5, "30"))
    assert (await segment_of(client, "D"))["clv_estimate"] == "60.00", "not scored yet: the last run's lifetime"
    assert (await client.get("/v1/analytics/summary")).json()["segments"]["retention_rate"] == pytest.approx(
        2 / 3, abs=1e-5)
