"""Finding a member by a card, phone, e-mail or external id: normalised handles, one member each, on
PostgreSQL, through the public API (the race of two members for one card included)."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from ops.client import Api, Endpoints
from ops.importer import import_file
from shared.messaging import events
from shared.messaging.consumer import EventRefused
from tests.support import ADMIN_KEY, deliver


def ident(member_id: str, kind: str, value: str) -> str:
    return f"/v1/members/{member_id}/identifiers/{kind}/{quote(value, safe='')}"


async def enroll(client: httpx.AsyncClient, member_id: str, **profile: str) -> None:
    answer = await client.put(f"/v1/members/{member_id}", json=profile)
    assert answer.status_code == 201, answer.text


async def test_lookup_by_each_kind_normalised(client: httpx.AsyncClient) -> None:
    await enroll(client, "C-1", name="Ada Lovelace")
    for kind, value in (("card", " 6012-0001 "), ("phone", "+1 (555) 010-0199"), ("email", " Ada@Example.COM "),
                        ("external", "shop:42")):
        answer = await client.put(ident("C-1", kind, value))
        assert answer.status_code == 201, answer.text
        assert answer.json() == {"kind": kind, "value": value.strip()}
        assert (await client.put(ident("C-1", kind, value))).status_code == 200  # already theirs
    for kind, value in (("card", "6012-0001"), ("phone", "15550100199"), ("phone", "1-555-010-0199"),
                        ("email", "ada@example.com"), ("email", "ADA@EXAMPLE.COM"), ("external", "shop:42")):
        answer = await client.get("/v1/members/lookup", params={"kind": kind, "value": value})
        assert answer.status_code == 200, (kind, value, answer.text)
        body = answer.json()
        assert body["member_id"] == "C-1" and body["name"] == "Ada Lovelace" and body["tier"] is None
    assert sorted(i["kind"] for i in body["identifiers"]) == ["card", "email", "external", "phone"]
    # A card compares as given: another case is another card; and a handle no one holds is 404.
    for kind, value in (("card", "6012-0002"), ("external", "SHOP:42"), ("phone", "()"), ("email", "x@y")):
        answer = await client.get("/v1/members/lookup", params={"kind": kind, "value": value})
        assert answer.status_code == 404 and answer.json()["type"] == "/problems/member-not-found", answer.text


async def test_lookup_is_not_taken_for_a_member_id(client: httpx.AsyncClient) -> None:
    await enroll(client, "lookup")
    assert (await client.get("/v1/members/lookup")).status_code == 422  # kind and value are needed
    assert (await client.get("/v1/members/lookup", params={"kind": "card", "value": "x"})).status_code == 404


async def test_the_profile_email_and_phone_are_identifiers(client: httpx.AsyncClient) -> None:
    await enroll(client, "C-1", email="Ada@Example.com", phone="+1 555 0100")
    found = await client.get("/v1/members/lookup", params={"kind": "email", "value": "ada@example.COM"})
    assert found.status_code == 200 and found.json()["member_id"] == "C-1"
    assert {"kind": "phone", "value": "+1 555 0100"} in found.json()["identifiers"]
    # A new profile e-mail replaces the old one as an identifier.
    assert (await client.put("/v1/members/C-1", json={"email": "ada@new.example"})).status_code == 200
    assert (await client.get("/v1/members/lookup", params={"kind": "email", "value": "ada@example.com"})
            ).status_code == 404
    assert (await client.get("/v1/members/lookup", params={"kind": "email", "value": "ADA@new.example"})
            ).json()["member_id"] == "C-1"
    # Another member cannot take it, by profile or by hand; the profile change is not made.
    taken = await client.put("/v1/members/C-2", json={"name": "Eve", "email": "ada@NEW.example"})
    assert taken.status_code == 409 and taken.json()["type"] == "/problems/identifier-taken", taken.text
    assert "C-1" not in taken.json()["detail"]  # who holds it is not told
    assert (await client.get("/v1/members/C-2")).status_code == 404  # the enrolment was rolled back
    await enroll(client, "C-2", name="Eve")
    assert (await client.put("/v1/members/C-2", json={"phone": "1-555-0100"})).status_code == 409
    assert (await client.put(ident("C-2", "phone", "15550100"))).status_code == 409
    assert (await client.get("/v1/members/C-2")).json()["phone"] is None


async def test_taken_unknown_and_empty(client: httpx.AsyncClient) -> None:
    await enroll(client, "C-1")
    await enroll(client, "C-2")
    assert (await client.put(ident("C-1", "card", "6012-0001"))).status_code == 201
    taken = await client.put(ident("C-2", "card", "6012-0001 "))
    assert taken.status_code == 409 and taken.json()["type"] == "/problems/identifier-taken"
    unknown = await client.put(ident("C-9", "card", "6012-0009"))
    assert unknown.status_code == 404 and unknown.json()["type"] == "/problems/member-not-found"
    for kind, value in (("phone", "no digits"), ("card", "   "), ("email", "a\x00b")):
        answer = await client.put(ident("C-1", kind, value))
        assert answer.status_code == 422, (kind, value, answer.text)
    assert (await client.put(ident("C-1", "pin", "1234"))).status_code == 422


async def test_delete_then_the_other_member_claims_it(client: httpx.AsyncClient) -> None:
    await enroll(client, "C-1")
    await enroll(client, "C-2")
    assert (await client.put(ident("C-1", "card", "6012-0001"))).status_code == 201
    assert (await client.delete(ident("C-2", "card", "6012-0001"))).status_code == 204  # not C-2's: no effect
    assert (await client.get("/v1/members/lookup", params={"kind": "card", "value": "6012-0001"})
            ).json()["member_id"] == "C-1"
    assert (await client.delete(ident("C-1", "card", "6012-0001"))).status_code == 204
    assert (await client.delete(ident("C-1", "card", "6012-0001"))).status_code == 204  # already gone
    assert (await client.get("/v1/members/lookup", params={"kind": "card", "value": "6012-0001"})
            ).status_code == 404
    assert (await client.put(ident("C-2", "card", "6012-0001"))).status_code == 201
    assert (await client.get("/v1/members/lookup", params={"kind": "card", "value": "6012-0001"})
            ).json()["member_id"] == "C-2"


@pytest.mark.parametrize("round_", range(3))
async def test_two_members_racing_for_one_card_one_gets_it(client: httpx.AsyncClient, round_: int) -> None:
    await enroll(client, "C-1")
    await enroll(client, "C-2")
    card = f"6012-{round_:04d}"
    answers = await asyncio.gather(*(client.put(ident(f"C-{1 + i % 2}", "card", card)) for i in range(20)))
    statuses = [a.status_code for a in answers]
    assert all(s in (200, 201, 409) for s in statuses), [a.text for a in answers if a.status_code >= 500]
    assert statuses.count(201) == 1, statuses
    holder = (await client.get("/v1/members/lookup", params={"kind": "card", "value": card})).json()["member_id"]
    for index, answer in enumerate(answers):
        member_id = f"C-{1 + index % 2}"
        assert answer.status_code == (409 if member_id != holder else answer.status_code), (member_id, holder)
        if member_id == holder:
            assert answer.status_code in (200, 201)


def segment(member_id: str, value_class: str = "A", lifecycle: str = "active") -> events.MemberSegmentChanged:
    return events.MemberSegmentChanged.model_validate({
        "member_id": member_id, "value_class": value_class, "lifecycle": lifecycle,
        "rfm": {"recency": 5, "frequency": 4, "monetary": 5}, "at": "2026-11-20T10:00:00Z"})


async def test_points_learns_segments_and_refuses_unknown_members(app: FastAPI, client: httpx.AsyncClient) -> None:
    await enroll(client, "C-1")
    await enroll(client, "C-2")
    assert await deliver(app, segment("C-1", "A", "at_risk"), source="tiers") == "handled"
    found = (await client.get("/v1/members", params={"value_class": "A"})).json()
    assert [m["member_id"] for m in found["items"]] == ["C-1"]
    assert found["items"][0]["lifecycle"] == "at_risk"
    assert [m["member_id"] for m in (await client.get("/v1/members", params={"lifecycle": "at_risk"})
                                     ).json()["items"]] == ["C-1"]
    assert (await client.get("/v1/members", params={"value_class": "A", "lifecycle": "new"})).json()["items"] == []
    with pytest.raises(EventRefused):
        await deliver(app, segment("C-404"), source="tiers")


def test_points_consumes_segment_changes_but_not_its_own_member_events() -> None:
    from services.points import consumers

    assert events.Topic.MEMBERS in consumers.TOPICS
    assert "member.segment_changed" in consumers.HANDLERS
    assert not {"member.enrolled", "member.updated"} & set(consumers.HANDLERS)


async def test_the_member_import_gives_cards_and_rejects_taken_ones(app: FastAPI, tmp_path: Path) -> None:
    source = tmp_path / "members.csv"
    source.write_text("member_id,name,card\nC-1,Ada,6012-0001\nC-2,Bob,6012-0001\nC-3,Cy,\n")
    async with Api(Endpoints(points="http://test"), ADMIN_KEY, transport=httpx.ASGITransport(app=app)) as api:
        result = await import_file(api, source)
    assert (result.tally.created, result.tally.rejected) == (2, 1)
    assert result.rejected_file is not None
    rows = list(csv.DictReader(result.rejected_file.open()))
    # The rows go side by side: one of the two members asking for the card gets it.
    assert len(rows) == 1 and rows[0]["member_id"] in ("C-1", "C-2"), rows
    assert rows[0]["reason"].startswith("card: 409 identifier-taken: "), rows
    async with Api(Endpoints(points="http://test"), ADMIN_KEY, transport=httpx.ASGITransport(app=app)) as api:
        found = await api.get("points", "/v1/members/lookup", kind="card", value="6012-0001")
    assert found["member_id"] == ({"C-1", "C-2"} - {rows[0]["member_id"]}).pop()
