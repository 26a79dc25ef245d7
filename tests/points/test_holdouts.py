"""Holdout groups and reports: the control group is a stable, fair draw that never gets the rule, and the
report's figures are those of the seeded purchases, with the interval of docs/campaigns.md."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from services.points import domain
from shared.clock import utcnow
from tests.points.builders import buy, enroll
from tests.points.ledger_checks import assert_balanced
from tests.points.test_identifiers import segment
from tests.support import deliver

WIN_BACK = {"rule_id": "win-back", "kind": "multiplier", "factor": "3", "audience": {"lifecycles": ["lapsed"]},
            "holdout_pct": 30}


# --- the draw ------------------------------------------------------------------------------------------


def test_the_draw_is_stable_fair_and_independent_between_rules() -> None:
    members = [f"C-{n}" for n in range(20_000)]
    ten = {m for m in members if domain.held_out("win-back", m, 10)}
    assert 0.09 < len(ten) / len(members) < 0.11
    assert ten == {m for m in members if domain.held_out("win-back", m, 10)}  # the same every time
    assert ten < {m for m in members if domain.held_out("win-back", m, 30)}  # a larger share holds the smaller
    other = {m for m in members if domain.held_out("vip-weekend", m, 10)}
    assert 0.005 < len(ten & other) / len(members) < 0.015  # about 10% of 10%: the draws are independent
    assert not any(domain.held_out("win-back", m, 0) for m in members)
    assert not domain.held_out("win-back", None, 50)


@given(st.text(min_size=1, max_size=64), st.text(min_size=1, max_size=64), st.integers(0, 50))
def test_held_out_members_never_get_the_rule(rule_id: str, member_id: str, pct: int) -> None:
    rule = domain.MultiplierRule(rule_id, Decimal(2), categories=frozenset({"c"}), holdout_pct=pct)
    facts = domain.PurchaseFacts(lines=(domain.Line(Decimal(10), "c"),),
                                 occurred_at=datetime(2026, 11, 20, tzinfo=UTC))
    earned = domain.compute_earning(facts, points_per_unit=Decimal(1), multipliers=[rule],
                                    member=domain.MemberFacts(member_id=member_id))
    assert earned.points == (10 if domain.held_out(rule_id, member_id, pct) else 20)
    assert earned.exposed == ((rule_id,) if pct else ())


# --- the statistics ------------------------------------------------------------------------------------


def welch(treated: list[float], control: list[float]) -> tuple[float, float, float]:
    """The same method as the service, in floats, written out independently."""
    difference = statistics.fmean(treated) - statistics.fmean(control)
    error = math.sqrt(statistics.variance(treated) / len(treated) + statistics.variance(control) / len(control))
    return difference, difference - 1.959964 * error, difference + 1.959964 * error


@pytest.mark.parametrize(("treated", "control", "expected"), [
    ([], ["1"], None),
    (["10"], [], None),
    (["10"], ["4"], ("6.00", None)),
    (["10", "20", "30"], ["10", "10"], ("10.00", ("-1.32", "21.32"))),
    (["5", "5", "5"], ["5", "5"], ("0.00", ("0.00", "0.00"))),
])
def test_uplift_table(treated: list[str], control: list[str], expected: Any) -> None:
    uplift = domain.spend_uplift([Decimal(v) for v in treated], [Decimal(v) for v in control])
    if expected is None:
        assert uplift is None
        return
    assert uplift is not None
    assert str(uplift.difference) == expected[0]
    assert (None if uplift.interval_95 is None else tuple(map(str, uplift.interval_95))) == expected[1]


amounts = st.lists(st.integers(0, 100_000).map(lambda cents: Decimal(cents) / 100), min_size=2, max_size=40)


@given(amounts, amounts)
def test_uplift_agrees_with_welch_in_floats(treated: list[Decimal], control: list[Decimal]) -> None:
    uplift = domain.spend_uplift(treated, control)
    assert uplift is not None and uplift.interval_95 is not None
    difference, low, high = welch([float(v) for v in treated], [float(v) for v in control])
    assert abs(float(uplift.difference) - difference) <= 0.006
    assert abs(float(uplift.interval_95[0]) - low) <= 0.006 and abs(float(uplift.interval_95[1]) - high) <= 0.006
    assert uplift.interval_95[0] <= uplift.difference <= uplift.interval_95[1]


# --- through the API ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pct", [51, -1, "1_0", 2.5, True])
async def test_a_holdout_out_of_range_is_422(client: httpx.AsyncClient, pct: Any) -> None:
    answer = await client.post("/v1/earning-rules", json={**WIN_BACK, "holdout_pct": pct})
    assert answer.status_code == 422, answer.text
    assert any("holdout_pct" in [str(p) for p in err["loc"]] for err in answer.json()["errors"]), answer.json()
    assert (await client.get("/v1/earning-rules/win-back")).status_code == 404


async def test_the_report_equals_the_seeded_purchases(client: httpx.AsyncClient, app: FastAPI) -> None:
    created = await client.post("/v1/earning-rules", json=WIN_BACK)
    assert created.status_code == 201 and created.json()["holdout_pct"] == 30, created.text
    members = [f"L-{n:02d}" for n in range(40)]
    for member_id in [*members, "active-1"]:
        await enroll(client, member_id)
        lifecycle = "active" if member_id == "active-1" else "lapsed"
        assert await deliver(app, segment(member_id, "C", lifecycle), source="tiers") == "handled"
    control = {m for m in members if domain.held_out("win-back", m, 30)}
    assert 4 <= len(control) <= 24  # the fixed ids draw a control group of a useful size
    seeded: dict[str, list[tuple[Decimal, int]]] = {m: [] for m in members}
    for n, member_id in enumerate(members):
        if n % 4 == 3:
            continue  # a lapsed member who does not come back still counts, with nothing spent
        for k in range(1 + n % 3):
            total = Decimal(5 + (n * 7 + k * 3) % 20)
            bought = await buy(client, f"p-{member_id}-{k}", member_id, f"{total}.00")
            assert bought["points_earned"] == int(total) * (1 if member_id in control else 3)
            seeded[member_id].append((total, bought["points_earned"]))
    await buy(client, "p-active", "active-1", "50.00")  # outside the audience: in neither group
    # A refund counts against the spend and points of its purchase's member.
    refunded = next(m for m in members if seeded[m] and m not in control)
    refund = await client.post(f"/v1/purchases/p-{refunded}-0/refunds",
                               json={"refund_id": "rf-1", "amount": "2.00", "occurred_at": utcnow().isoformat()})
    assert refund.status_code == 201, refund.text
    total, points = seeded[refunded][0]
    seeded[refunded][0] = (total - 2, points - refund.json()["points_reversed"])
    # Won back by the rule: out of the audience now, still in the report (it took them in at a purchase).
    comeback = next(m for m in members if seeded[m] and m in control)
    assert await deliver(app, segment(comeback, "C", "won_back"), source="tiers") == "handled"

    report = (await client.get("/v1/earning-rules/win-back/report")).json()

    def group(ids: set[str]) -> dict[str, Any]:
        spend = sum((t for m in ids for t, _ in seeded[m]), Decimal(0))
        return {"members": len(ids), "purchases": sum(len(seeded[m]) for m in ids),
                "spend": str(spend.quantize(Decimal("0.0001"))),
                "points": sum(p for m in ids for _, p in seeded[m]),
                "spend_per_member": str((spend / len(ids)).quantize(Decimal("0.01")))}

    treated = set(members) - control
    assert _plain(report["treated"]) == group(treated)
    assert _plain(report["control"]) == group(control)
    difference, low, high = welch([float(sum(t for t, _ in seeded[m])) for m in treated],
                                  [float(sum(t for t, _ in seeded[m])) for m in control])
    assert abs(float(report["spend_per_member_uplift"]) - difference) <= 0.006
    assert abs(float(report["interval_95"][0]) - low) <= 0.006
    assert abs(float(report["interval_95"][1]) - high) <= 0.006
    assert report["significant"] == (low > 0 or high < 0)
    assert report["holdout_pct"] == 30 and report["rule_id"] == "win-back"
    for member_id in members:
        await assert_balanced(app, member_id)


async def test_a_rule_without_holdout_reports_no_control_and_unknown_rules_404(client: httpx.AsyncClient) -> None:
    assert (await client.post("/v1/earning-rules", json={**WIN_BACK, "holdout_pct": None})).status_code == 201
    report = (await client.get("/v1/earning-rules/win-back/report")).json()
    assert report["control"]["members"] == 0 and report["spend_per_member_uplift"] is None
    assert report["interval_95"] is None and report["significant"] is False
    missing = await client.get("/v1/earning-rules/nope/report")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def _plain(figures: dict[str, Any]) -> dict[str, Any]:
    """The group as the API answers it, with its decimals as canonical strings."""
    return {**figures, "spend": str(Decimal(figures["spend"]).quantize(Decimal("0.0001"))),
            "spend_per_member": str(Decimal(figures["spend_per_member"]).quantize(Decimal("0.01")))}
