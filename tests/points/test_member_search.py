"""The operator's member search at 100,000 members on PostgreSQL: keyset pages on member_id with no
duplicates or gaps, filters that combine, q by a prefix of the id, name, e-mail, phone or card, and a plan
that reads through the indexes."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from shared.runtime import Runtime

N = 100_000
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"]
STATUS = ["active"] * 9 + ["suspended"]
TIERS = ["bronze", "silver", "gold"]
CLASSES = ["A", "B", "C", "D"]
LIFECYCLES = ["new", "active", "at_risk", "lapsed", "won_back"]


def member(i: int) -> dict[str, Any]:
    """The seeded member number ``i``, as the SQL below writes it."""
    return {"member_id": f"M-{i:06d}", "name": f"{FIRST[i % 8]} Tester{i}", "email": f"User{i}@Example.com",
            "phone": f"+1 555 {i:07d}", "status": STATUS[i % 10], "tier": TIERS[i % 3],
            "value_class": CLASSES[i % 4], "lifecycle": LIFECYCLES[i % 5], "card": f"CARD-{i}"}


SEED = [
    f"""INSERT INTO member (member_id, name, email, phone, status, enrolled_at, updated_at, tier_id,
        earn_multiplier, available, pending, lifetime_earned, lifetime_spent, purchase_count, value_class, lifecycle,
        referral_code)
    SELECT 'M-' || lpad(i::text, 6, '0'), (ARRAY{FIRST})[i % 8 + 1] || ' Tester' || i, 'User' || i || '@Example.com',
        '+1 555 ' || lpad(i::text, 7, '0'), (ARRAY{STATUS})[i % 10 + 1], now(), now(), (ARRAY{TIERS})[i % 3 + 1],
        1, 0, 0, 0, 0, 0, (ARRAY{CLASSES})[i % 4 + 1], (ARRAY{LIFECYCLES})[i % 5 + 1], 'SEARCH' || i
    FROM generate_series(1, {N}) AS i""",
    """INSERT INTO member_identifier (kind, normalized, member_id, value, from_profile, created_at)
    SELECT 'email', lower(email), member_id, email, true, now() FROM member
    UNION ALL SELECT 'phone', regexp_replace(phone, '[^0-9]', '', 'g'), member_id, phone, true, now() FROM member
    UNION ALL SELECT 'card', 'CARD-' || ltrim(substr(member_id, 3), '0'), member_id,
        'CARD-' || ltrim(substr(member_id, 3), '0'), false, now() FROM member""",
    "ANALYZE member",
    "ANALYZE member_identifier",
]


@pytest.fixture
async def seeded(app: FastAPI) -> FastAPI:
    runtime: Runtime = app.state.runtime
    started = time.perf_counter()
    async with runtime.db.transaction() as session:
        for statement in SEED[:2]:
            await session.execute(text(statement))
    async with runtime.db.engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for statement in SEED[2:]:
            await autocommit.execute(text(statement))
    print(f"seeded {N} members in {time.perf_counter() - started:.1f} s")
    return app


MEMBERS = [member(i) for i in range(1, N + 1)]


async def every_page(client: httpx.AsyncClient, limit: int = 500, **params: str) -> list[str]:
    """All the ids the search pages give, checking that each page follows the keyset."""
    ids: list[str] = []
    cursor = None
    while True:
        answer = await client.get("/v1/members", params={**params, "limit": limit,
                                                           **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        page_ids = [item["member_id"] for item in page["items"]]
        assert page_ids == sorted(page_ids) and (not ids or not page_ids or page_ids[0] > ids[-1])
        assert len(page_ids) <= limit
        ids += page_ids
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
        assert len(page_ids) == limit


def expected(predicate: Any) -> list[str]:
    return [m["member_id"] for m in MEMBERS if predicate(m)]


@pytest.mark.usefixtures("seeded")
async def test_filters_combine_and_pages_follow_the_keyset(client: httpx.AsyncClient) -> None:
    ids = await every_page(client, status="suspended", tier="gold", value_class="B")
    assert ids == expected(lambda m: (m["status"], m["tier"], m["value_class"]) == ("suspended", "gold", "B"))
    assert len(ids) == len(set(ids)) > 1000
    ids = await every_page(client, lifecycle="lapsed", value_class="B", limit=211)
    assert ids == expected(lambda m: (m["lifecycle"], m["value_class"]) == ("lapsed", "B"))
    first = (await client.get("/v1/members", params={"limit": 3})).json()
    assert [m["member_id"] for m in first["items"]] == ["M-000001", "M-000002", "M-000003"]
    assert first["items"][0]["value_class"] == "B" and first["items"][0]["tier"] == "silver"


@pytest.mark.usefixtures("seeded")
async def test_q_by_id_name_email_phone_and_card_prefix(client: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, str], Any]] = [
        ({"q": "M-0012"}, lambda m: m["member_id"].startswith("M-0012")),
        ({"q": "m-0012", "status": "suspended"},
         lambda m: m["member_id"].startswith("M-0012") and m["status"] == "suspended"),
        ({"q": "grace tester12"}, lambda m: m["name"].lower().startswith("grace tester12")),
        ({"q": "USER4242@"}, lambda m: m["email"].lower().startswith("user4242@")),
        ({"q": "+1 555 00042"}, lambda m: m["phone"].replace(" ", "").startswith("+155500042")),
        ({"q": "155500099"}, lambda m: m["phone"].replace(" ", "").startswith("+155500099")),
        ({"q": "card-9999"}, lambda m: m["card"].lower().startswith("card-9999")),
        ({"q": "card-99", "tier": "gold", "lifecycle": "new"},
         lambda m: m["card"].startswith("CARD-99") and m["tier"] == "gold" and m["lifecycle"] == "new"),
        ({"q": "nobody"}, lambda m: False),
        ({"q": "50%_"}, lambda m: False),  # LIKE's wildcards are taken literally
    ]
    for params, predicate in cases:
        ids = await every_page(client, limit=97, **params)
        assert ids == expected(predicate), params
        assert len(ids) == len(set(ids))


async def explain(app: FastAPI, params: dict[str, str]) -> str:
    """The plan (EXPLAIN ANALYZE) of the statement the search runs for these parameters."""
    from services.points.service import search

    runtime: Runtime = app.state.runtime
    captured: list[Any] = []
    async with runtime.db.read() as session:
        real_execute = session.execute

        async def capture(statement: Any, *args: Any, **kwargs: Any) -> Any:
            captured.append(statement)
            return await real_execute(statement, *args, **kwargs)

        session.execute = capture  # type: ignore[method-assign]
        await search.search(session, q=params.get("q"), status=params.get("status"), tier=params.get("tier"),
                            value_class=params.get("value_class"), lifecycle=params.get("lifecycle"), limit=50,
                            cursor=None)
        session.execute = real_execute  # type: ignore[method-assign]
        compiled = captured[0].compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True})
        plan = "\n".join((await session.execute(text(f"EXPLAIN ANALYZE {compiled}"))).scalars())
    return plan


@pytest.mark.usefixtures("seeded")
async def test_the_search_reads_through_indexes(app: FastAPI, client: httpx.AsyncClient) -> None:
    for params in ({"q": "grace tester12"}, {"q": "M-0999"}, {"q": "user77@"}, {"q": "+1 555 00042"},
                   {"q": "card-123", "status": "active"}, {"value_class": "A", "lifecycle": "new"}, {}):
        plan = await explain(app, params)
        assert "Seq Scan" not in plan, (params, plan)
        started = time.perf_counter()
        for _ in range(5):
            assert (await client.get("/v1/members", params=params)).status_code == 200
        took = (time.perf_counter() - started) / 5
        print(f"search {params}: {took * 1000:.1f} ms a page of 50 at {N} members")

