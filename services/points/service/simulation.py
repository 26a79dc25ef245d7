"""Simulation of earning rule changes: the purchases of a range replayed through today's rules and through
proposed ones, with nothing written (docs/simulation.md).

``Replay`` is the pure half: each purchase goes through the one earning function (``domain.compute_earning``)
once per set of rules, then through the rules' limits counted in memory. ``simulate`` reads what it needs in
one read-only transaction, the purchases as one streaming statement, and feeds the replay batch by batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from types import SimpleNamespace
from typing import Any, Literal, NamedTuple

from sqlalchemy import ColumnElement, DateTime, Numeric, Select, and_, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points import domain, schemas
from services.points.models import EarningRule, Member, Program, Purchase, table_of
from services.points.service import earning, limits, rules
from services.points.service.program import DEFAULT_PROGRAM, zone_of
from shared.db.database import Database
from shared.errors import InvalidRequest, LoyaltyError
from shared.http.types import currency_decimals

BATCH = 5_000  # rows fetched, and replayed in a worker thread, at a time
Change = Literal["added", "replaced", "removed"]


# --- the pure half ---------------------------------------------------------------------------------------


class Replayed(NamedTuple):
    """A stored purchase as the replay reads it (a named tuple: one is made per purchase)."""

    purchase_id: str
    member_id: str
    facts: domain.PurchaseFacts
    member: domain.MemberFacts  # as points knows the member now; ``first_purchase``: the member's first recorded
    tier_multiplier: Decimal = Decimal(1)


@dataclass(frozen=True)
class Terms:
    """What the program says about earning (today's settings)."""

    points_per_unit: Decimal
    excluded_categories: frozenset[str] = frozenset()
    time_zone: tzinfo = UTC
    max_points: int = domain.MAX_POINTS_PER_PURCHASE
    point_value: Decimal = Decimal("0.01")
    currency: str = "USD"
    earn_on_points_paid: bool = False


@dataclass(frozen=True)
class Figures:
    purchases: int
    members: int
    members_changed: int  # members whose points differ between the two sets of rules
    current_points: int
    proposed_points: int
    by_rule: list[tuple[str, int, int]]  # (rule_id, current points, proposed points): base, tier, then by id
    liability_value_delta: Decimal  # (proposed - current) x point value, in the currency's minor unit


class _Side:
    """One set of rules replayed: what it gave, and what its limits and birthday bonuses have counted so far
    (from zero at the start of the range)."""

    def __init__(self, found: rules.ActiveRules, terms: Terms) -> None:
        self.multipliers, self.bonuses = found
        self.limits = rules.limits_of(found)
        self.rule_ids = sorted({rule.rule_id for rule in self.multipliers} | {rule.rule_id for rule in self.bonuses})
        self.terms = terms
        self.points = 0
        self.by_rule: dict[str, int] = {}
        self.member_used: dict[tuple[str, str, str], int] = {}
        self.budget_used: dict[str, int] = {}
        self.birthday_year: dict[str, int] = {}  # by member: the year a birthday bonus was given in the replay

    def earn(self, purchase: Replayed) -> int:
        terms, member = self.terms, purchase.member
        if member.birth_month is not None:
            member = replace(member, birthday_bonus_year=self.birthday_year.get(purchase.member_id))
        earned = domain.compute_earning(
            purchase.facts, points_per_unit=terms.points_per_unit, excluded_categories=terms.excluded_categories,
            multipliers=self.multipliers, bonuses=self.bonuses, tier_multiplier=purchase.tier_multiplier,
            member=member, time_zone=terms.time_zone, max_points=terms.max_points)
        if self.limits:
            earned = self._within_limits(earned, purchase)
        if earned.birthday_year is not None:
            self.birthday_year[purchase.member_id] = earned.birthday_year
        for rule_id, points in earned.breakdown:
            self.by_rule[rule_id] = self.by_rule.get(rule_id, 0) + points
        self.points += earned.points
        return earned.points

    def _within_limits(self, earned: domain.Earning, purchase: Replayed) -> domain.Earning:
        """As ``limits.allowed`` takes for a purchase, counted in memory."""
        items = limits.limited_items(earned, self.limits)
        if not items:
            return earned
        local = purchase.facts.occurred_at.astimezone(self.terms.time_zone)
        grants: dict[str, int] = {}
        cut = False
        for rule_id, points, limit in items:
            key = (rule_id, purchase.member_id, domain.period_key(local, limit.per_member_period))
            grant = domain.allowance(points, limit, member_used=self.member_used.get(key, 0),
                                     budget_used=self.budget_used.get(rule_id, 0))
            grants[rule_id] = grant
            cut = cut or grant < points
            if grant:
                self.member_used[key] = self.member_used.get(key, 0) + grant
                self.budget_used[rule_id] = self.budget_used.get(rule_id, 0) + grant
        return domain.within_limits(earned, grants, self.bonuses) if cut else earned


class Replay:
    """Purchases added in the order they were recorded, through both sets of rules."""

    def __init__(self, current: rules.ActiveRules, proposed: rules.ActiveRules, terms: Terms) -> None:
        self.terms = terms
        self.current = _Side(current, terms)
        self.proposed = _Side(proposed, terms)
        self.purchases = 0
        self.delta: dict[str, int] = {}  # by member: proposed - current

    def add(self, purchase: Replayed) -> None:
        change = self.proposed.earn(purchase) - self.current.earn(purchase)
        self.purchases += 1
        self.delta[purchase.member_id] = self.delta.get(purchase.member_id, 0) + change

    def add_all(self, purchases: Iterable[Replayed]) -> None:
        for purchase in purchases:
            self.add(purchase)

    def figures(self) -> Figures:
        current, proposed = self.current, self.proposed
        named = sorted(set(current.rule_ids) | set(proposed.rule_ids)
                       | (set(current.by_rule) | set(proposed.by_rule)) - {domain.BASE, domain.TIER})
        by_rule = [(rule_id, current.by_rule.get(rule_id, 0), proposed.by_rule.get(rule_id, 0))
                   for rule_id in (domain.BASE, domain.TIER, *named)]
        places = Decimal(1).scaleb(-currency_decimals(self.terms.currency))
        value = (Decimal(proposed.points - current.points) * self.terms.point_value).quantize(
            places, rounding=ROUND_HALF_EVEN)
        return Figures(purchases=self.purchases, members=len(self.delta),
                       members_changed=sum(1 for change in self.delta.values() if change),
                       current_points=current.points, proposed_points=proposed.points, by_rule=by_rule,
                       liability_value_delta=value)


def replay(purchases: Iterable[Replayed], current: rules.ActiveRules, proposed: rules.ActiveRules,
           terms: Terms) -> Figures:
    """The figures of ``purchases`` (in the order they were recorded) under ``current`` and ``proposed``."""
    run = Replay(current, proposed, terms)
    run.add_all(purchases)
    return run.figures()


@dataclass
class Proposal:
    """The stored rules with the body's changes made: rows as ``rules.parse_rules`` reads them."""

    rows: list[Any]
    changes: dict[str, Change] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # goal rules: settled per period, not replayed


def _invalid(loc: list[str | int], message: str) -> LoyaltyError:
    return InvalidRequest(f"{'.'.join(str(part) for part in loc[1:])}: {message}",
                          errors=[{"loc": loc, "msg": message}])


def propose(stored: Sequence[Any], body: schemas.SimulationIn) -> Proposal:
    """A rule of the body with a stored rule's id replaces it (of the same kind: ids are never reused for
    another kind), a new id is added, an id in ``remove`` is taken out (it must be stored)."""
    by_id = {rule.rule_id: rule for rule in stored}
    for index, rule_id in enumerate(body.remove):
        if rule_id not in by_id:
            raise _invalid(["body", "remove", index], f"there is no earning rule '{rule_id}' to remove")
    changes: dict[str, Change] = dict.fromkeys(body.remove, "removed")
    rows = {rule_id: rule for rule_id, rule in by_id.items() if rule_id not in changes}
    skipped: list[str] = []
    for index, rule in enumerate(body.rules):
        existing = by_id.get(rule.rule_id)
        if existing is not None and existing.kind != rule.kind:
            raise _invalid(["body", "rules", index, "kind"],
                           f"'{rule.rule_id}' is a {existing.kind} rule; a rule id is never used for another kind")
        changes[rule.rule_id] = "added" if existing is None else "replaced"
        if rule.kind == "goal":
            skipped.append(rule.rule_id)
        rows[rule.rule_id] = SimpleNamespace(
            rule_id=rule.rule_id, kind=rule.kind,
            definition=rule.model_dump(mode="json", exclude={"rule_id", "kind"}, exclude_none=True))
    return Proposal(list(rows.values()), changes, skipped)


# --- reading the purchases ------------------------------------------------------------------------------


def terms_of(program: Any) -> Terms:
    """``program``: the program row, or anything with its columns."""
    return Terms(points_per_unit=program.points_per_unit, excluded_categories=frozenset(program.excluded_categories),
                 time_zone=zone_of(program.time_zone), max_points=program.max_points_per_purchase,
                 point_value=program.point_value, currency=program.currency,
                 earn_on_points_paid=program.earn_on_points_paid)


def purchases_query(start: datetime, end: datetime, dialect: str = "postgresql") -> Select[Any]:
    """The purchases with ``occurred_at`` in [start, end), in the order they were recorded, with their member's
    facts and whether each was its member's first recorded purchase (``first``)."""
    p, m = table_of(Purchase), table_of(Member)
    occurred: ColumnElement[Any] = p.c.occurred_at
    total: ColumnElement[Any] = p.c.total
    paid: ColumnElement[Any] = p.c.points_paid_value
    if dialect == "postgresql":  # asyncpg gives aware datetimes and decimals itself: no converter per value
        occurred = type_coerce(occurred, DateTime(timezone=True)).label("occurred_at")
        total = type_coerce(total, Numeric(20, 4, asdecimal=True)).label("total")
        paid = type_coerce(paid, Numeric(20, 4, asdecimal=True)).label("points_paid_value")
    buyers, every = p.alias("buyer"), p.alias("every")
    ranked = (select(every.c.purchase_id, func.row_number().over(
        partition_by=every.c.member_id, order_by=(every.c.recorded_at, every.c.purchase_id)).label("n"))
        .where(every.c.member_id.in_(select(buyers.c.member_id).where(
            buyers.c.occurred_at >= start, buyers.c.occurred_at < end)))
        .subquery("ranked"))
    firsts = select(ranked.c.purchase_id).where(ranked.c.n == 1).subquery("firsts")
    return (
        # The purchase's columns first, in the order ``Reader.replayed`` unpacks them; the member's after.
        select(p.c.purchase_id, p.c.member_id.label("buyer_id"), p.c.store_id, p.c.channel, occurred, total,
               p.c.lines, paid, firsts.c.purchase_id.is_not(None).label("first"),
               m.c.earn_multiplier, m.c.purchase_count, m.c.birth_date, m.c.birthday_bonus_year,
               *earning.audience_columns(m))
        .select_from(p.join(m, m.c.member_id == p.c.member_id)
                     .outerjoin(firsts, firsts.c.purchase_id == p.c.purchase_id))
        .where(and_(p.c.occurred_at >= start, p.c.occurred_at < end))
        .order_by(p.c.recorded_at, p.c.purchase_id)
    )


def stored_lines(stored: list[dict[str, Any]] | None, total: Decimal, points_paid_value: Decimal, terms: Terms
                 ) -> tuple[domain.Line, ...]:
    """The lines a purchase earned on, from what it stored (as ``earning.earning_of`` reads a body)."""
    lines = tuple([domain.Line(Decimal(line["unit_price"]) * int(line["quantity"]), line.get("category"),
                               line.get("sku")) for line in stored]) if stored else (domain.Line(total),)
    if points_paid_value and not terms.earn_on_points_paid:
        lines = domain.net_of_points_paid(lines, points_paid_value)
    return lines


class Reader:
    """Rows into ``Replayed``; a member's facts are made once."""

    def __init__(self, terms: Terms) -> None:
        self.terms = terms
        self.members: dict[str, domain.MemberFacts] = {}

    def replayed(self, row: Any) -> Replayed:
        # By position: a row's attributes cost about as much as the rest of this together.
        purchase_id, buyer_id, store_id, channel, occurred_at, total, lines, paid, first, multiplier = row[:10]
        member = self.members.get(buyer_id)
        if member is None:
            member = replace(earning.member_facts(row), first_purchase=False, birthday_bonus_year=None)
            self.members[buyer_id] = member
        if first:
            member = replace(member, first_purchase=True)
        facts = domain.PurchaseFacts(lines=stored_lines(lines, total, paid, self.terms), occurred_at=occurred_at,
                                     store_id=store_id, channel=channel)
        return Replayed(purchase_id, buyer_id, facts, member, multiplier)


@asynccontextmanager
async def read_only(db: Database) -> AsyncIterator[AsyncConnection]:
    """One snapshot for the rules, the program and every purchase, taking no lock: on PostgreSQL a
    REPEATABLE READ, READ ONLY transaction."""
    async with db.engine.connect() as connection:
        if db.dialect == "postgresql":
            connection = await connection.execution_options(isolation_level="REPEATABLE READ",
                                                            postgresql_readonly=True)
        async with connection.begin():
            yield connection


async def simulate(db: Database, body: schemas.SimulationIn) -> schemas.Simulation:
    """The contract's figures for ``body``; nothing is written or counted."""
    async with read_only(db) as connection:
        program = (await connection.execute(select(table_of(Program)).where(Program.id == 1))).first()
        stored = (await connection.execute(select(EarningRule.rule_id, EarningRule.kind, EarningRule.definition)
                                           .where(EarningRule.deleted_at.is_(None)))).all()
        proposal = propose(stored, body)
        terms = terms_of(program if program is not None else SimpleNamespace(**DEFAULT_PROGRAM))
        run = Replay(rules.parse_rules(stored), rules.parse_rules(proposal.rows), terms)
        reader = Reader(terms)
        query = purchases_query(body.from_, body.to, db.dialect).execution_options(yield_per=BATCH)
        result = await connection.stream(query)
        # Each batch is replayed in a worker thread while the next one is fetched, so that the event loop goes
        # on answering other requests meanwhile; one batch at a time touches the replay.
        replaying: asyncio.Future[None] | None = None
        try:
            async for batch in result.partitions():
                if replaying is not None:
                    await replaying
                replaying = asyncio.ensure_future(asyncio.to_thread(run.add_all, map(reader.replayed, batch)))
        finally:
            if replaying is not None:
                await replaying
    return answer(run.figures(), proposal, terms)


def answer(figures: Figures, proposal: Proposal, terms: Terms) -> schemas.Simulation:
    return schemas.Simulation(
        purchases=figures.purchases, members=figures.members, members_changed=figures.members_changed,
        current=schemas.SimulatedPoints(points=figures.current_points),
        proposed=schemas.SimulatedPoints(points=figures.proposed_points),
        by_rule=[schemas.SimulatedRule(rule_id=rule_id, points=proposed, current_points=current,
                                       change=proposal.changes.get(rule_id))
                 for rule_id, current, proposed in figures.by_rule],
        liability_value_delta=figures.liability_value_delta, currency=terms.currency,
        skipped=proposal.skipped)
