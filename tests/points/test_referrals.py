"""Referrals: every member's code, enrolment with another's code (and its refusals), both sides paid once by the
referee's first purchase of at least ``min_spend``, the referrer's yearly cap under concurrent referees, and a
full refund taking both back. Against PostgreSQL; the pure rules at the end."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI

from services.points import domain
from shared.clock import utcnow
from tests.points.builders import available, buy, enroll, program, purchase
from tests.points.ledger_checks import assert_balanced
from tests.support import outbox_events

SETTING = {"referrer_points": 500, "referee_points": 250, "min_spend": "20.00"}
CODE = re.compile(f"^[{domain.REFERRAL_ALPHABET}]{{{domain.REFERRAL_CODE_LENGTH}}}$")


async def set_referral(client: httpx.AsyncClient, **overrides: Any) -> None:
    answer = await client.put("/v1/program", json=program(
        expiry_days=3650, time_zone="America/New_York", referral={**SETTING, **overrides}))
    assert answer.status_code == 200, answer.text


async def code_of(client: httpx.AsyncClient, member_id: str) -> str:
    code: str = (await client.get(f"/v1/members/{member_id}")).json()["referral_code"]
    return code


async def referred(client: httpx.AsyncClient, member_id: str, referrer_id: str, **body: Any) -> None:
    answer = await client.put(f"/v1/members/{member_id}",
                              json={"referral_code": await code_of(client, referrer_id), **body})
    assert answer.status_code == 201, answer.text
    assert answer.json()["referred_by"] == referrer_id


async def ledger(client: httpx.AsyncClient, member_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get(f"/v1/members/{member_id}/ledger")).json()["items"]
    return items[::-1]  # oldest first


def referral_entries(entries: list[dict[str, Any]], kind: str = "bonus") -> list[tuple[int, str | None]]:
    return [(e["points"], e.get("purchase_id")) for e in entries
            if e["kind"] == kind and e.get("rule_ids") == [domain.REFERRAL]]


# --- codes and enrolment ---------------------------------------------------------------------------------------


async def test_every_member_has_its_own_unguessable_code_that_never_changes(client: httpx.AsyncClient) -> None:
    answers = [await client.put(f"/v1/members/R-{i}", json={"name": f"R {i}"}) for i in range(20)]
    codes = [answer.json()["referral_code"] for answer in answers]
    assert all(CODE.match(code) for code in codes), codes
    assert len(set(codes)) == 20
    updated = await client.put("/v1/members/R-0", json={"name": "Renamed"})
    assert updated.status_code == 200 and updated.json()["referral_code"] == codes[0]
    assert await code_of(client, "R-0") == codes[0]


async def test_enrolment_with_a_code_names_its_owner_as_referrer(client: httpx.AsyncClient, app: FastAPI) -> None:
    await enroll(client, "A", email="a@example.com")
    code = await code_of(client, "A")
    typed = f"{code[:4].lower()}-{code[4:8]} {code[8:]}"  # as a person types it
    body = {"referral_code": typed, "email": "b@example.com"}
    first = await client.put("/v1/members/B", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["referred_by"] == "A" and first.json()["referral_code"] != code
    retry = await client.put("/v1/members/B", json=body)  # a retried enrolment changes nothing
    assert retry.status_code == 200 and retry.json() == first.json()
    enrolled = [e for e in await outbox_events(app, "member.enrolled") if e["subject"] == "B"]
    assert enrolled[0]["data"]["referred_by"] == "A"
    assert code not in str(await outbox_events(app)), "the code stays out of events"
    # referred_by given with the code's owner is the same request
    answer = await client.put("/v1/members/C", json={"referral_code": code, "referred_by": "A"})
    assert answer.status_code == 201 and answer.json()["referred_by"] == "A"


async def refused(client: httpx.AsyncClient, member_id: str, body: dict[str, Any]) -> str:
    answer = await client.put(f"/v1/members/{member_id}", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["type"] == "/problems/referral-invalid" and problem["status"] == 422
    detail: str = problem["detail"]
    return detail


async def test_unknown_own_shared_contact_codes_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await enroll(client, "A", email="Ada@Example.com", phone="+1 (555) 010-0199")
    await client.put("/v1/members/A/identifiers/email/ada.work@example.com")
    code = await code_of(client, "A")
    enrolled_before = len(await outbox_events(app, "member.enrolled"))

    assert "No member has" in await refused(client, "N", {"referral_code": "ZZZZZZZZZZZZ"})
    assert "own" in await refused(client, "A", {"referral_code": code})
    shared = [{"email": "ADA@example.COM"}, {"phone": "15550100199"}, {"email": "ada.work@example.com"}]
    for contact in shared:
        detail = await refused(client, "N", {"referral_code": code, **contact})
        assert "shares" in detail and "@" not in detail and "555" not in detail, "no contact in the answer"
    assert "another member" in await refused(client, "N", {"referral_code": code, "referred_by": "X"})
    await enroll(client, "S")
    assert "only" in await refused(client, "S", {"referral_code": code}), "a code is taken at enrolment only"

    assert (await client.get("/v1/members/N")).status_code == 404
    assert (await client.get("/v1/members/S")).json()["referred_by"] is None
    assert len(await outbox_events(app, "member.enrolled")) == enrolled_before + 1  # S's only

    await client.put("/v1/members/A", json={"status": "suspended"})
    assert "not an active" in await refused(client, "N", {"referral_code": code})
    await client.put("/v1/members/A", json={"status": "active"})
    await referred(client, "N", "A", email="nina@example.com", phone="+1 555 010 0200")


# --- the program's setting ---------------------------------------------------------------------------------------


async def test_the_referral_setting_is_part_of_the_program(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/program")).json()["referral"] is None
    await set_referral(client, max_per_referrer_per_year=10)
    assert (await client.get("/v1/program")).json()["referral"] == {**SETTING, "max_per_referrer_per_year": 10}
    for bad in ({"referrer_points": -1}, {"max_per_referrer_per_year": 0}, {"min_spend": "-1"},
                {"referee_points": 2.5}, {"colour": "red"}):
        answer = await client.put("/v1/program", json=program(referral={**SETTING, **bad}))
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["errors"][0]["loc"][:2] == ["body", "referral"]
    answer = await client.put("/v1/program", json=program())
    assert answer.status_code == 200 and answer.json()["referral"] is None  # left out: no referral setting


# --- paying both sides ------------------------------------------------------------------------------------------


async def test_both_sides_are_paid_once_by_the_first_purchase_of_min_spend(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await set_referral(client)
    await enroll(client, "A")
    await referred(client, "B", "A", email="b@example.com")
    small = await buy(client, "b-1", "B", "19.99")
    assert small["points_earned"] == 19 and await available(client, "A") == 0, "below min_spend: still open"

    body = purchase("b-2", "B", "25.00")
    first = await client.post("/v1/purchases", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["points_earned"] == 25, "the referral bonus is not the purchase's points"
    assert first.json()["balance"] == {"available": 19 + 25 + 250, "pending": 0}
    retry = await client.post("/v1/purchases", json=body)
    assert retry.status_code == 200 and retry.json() == first.json()
    await buy(client, "b-3", "B", "30.00")

    assert await available(client, "A") == 500
    assert await available(client, "B") == 19 + 25 + 250 + 30
    assert referral_entries(await ledger(client, "A")) == [(500, "b-2")]
    assert referral_entries(await ledger(client, "B")) == [(250, "b-2")]
    bonuses = [e["data"] for e in await outbox_events(app, "points.earned") if e["data"]["kind"] == "bonus"]
    assert sorted((d["member_id"], d["points"], d["purchase_id"], d["rule_ids"]) for d in bonuses) == [
        ("A", 500, "b-2", ["referral"]), ("B", 250, "b-2", ["referral"])]
    assert "b@example.com" not in str(await outbox_events(app)), "personal data stays in points"
    await assert_balanced(app, "A")
    await assert_balanced(app, "B")


async def test_a_member_referred_by_id_is_paid_too_and_without_a_setting_nothing_is(
    client: httpx.AsyncClient,
) -> None:
    await enroll(client, "A")
    await enroll(client, "B", referred_by="A")
    await buy(client, "b-1", "B", "50.00")
    assert await available(client, "A") == 0, "no setting, no referral rule: nothing"
    await set_referral(client)
    await enroll(client, "C", referred_by="A")
    await buy(client, "c-1", "C", "50.00")
    assert await available(client, "A") == 500
    await buy(client, "b-2", "B", "50.00")  # B's referral was never settled: its next qualifying purchase pays
    assert await available(client, "A") == 1000 and await available(client, "B") == 100 + 250


async def test_concurrent_first_purchases_of_one_referee_pay_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    await set_referral(client)
    await enroll(client, "A")
    await referred(client, "B", "A")
    answers = await asyncio.gather(*[client.post("/v1/purchases", json=purchase(f"b-{i}", "B", "30.00"))
                                     for i in range(8)])
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    assert await available(client, "A") == 500
    assert await available(client, "B") == 8 * 30 + 250
    assert len(referral_entries(await ledger(client, "B"))) == 1
    await assert_balanced(app, "A")
    await assert_balanced(app, "B")


async def test_the_yearly_cap_per_referrer_holds_under_concurrent_referees(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await set_referral(client, max_per_referrer_per_year=3)
    await enroll(client, "A")
    referees = [f"F-{i}" for i in range(10)]
    for member_id in referees:
        await referred(client, member_id, "A")
    answers = await asyncio.gather(*[
        client.post("/v1/purchases", json=purchase(f"{m}-p", m, "20.00", occurred_at="2026-06-01T12:00:00Z"))
        for m in referees])
    assert [a.status_code for a in answers] == [201] * 10, [a.text for a in answers]
    assert await available(client, "A") == 3 * 500
    balances = {m: await available(client, m) for m in referees}
    paid = [m for m, points in balances.items() if points == 20 + 250]
    assert len(paid) == 3 and all(points == 20 for m, points in balances.items() if m not in paid), balances
    # a capped referral is closed: the referee's next purchase pays no one
    unpaid = next(m for m in referees if m not in paid)
    await buy(client, f"{unpaid}-again", unpaid, "20.00")
    assert await available(client, "A") == 3 * 500 and await available(client, unpaid) == 40
    for member_id in ["A", *referees]:
        await assert_balanced(app, member_id)


async def test_the_cap_counts_calendar_years_of_the_programs_time_zone(client: httpx.AsyncClient) -> None:
    await set_referral(client, max_per_referrer_per_year=1)
    await enroll(client, "A")
    for member_id in ("F-1", "F-2", "F-3"):
        await referred(client, member_id, "A")
    for purchase_id, member_id, moment in (
            ("p-1", "F-1", "2026-01-01T03:00:00Z"),  # 31 December 2025 in New York
            ("p-2", "F-2", "2026-01-01T06:00:00Z"),  # 2026 there
            ("p-3", "F-3", "2026-07-01T12:00:00Z")):  # 2026's one is taken
        answer = await client.post("/v1/purchases", json=purchase(purchase_id, member_id, "20.00", occurred_at=moment))
        assert answer.status_code == 201, answer.text
    assert await available(client, "A") == 1000
    assert [await available(client, m) for m in ("F-1", "F-2", "F-3")] == [270, 270, 20]


# --- refunds ---------------------------------------------------------------------------------------------------


async def test_a_full_refund_takes_both_back_even_spent_and_a_partial_one_neither(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await set_referral(client)
    await enroll(client, "A")
    await referred(client, "B", "A")
    await buy(client, "b-1", "B", "40.00")
    spent = await client.post("/v1/members/A/adjustments", json={
        "adjustment_id": "spend-all", "points": -500, "reason": "spent on a reward"})
    assert spent.status_code == 201, spent.text

    partial = await client.post("/v1/purchases/b-1/refunds", json={
        "refund_id": "rf-1", "amount": "10.00", "occurred_at": utcnow().isoformat()})
    assert partial.status_code == 201 and partial.json()["points_reversed"] == 10
    assert await available(client, "A") == 0 and await available(client, "B") == 30 + 250

    full_body = {"refund_id": "rf-2", "amount": "30.00", "occurred_at": utcnow().isoformat()}
    full = await client.post("/v1/purchases/b-1/refunds", json=full_body)
    assert full.status_code == 201, full.text
    assert full.json()["points_reversed"] == 30, "the refund's own figure is the purchase's points"
    assert full.json()["balance"] == {"available": 0, "pending": 0}
    retry = await client.post("/v1/purchases/b-1/refunds", json=full_body)
    assert retry.status_code == 200 and retry.json() == full.json()

    assert await available(client, "A") == -500, "spent: a debt the next credits repay"
    assert await available(client, "B") == 0
    assert referral_entries(await ledger(client, "A"), "reversal") == [(-500, "b-1")]
    assert referral_entries(await ledger(client, "B"), "reversal") == [(-250, "b-1")]
    reversed_ = [e["data"] for e in await outbox_events(app, "points.reversed")]
    assert sorted((d["member_id"], d["points"], d["kind"]) for d in reversed_ if d["refund_id"] == "rf-2") == [
        ("A", 500, "bonus"), ("B", 30, "earn"), ("B", 250, "bonus")]
    await assert_balanced(app, "A")
    await assert_balanced(app, "B")

    await buy(client, "b-2", "B", "40.00")  # the referral was settled once: refunded, it pays no more
    assert await available(client, "A") == -500


async def test_a_refund_inside_the_return_window_takes_the_bonuses_from_their_pending_lots(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    answer = await client.put("/v1/program", json=program(pending_days=14, referral=SETTING))
    assert answer.status_code == 200, answer.text
    await enroll(client, "A")
    await enroll(client, "A2")
    await referred(client, "B", "A")
    first = await buy(client, "b-1", "B", "20.00")
    assert first["status"] == "pending" and first["balance"] == {"available": 0, "pending": 270}
    balance = (await client.get("/v1/members/A/balance")).json()
    assert (balance["available"], balance["pending"]) == (0, 500), "the bonus waits with the purchase"
    full = await client.post("/v1/purchases/b-1/refunds", json={
        "refund_id": "rf-1", "amount": "20.00", "occurred_at": utcnow().isoformat()})
    assert full.status_code == 201 and full.json()["balance"] == {"available": 0, "pending": 0}
    balance = (await client.get("/v1/members/A/balance")).json()
    assert (balance["available"], balance["pending"]) == (0, 0), "no debt: taken from the pending lot"
    await assert_balanced(app, "A")
    await assert_balanced(app, "B")


async def test_a_referral_rules_bonus_is_taken_back_by_a_full_refund_too(client: httpx.AsyncClient, app: FastAPI
                                                                          ) -> None:
    rule = {"rule_id": "bring-a-friend", "kind": "bonus", "points": 200, "trigger": "referral"}
    assert (await client.post("/v1/earning-rules", json=rule)).status_code == 201
    await enroll(client, "A")
    await enroll(client, "B", referred_by="A")
    await buy(client, "b-1", "B", "10.00")
    assert await available(client, "A") == 200
    await client.post("/v1/purchases/b-1/refunds", json={
        "refund_id": "rf-1", "amount": "4.00", "occurred_at": utcnow().isoformat()})
    assert await available(client, "A") == 200, "a partial refund leaves it"
    await client.post("/v1/purchases/b-1/refunds", json={
        "refund_id": "rf-2", "amount": "6.00", "occurred_at": utcnow().isoformat()})
    assert await available(client, "A") == 0
    assert [(e["kind"], e["points"], e["rule_ids"]) for e in (await ledger(client, "A"))] == [
        ("bonus", 200, ["bring-a-friend"]), ("reversal", -200, ["bring-a-friend"])]
    await assert_balanced(app, "A")
    await assert_balanced(app, "B")


# --- the pure rules -----------------------------------------------------------------------------------------------


def test_codes_are_compared_as_people_type_them() -> None:
    assert domain.normalize_referral_code(" k7qx-2m9p rt4w ") == "K7QX2M9PRT4W"
    assert not set(domain.REFERRAL_ALPHABET) & set("01ILOU")
    assert len(domain.REFERRAL_ALPHABET) ** domain.REFERRAL_CODE_LENGTH > 2 ** 58


def test_a_referral_is_refused_for_oneself_an_inactive_owner_or_a_shared_contact() -> None:
    def refusal(**given: Any) -> str | None:
        facts: dict[str, Any] = {"member_id": "B", "referrer_id": "A", "referrer_active": True,
                                 "emails": ("b@example.com",), "phones": (None,),
                                 "referrer_emails": ("a@example.com",), "referrer_phones": ("15550100199",)}
        return domain.referral_refusal(**{**facts, **given})

    assert refusal() is None
    assert "own" in (refusal(referrer_id="B") or "")
    assert "active" in (refusal(referrer_active=False) or "")
    assert "shares" in (refusal(emails=(" A@Example.com",)) or "")
    assert "shares" in (refusal(phones=("+1 (555) 010-0199",)) or "")
    assert refusal(phones=("()",), referrer_phones=("",)) is None, "a phone without digits matches nothing"


def test_the_outcome_of_a_purchase_for_an_open_referral() -> None:
    settings = domain.ReferralSettings(referrer_points=500, referee_points=250, min_spend=Decimal("20"),
                                       max_per_referrer_per_year=2)
    assert domain.referral_outcome(settings, spend=Decimal("19.99"), rewarded_this_year=0) is None
    assert domain.referral_outcome(settings, spend=Decimal("20"), rewarded_this_year=1) == "rewarded"
    assert domain.referral_outcome(settings, spend=Decimal("20"), rewarded_this_year=2) == "capped"
    uncapped = domain.ReferralSettings(referrer_points=1, referee_points=1)
    assert domain.referral_outcome(uncapped, spend=Decimal(0), rewarded_this_year=10**6) == "rewarded"
