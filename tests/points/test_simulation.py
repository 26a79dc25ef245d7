"""Simulating rule changes (POST /v1/earning-rules/simulate): the replay as a plain function (tables and
properties), then the endpoint on PostgreSQL: its figures are what the purchases give once the change is
made, nothing is written, bad bodies are 422 and only admin keys may ask."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import create_async_engine

from services.points import domain, schemas
from services.points.models import Base
from services.points.service import rules, simulation
from services.points.service.simulation import Replayed, Terms, propose, replay
from shared.db.migrations import upgrade
from shared.errors import LoyaltyError
from shared.http.auth import hash_key
from tests.points.builders import enroll, program, purchase
from tests.support import service_client, service_db_url

RULE: TypeAdapter[Any] = TypeAdapter(schemas.RuleIn)
TERMS = Terms(points_per_unit=Decimal(1))
MONDAY = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)


def ruleset(*bodies: dict[str, Any]) -> rules.ActiveRules:
    """Rule bodies as the API would store and parse them."""
    return rules.parse_rules(SimpleNamespace(
        rule_id=body["rule_id"], kind=body["kind"],
        definition=RULE.validate_python(body).model_dump(mode="json", exclude={"rule_id", "kind"}, exclude_none=True))
        for body in bodies)


def bought(purchase_id: str, member_id: str, *lines: tuple[str, str | None], at: datetime = MONDAY,
           first: bool = False, birth_month: int | None = None, tier_multiplier: str = "1",
           lifecycle: str | None = None) -> Replayed:
    """A purchase of ``lines`` ((amount, category), ...) as the replay reads it."""
    facts = domain.PurchaseFacts(lines=tuple(domain.Line(Decimal(amount), category) for amount, category in lines),
                                 occurred_at=at, store_id="s-1", channel="pos")
    member = domain.MemberFacts(first_purchase=first, birth_month=birth_month, lifecycle=lifecycle,
                                member_id=member_id)
    return Replayed(purchase_id, member_id, facts, member, Decimal(tier_multiplier))


DOUBLE = {"rule_id": "double", "kind": "multiplier", "factor": "2", "match": {"categories": ["grocery"]}}
TRIPLE = {**DOUBLE, "factor": "3"}
WELCOME = {"rule_id": "welcome", "kind": "bonus", "points": 50, "trigger": "first_purchase"}
BIRTHDAY = {"rule_id": "birthday", "kind": "bonus", "points": 30, "trigger": "birthday_month"}
BASKET = {"rule_id": "basket", "kind": "bonus", "points": 5, "trigger": "min_spend", "min_spend": "20"}
BASKETS = [bought("p1", "A", ("10", "grocery"), ("5", None)), bought("p2", "A", ("30", None)),
           bought("p3", "B", ("8", "grocery"))]


# --- the replay, a plain function ----------------------------------------------------------------------------

TABLE = [
    # (what, current rules, proposed rules, purchases, current, proposed, members changed, by rule (id, cur, prop))
    ("no rules", (), (), BASKETS, 53, 53, 0, [("base", 53, 53), ("tier", 0, 0)]),
    ("a promotion added", (), (DOUBLE,), BASKETS, 53, 71, 2, [("base", 53, 53), ("tier", 0, 0), ("double", 0, 18)]),
    ("a promotion raised", (DOUBLE,), (TRIPLE,), BASKETS, 71, 89, 2,
     [("base", 53, 53), ("tier", 0, 0), ("double", 18, 36)]),
    ("a bonus taken out", (BASKET,), (), BASKETS, 58, 53, 1, [("base", 53, 53), ("tier", 0, 0), ("basket", 5, 0)]),
    ("a welcome bonus only on the first purchase", (), (WELCOME,),
     [bought("p1", "A", ("10", None), first=True), bought("p2", "A", ("10", None))], 20, 70, 1,
     [("base", 20, 20), ("tier", 0, 0), ("welcome", 0, 50)]),
    ("a birthday bonus once a year in the replay", (), (BIRTHDAY,),
     [bought("p1", "A", ("10", None), birth_month=11), bought("p2", "A", ("10", None), birth_month=11),
      bought("p3", "A", ("10", None), birth_month=11, at=MONDAY + timedelta(days=365)),
      bought("p4", "B", ("10", None), birth_month=3)], 40, 100, 1,
     [("base", 40, 40), ("tier", 0, 0), ("birthday", 0, 60)]),
    ("the tier multiplier on top", (), (DOUBLE,), [bought("p1", "A", ("10", "grocery"), tier_multiplier="1.5")],
     15, 30, 1, [("base", 10, 10), ("tier", 5, 10), ("double", 0, 10)]),
    ("a member's limit in replay order", (), ({**DOUBLE, "limits": {"per_member_points": 15}},),
     [bought("p1", "A", ("10", "grocery")), bought("p2", "A", ("10", "grocery")), bought("p3", "B", ("10", "grocery"))],
     30, 55, 2, [("base", 30, 30), ("tier", 0, 0), ("double", 0, 25)]),
    ("a budget for everyone", (), ({**DOUBLE, "limits": {"budget_points": 12}},),
     [bought("p1", "A", ("10", "grocery")), bought("p2", "B", ("10", "grocery")), bought("p3", "C", ("10", "grocery"))],
     30, 42, 2, [("base", 30, 30), ("tier", 0, 0), ("double", 0, 12)]),
    ("a monthly limit starts again next month", (), ({**DOUBLE, "limits": {"per_member_points": 10,
                                                                             "per_member_period": "month"}},),
     [bought("p1", "A", ("10", "grocery")), bought("p2", "A", ("10", "grocery")),
      bought("p3", "A", ("10", "grocery"), at=MONDAY + timedelta(days=30))], 30, 50, 1,
     [("base", 30, 30), ("tier", 0, 0), ("double", 0, 20)]),
    ("an audience", (), ({"rule_id": "win-back", "kind": "multiplier", "factor": "3",
                           "audience": {"lifecycles": ["lapsed"]}},),
     [bought("p1", "A", ("10", None), lifecycle="lapsed"), bought("p2", "B", ("10", None), lifecycle="active")],
     20, 40, 1, [("base", 20, 20), ("tier", 0, 0), ("win-back", 0, 20)]),
    ("nothing in the range", (DOUBLE,), (TRIPLE,), [], 0, 0, 0, [("base", 0, 0), ("tier", 0, 0), ("double", 0, 0)]),
]


@pytest.mark.parametrize(("current", "proposed", "purchases", "points", "proposed_points", "changed", "by_rule"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_replay(current: tuple[dict[str, Any], ...], proposed: tuple[dict[str, Any], ...], purchases: list[Replayed],
                points: int, proposed_points: int, changed: int, by_rule: list[tuple[str, int, int]]) -> None:
    figures = replay(purchases, ruleset(*current), ruleset(*proposed), TERMS)
    assert (figures.current_points, figures.proposed_points, figures.members_changed) == (
        points, proposed_points, changed)
    assert figures.by_rule == by_rule
    assert figures.purchases == len(purchases)
    assert figures.members == len({p.member_id for p in purchases})
    assert figures.liability_value_delta == (Decimal(proposed_points - points) / 100).quantize(Decimal("0.01"))


def test_the_cap_of_one_purchase_holds_in_both() -> None:
    figures = replay([bought("p1", "A", ("100", "grocery"))], ruleset(), ruleset(TRIPLE),
                     Terms(points_per_unit=Decimal(1), max_points=250))
    assert (figures.current_points, figures.proposed_points) == (100, 250)
    assert figures.by_rule == [("base", 100, 100), ("tier", 0, 0), ("double", 0, 150)]


@pytest.mark.parametrize(("currency", "point_value", "delta", "value"), [
    ("USD", "0.01", 18, "0.18"), ("USD", "0.005", 1, "0.00"), ("USD", "0.005", 3, "0.02"),
    ("USD", "0.005", -3, "-0.02"),
    ("JPY", "1", 18, "18"), ("KWD", "0.0015", 7, "0.010"), ("EUR", "0.01", 0, "0.00")])
def test_the_liability_is_the_points_delta_at_the_point_value(currency: str, point_value: str, delta: int,
                                                              value: str) -> None:
    extra = {"rule_id": "x", "kind": "bonus", "points": abs(delta) or 1, "trigger": "min_spend", "min_spend": "0"}
    current, proposed = (ruleset(), ruleset(extra)) if delta > 0 else (ruleset(extra), ruleset())
    if delta == 0:
        current = proposed = ruleset(extra)
    figures = replay([bought("p1", "A", ("1", None))], current, proposed,
                     Terms(points_per_unit=Decimal(1), point_value=Decimal(point_value), currency=currency))
    assert figures.proposed_points - figures.current_points == delta
    assert str(figures.liability_value_delta) == value


# --- the proposal -----------------------------------------------------------------------------------------------

def stored(*bodies: dict[str, Any]) -> list[Any]:
    return [SimpleNamespace(rule_id=b["rule_id"], kind=b["kind"], definition={}) for b in bodies]


def simulation_in(**fields: Any) -> schemas.SimulationIn:
    now = datetime.now(UTC)
    return schemas.SimulationIn.model_validate({"from": (now - timedelta(days=30)).isoformat(),
                                                "to": now.isoformat(), **fields})


def test_a_proposal_adds_replaces_and_removes() -> None:
    proposal = propose(stored(DOUBLE, BASKET, WELCOME), simulation_in(rules=[TRIPLE, BIRTHDAY], remove=["welcome"]))
    assert sorted(row.rule_id for row in proposal.rows) == ["basket", "birthday", "double"]
    assert proposal.changes == {"welcome": "removed", "double": "replaced", "birthday": "added"}
    assert next(row for row in proposal.rows if row.rule_id == "double").definition["factor"] == "3"
    assert proposal.skipped == []


def test_a_goal_is_accepted_and_skipped() -> None:
    goal = {"rule_id": "coffee-card", "kind": "goal", "metric": "purchases", "target": "10", "period": "rolling",
            "reward": {"points": 100}}
    proposal = propose([], simulation_in(rules=[goal]))
    assert proposal.skipped == ["coffee-card"]
    assert rules.parse_rules(proposal.rows) == ([], [])


@pytest.mark.parametrize(("body", "loc"), [
    ({"remove": ["nope"]}, ["body", "remove", 0]),
    ({"rules": [{**BASKET, "rule_id": "double"}]}, ["body", "rules", 0, "kind"]),
])
def test_a_proposal_the_rules_cannot_take_is_refused(body: dict[str, Any], loc: list[Any]) -> None:
    with pytest.raises(LoyaltyError) as refused:
        propose(stored(DOUBLE), simulation_in(**body))
    assert refused.value.status == 422 and refused.value.extra["errors"][0]["loc"] == loc


# --- properties ----------------------------------------------------------------------------------------------

CATEGORIES = st.sampled_from(["grocery", "coffee", None])
AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2)
LINES = st.lists(st.tuples(AMOUNTS.map(str), CATEGORIES), min_size=1, max_size=4)
PURCHASES = st.lists(st.tuples(st.sampled_from(["A", "B", "C", "D"]), LINES, st.integers(0, 90), st.booleans(),
                               st.sampled_from(["1", "1.25", "2"])), max_size=25).map(lambda drawn: [
    bought(f"p{i}", member, *lines, at=MONDAY + timedelta(hours=hours), first=first, tier_multiplier=tier,
           birth_month=11) for i, (member, lines, hours, first, tier) in enumerate(drawn)])
LIMITS = st.one_of(st.none(), st.fixed_dictionaries({"per_member_points": st.integers(1, 200)}),
                   st.fixed_dictionaries({"budget_points": st.integers(1, 500)}))
MULTIPLIERS = st.builds(lambda i, factor, category, limits: {
    "rule_id": f"m{i}", "kind": "multiplier", "factor": factor, "match": {"categories": [category]},
    **({"limits": limits} if limits else {})},
    st.integers(0, 3), st.sampled_from(["0.5", "1.5", "2", "3"]), st.sampled_from(["grocery", "coffee"]), LIMITS)
BONUSES = st.builds(lambda i, points, trigger, limits: {
    "rule_id": f"b{i}", "kind": "bonus", "points": points, "trigger": trigger,
    **({"min_spend": "25"} if trigger == "min_spend" else {}), **({"limits": limits} if limits else {})},
    st.integers(0, 3), st.integers(1, 100), st.sampled_from(["first_purchase", "min_spend", "birthday_month"]), LIMITS)
RULES = st.lists(st.one_of(MULTIPLIERS, BONUSES), max_size=5, unique_by=lambda rule: rule["rule_id"])


@settings(max_examples=150, deadline=None)
@given(purchases=PURCHASES, current=RULES, proposed=RULES)
def test_each_column_sums_to_its_total_and_no_change_changes_nothing(
        purchases: list[Replayed], current: list[dict[str, Any]], proposed: list[dict[str, Any]]) -> None:
    figures = replay(purchases, ruleset(*current), ruleset(*proposed), TERMS)
    assert sum(cur for _, cur, _ in figures.by_rule) == figures.current_points
    assert sum(prop for _, _, prop in figures.by_rule) == figures.proposed_points
    assert figures.members_changed <= figures.members <= figures.purchases == len(purchases)
    same = replay(purchases, ruleset(*current), ruleset(*current), TERMS)
    assert same.current_points == same.proposed_points == figures.current_points
    assert same.members_changed == 0 and same.liability_value_delta == 0
    assert all(cur == prop for _, cur, prop in same.by_rule)


@settings(max_examples=150, deadline=None)
@given(purchases=PURCHASES, found=RULES)
def test_without_limits_or_birthdays_the_replay_is_each_purchase_earning_alone(
        purchases: list[Replayed], found: list[dict[str, Any]]) -> None:
    """Limits and birthday bonuses carry from one purchase to the next in the replay; without them each
    purchase earns what ``compute_earning`` gives it alone, as a quote would."""
    plain = [rule for rule in found if "limits" not in rule and rule.get("trigger") != "birthday_month"]
    multipliers, bonuses = ruleset(*plain)
    alone = sum(domain.compute_earning(p.facts, points_per_unit=Decimal(1), multipliers=multipliers, bonuses=bonuses,
                                       tier_multiplier=p.tier_multiplier, member=p.member).points for p in purchases)
    assert replay(purchases, ruleset(), (multipliers, bonuses), TERMS).proposed_points == alone


@settings(max_examples=100, deadline=None)
@given(purchases=PURCHASES, found=RULES, factor=st.sampled_from(["1", "1.5", "4"]))
def test_a_promotion_of_at_least_one_never_lowers_anyone(purchases: list[Replayed], found: list[dict[str, Any]],
                                                         factor: str) -> None:
    plain = [rule for rule in found if "limits" not in rule]
    extra = {"rule_id": "zz-extra", "kind": "multiplier", "factor": factor, "match": {"categories": ["grocery"]}}
    run = simulation.Replay(ruleset(*plain), ruleset(*plain, extra), TERMS)
    run.add_all(purchases)
    assert all(change >= 0 for change in run.delta.values())


# --- the endpoint on PostgreSQL ---------------------------------------------------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=20)
WEEK = timedelta(days=7)


def at(days: float) -> str:
    return (START + timedelta(days=days)).isoformat()


def window(start: datetime = START, days: float = 7) -> dict[str, str]:
    return {"from": start.isoformat(), "to": (start + timedelta(days=days)).isoformat()}


SEEDED_RULES = [DOUBLE, WELCOME, {"rule_id": "app", "kind": "multiplier", "factor": "1.5",
                                  "match": {"channels": ["app"]}}]
# (member, total, lines, channel, day in the range)
BASKET_ROWS = [
    ("M1", "25.00", [("A-1", "grocery", 2, "10.00"), ("B-1", "toys", 1, "5.00")], "pos", 0.5),
    ("M1", "12.00", None, "app", 1.5),
    ("M2", "60.00", [("A-2", "grocery", 3, "20.00")], "pos", 2.5),
    ("M3", "7.50", None, "pos", 3.5),
    ("M2", "5.00", [("C-1", "coffee", 2, "2.50")], "app", 4.5),
]


def basket(index: int, shift: timedelta = timedelta(0), prefix: str = "p") -> dict[str, Any]:
    member, total, lines, channel, day = BASKET_ROWS[index]
    body = purchase(f"{prefix}{index}", member, total, channel=channel,
                    occurred_at=(START + timedelta(days=day) + shift).isoformat())
    if lines:
        body["lines"] = [{"sku": sku, "category": category, "quantity": quantity, "unit_price": price}
                         for sku, category, quantity, price in lines]
    return body


async def seeded(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The program, three rules, three members and the baskets in [START, START + 7 days); the answers."""
    assert (await client.put("/v1/program", json=program())).status_code == 200
    for rule in SEEDED_RULES:
        assert (await client.post("/v1/earning-rules", json=rule)).status_code == 201
    for member in ("M1", "M2", "M3"):
        await enroll(client, member)
    answers = []
    for index in range(len(BASKET_ROWS)):
        answer = await client.post("/v1/purchases", json=basket(index))
        assert answer.status_code == 201, answer.text
        answers.append(answer.json())
    return answers


async def simulate(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await client.post("/v1/earning-rules/simulate", json={**window(), **body})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def totals(answers: list[dict[str, Any]]) -> dict[str, int]:
    by_rule: dict[str, int] = {}
    for answer in answers:
        for item in answer["breakdown"]:
            by_rule[item["rule_id"]] = by_rule.get(item["rule_id"], 0) + item["points"]
    return by_rule


async def test_no_change_gives_what_the_purchases_earned(client: httpx.AsyncClient,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    answers = await seeded(client)
    monkeypatch.setattr(simulation, "BATCH", 2)  # several batches of the stream
    result = await simulate(client)
    earned = sum(answer["points_earned"] for answer in answers)
    assert (result["purchases"], result["members"], result["members_changed"]) == (5, 3, 0)
    assert result["current"] == result["proposed"] == {"points": earned}
    assert result["liability_value_delta"] == "0.00" and result["currency"] == "USD"
    assert {item["rule_id"]: item["current_points"] for item in result["by_rule"]} == {
        "tier": 0, **totals(answers)}
    assert all(item["points"] == item["current_points"] and item["change"] is None for item in result["by_rule"])
    before = await simulate(client, **window(START - timedelta(days=30), 30))
    assert (before["purchases"], before["members"], before["current"]) == (0, 0, {"points": 0})


async def test_the_proposal_gives_what_the_purchases_earn_once_it_is_made(client: httpx.AsyncClient) -> None:
    answers = await seeded(client)
    proposal = {"rules": [TRIPLE, BASKET], "remove": ["welcome"]}
    result = await simulate(client, **proposal)
    assert result["current"]["points"] == sum(answer["points_earned"] for answer in answers)
    changes = {item["rule_id"]: item["change"] for item in result["by_rule"]}
    assert changes == {"base": None, "tier": None, "app": None, "basket": "added", "double": "replaced",
                       "welcome": "removed"}

    # Made for real, the same baskets a week later (the same weekdays) earn what the simulation said.
    assert (await client.patch("/v1/earning-rules/double", json={"factor": "3"})).status_code == 200
    assert (await client.post("/v1/earning-rules", json=BASKET)).status_code == 201
    assert (await client.delete("/v1/earning-rules/welcome")).status_code == 204
    later = []
    for index in range(len(BASKET_ROWS)):
        answer = await client.post("/v1/purchases", json=basket(index, WEEK, prefix="q"))
        assert answer.status_code == 201, answer.text
        later.append(answer.json())
    assert result["proposed"]["points"] == sum(answer["points_earned"] for answer in later)
    proposed = {item["rule_id"]: item["points"] for item in result["by_rule"] if item["points"]}
    assert proposed == {rule_id: points for rule_id, points in totals(later).items() if points}
    delta = result["proposed"]["points"] - result["current"]["points"]
    assert result["liability_value_delta"] == str((Decimal(delta) / 100).quantize(Decimal("0.01")))
    assert result["members_changed"] == 3


async def test_nothing_is_written(client: httpx.AsyncClient) -> None:
    await seeded(client)
    limited = {**TRIPLE, "limits": {"per_member_points": 20, "budget_points": 25}}

    async def state() -> dict[str, Any]:
        engine = create_async_engine(service_db_url("points"))
        try:
            async with engine.connect() as connection:
                return {table.name: sorted(map(repr, (await connection.execute(table.select())).all()))
                        for table in Base.metadata.sorted_tables}
        finally:
            await engine.dispose()

    before = await state()
    result = await simulate(client, rules=[limited, BASKET], remove=["app"])
    assert {item["rule_id"]: item["points"] for item in result["by_rule"]}["double"] == 25  # the budget binds
    assert await state() == before


async def test_a_goal_rule_is_skipped(client: httpx.AsyncClient) -> None:
    await seeded(client)
    goal = {"rule_id": "coffee-card", "kind": "goal", "metric": "purchases", "target": "10", "period": "rolling",
            "reward": {"points": 100}}
    result = await simulate(client, rules=[goal])
    assert result["skipped"] == ["coffee-card"]
    assert result["current"] == result["proposed"]


def days_after(days: float) -> dict[str, str]:
    return {"from": START.isoformat(), "to": (START + timedelta(days=days)).isoformat()}


@pytest.mark.parametrize(("body", "says"), [
    ({**days_after(0)}, "to must be after from"),
    ({**days_after(-1)}, "to must be after from"),
    ({"from": (NOW - timedelta(days=400)).isoformat(), "to": NOW.isoformat()}, "at most 366 days"),
    ({"from": "2026-11-01", "to": NOW.isoformat()}, "from"),
    ({"to": NOW.isoformat()}, "from"),
    ({**days_after(7), "rules": [{**DOUBLE, "factor": "0"}]}, "greater than 0"),
    ({**days_after(7), "rules": [{"rule_id": "x", "kind": "nope"}]}, "kind"),
    ({**days_after(7), "rules": [DOUBLE, TRIPLE]}, "appears twice"),
    ({**days_after(7), "rules": [DOUBLE], "remove": ["double"]}, "both in rules and in remove"),
    ({**days_after(7), "remove": ["not-stored"]}, "no earning rule 'not-stored'"),
    ({**days_after(7), "rules": [{**BASKET, "rule_id": "double"}]}, "never used for another kind"),
    ({**days_after(7), "extra": 1}, "extra"),
])
async def test_bad_bodies_are_refused(client: httpx.AsyncClient, body: dict[str, Any], says: str) -> None:
    await seeded(client)
    answer = await client.post("/v1/earning-rules/simulate", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"] == "/problems/validation-error"
    assert says in json.dumps(answer.json())


async def test_only_admin_keys_may_simulate(empty_db: Callable[[str], Awaitable[str]], tmp_path: Path) -> None:
    await empty_db("points")
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([{"name": "till", "key_sha256": hash_key("till-key"),
                                 "scopes": ["purchases:write", "members:read"]}]))
    async with service_client("points", api_keys_file=keys) as (_, client):
        refused = await client.post("/v1/earning-rules/simulate", json=window(),
                                    headers={"Authorization": "Bearer till-key"})
        assert refused.status_code == 403 and refused.json()["type"] == "/problems/forbidden"
        unknown = await client.post("/v1/earning-rules/simulate", json=window(), headers={"Authorization": ""})
        assert unknown.status_code == 401
        assert (await client.post("/v1/earning-rules/simulate", json=window())).status_code == 200


async def test_the_openapi_has_the_route_before_the_rule_ids(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/earning-rules/simulate"]["post"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Simulation")
    assert (await client.get("/v1/earning-rules/simulate")).status_code in (404, 405)


async def test_postgresql_and_sqlite_simulate_alike(client: httpx.AsyncClient, tmp_path: Path) -> None:
    await seeded(client)
    body = {"rules": [TRIPLE, BASKET], "remove": ["welcome"]}
    on_postgresql = await simulate(client, **body)
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'points.db'}"
    await asyncio.to_thread(upgrade, "points", sqlite_url)
    async with service_client("points", database_url=sqlite_url) as (_, on_file):
        await seeded(on_file)
        assert await simulate(on_file, **body) == on_postgresql
