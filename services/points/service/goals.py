"""Goals: a target reached over a calendar period or on a rolling card, settled by points' minute job.

A period is settled only after it has ended and its return window (``pending_days``) has passed, on what its
purchases count then, net of the refunds made so far: an order placed to reach a quarter's target and
returned inside the window never earns the rebate. Each member's settlement is one transaction under the
member's row lock whose ``goal_settlement`` primary key (rule, member, period) makes a second one
impossible, so a job that crashes half-way (or runs in two processes at once) settles the rest when it runs
again and nobody twice. A calendar period is marked done (``goal_period``) once all its members are.

A rolling goal (a stamp card) counts every purchase since the goal began, once past its return window;
each time the count passes another multiple of the target, another card is filled (``rolling-1``,
``rolling-2``...). A refund lowers the count, so a card filled by a returned purchase is taken off the next.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, schemas
from services.points.models import EarningRule, GoalPeriod, GoalSettlement, Program, Purchase, table_of
from services.points.service import OUTBOX, earning, ledger, rules
from services.points.service.members import get_member, locked_member, snapshot
from services.points.service.program import get_program, zone_of
from shared.clock import utcnow
from shared.db.database import Database
from shared.db.statements import insert_ignoring_conflicts
from shared.messaging import events

log = logging.getLogger(__name__)

ROLLING = "rolling"
# Purchases committed a little after the last scan began may carry an earlier time: look back this far.
SCAN_OVERLAP = timedelta(minutes=10)


def goal_id(rule_id: str, member_id: str, period: str) -> str:
    """The settlement's id: the same for the same settlement, different for any other (rewards' redemption id
    of a goal's voucher)."""
    return "goal-" + hashlib.sha256(f"{rule_id}\x1f{member_id}\x1f{period}".encode()).hexdigest()[:24]


def purchase_facts(row: Any) -> domain.GoalPurchase:
    """A stored purchase as a goal counts it."""
    lines = tuple(domain.Line(Decimal(line["unit_price"]) * line["quantity"], line.get("category"), line["sku"])
                  for line in row.lines) if row.lines else (domain.Line(row.total),)
    return domain.GoalPurchase(domain.PurchaseFacts(lines=lines, occurred_at=row.occurred_at,
                                                    store_id=row.store_id, channel=row.channel),
                               refunded=row.refunded_amount)


_COLUMNS = (Purchase.member_id, Purchase.occurred_at, Purchase.total, Purchase.refunded_amount, Purchase.lines,
            Purchase.store_id, Purchase.channel)


def shown(goal: domain.GoalRule, value: Decimal) -> Decimal:
    """A goal's figure as answered: a whole count of purchases, or spend to the cent."""
    return value.quantize(Decimal(1) if goal.metric == "purchases" else domain.CENTS)


def _first_moment(rule: EarningRule, goal: domain.GoalRule) -> datetime:
    return goal.window.valid_from or rule.created_at


# --- the job ------------------------------------------------------------------------------------------


async def settle_goals(db: Database, now: datetime | None = None) -> int:
    """Settle what is due of every goal; returns how many settlements were made."""
    now = now or utcnow()
    async with db.read() as session:
        found = await rules.goal_rules(session)
        program = await get_program(session) if found else None
    made = 0
    for rule, goal in found:
        assert program is not None
        if goal.period == ROLLING:
            made += await _settle_rolling(db, rule, goal, program, now)
        else:
            made += await _settle_calendar(db, rule, goal, program, now)
    return made


async def _settle_calendar(db: Database, rule: EarningRule, goal: domain.GoalRule, program: Program,
                           now: datetime) -> int:
    zone = zone_of(program.time_zone)
    async with db.read() as session:
        done = set(await session.scalars(select(GoalPeriod.period).where(GoalPeriod.rule_id == rule.rule_id)))
    made = 0
    for key, start, end in domain.closed_periods(goal, _first_moment(rule, goal), now, program.pending_days, zone):
        if goal.window.valid_until is not None and start >= goal.window.valid_until:
            break
        if key in done:
            continue
        async with db.read() as session:
            rows = await session.execute(select(*_COLUMNS).where(
                Purchase.occurred_at >= start.astimezone(UTC), Purchase.occurred_at < end.astimezone(UTC)))
            by_member = _by_member(rows)
        for member_id, purchases in sorted(by_member.items()):
            progress = domain.goal_progress(goal, _eligible(purchases, program), zone)
            if progress >= goal.target:
                made += await _settle(db, goal, program, member_id, key, progress,
                                      _spend(goal, purchases, program, zone))
        async with db.transaction() as session:
            await session.execute(insert_ignoring_conflicts(table_of(GoalPeriod), session.get_bind().dialect.name)
                                  .values(rule_id=rule.rule_id, period=key, settled_at=utcnow()))
    return made


async def _settle_rolling(db: Database, rule: EarningRule, goal: domain.GoalRule, program: Program,
                          now: datetime) -> int:
    """Members whose purchases matured or arrived since the last scan are counted again from the start."""
    zone = zone_of(program.time_zone)
    matured = now - timedelta(days=program.pending_days)
    async with db.read() as session:
        scanned = await session.scalar(select(GoalPeriod.settled_at).where(GoalPeriod.rule_id == rule.rule_id,
                                                                           GoalPeriod.period == ROLLING))
        query = select(Purchase.member_id).distinct().where(Purchase.occurred_at >= _first_moment(rule, goal),
                                                             Purchase.occurred_at <= matured)
        if scanned is not None:
            since = scanned - SCAN_OVERLAP
            query = query.where(or_(Purchase.occurred_at > since - timedelta(days=program.pending_days),
                                    Purchase.recorded_at > since))
        candidates = sorted(await session.scalars(query))
    made = 0
    for member_id in candidates:
        async with db.read() as session:
            purchases = [purchase_facts(row) for row in await session.execute(select(*_COLUMNS).where(
                Purchase.member_id == member_id, Purchase.occurred_at >= _first_moment(rule, goal),
                Purchase.occurred_at <= matured))]
            filled = await session.scalar(select(func.count()).select_from(GoalSettlement).where(
                GoalSettlement.rule_id == rule.rule_id, GoalSettlement.member_id == member_id))
        progress = domain.goal_progress(goal, _eligible(purchases, program), zone)
        for card in range(int(filled or 0) + 1, domain.cards_filled(progress, goal.target) + 1):
            made += await _settle(db, goal, program, member_id, f"{ROLLING}-{card}", goal.target, goal.target)
    async with db.transaction() as session:
        dialect = session.get_bind().dialect.name
        await session.execute(insert_ignoring_conflicts(table_of(GoalPeriod), dialect).values(
            rule_id=rule.rule_id, period=ROLLING, settled_at=now))
        await session.execute(update(GoalPeriod).where(GoalPeriod.rule_id == rule.rule_id,
                                                       GoalPeriod.period == ROLLING).values(settled_at=now))
    return made


def _by_member(rows: Iterable[Any]) -> dict[str, list[domain.GoalPurchase]]:
    out: dict[str, list[domain.GoalPurchase]] = defaultdict(list)
    for row in rows:
        out[row.member_id].append(purchase_facts(row))
    return out


def _eligible(purchases: list[domain.GoalPurchase], program: Program) -> list[domain.GoalPurchase]:
    """Lines of the program's excluded categories count towards no goal, as they earn no points."""
    excluded = set(program.excluded_categories)
    if not excluded:
        return purchases
    out = []
    for purchase in purchases:
        facts = purchase.facts
        lines = tuple(line for line in facts.lines if line.category not in excluded)
        if lines:
            refunded = purchase.refunded * sum((ln.amount for ln in lines), Decimal(0)) / facts.total \
                if facts.total else Decimal(0)
            out.append(domain.GoalPurchase(
                domain.PurchaseFacts(lines=lines, occurred_at=facts.occurred_at, store_id=facts.store_id,
                                     channel=facts.channel), refunded=refunded))
    return out


def _spend(goal: domain.GoalRule, purchases: list[domain.GoalPurchase], program: Program, zone: Any) -> Decimal:
    """The spend a rebate is a share of: what the goal counted, as spend (also for a purchases goal)."""
    as_spend = dataclasses.replace(goal, metric="spend")
    return domain.goal_progress(as_spend, _eligible(purchases, program), zone)


async def _settle(db: Database, goal: domain.GoalRule, program: Program, member_id: str, period: str,
                  progress: Decimal, spend: Decimal) -> int:
    """One member's settlement of one period, in its own transaction; 0 when it was made before, or the
    member is not (or no longer) one the goal is for."""
    async with db.transaction() as session:
        member = await locked_member(session, member_id)
        facts = earning.member_facts(member)
        if member.status != "active" or not goal.audience.admits(facts, utcnow()) \
                or domain.held_out(goal.rule_id, member_id, goal.holdout_pct):
            return 0
        settlement_id = goal_id(goal.rule_id, member_id, period)
        now = utcnow()
        claimed = await session.scalar(
            insert_ignoring_conflicts(table_of(GoalSettlement), session.get_bind().dialect.name).values(
                rule_id=goal.rule_id, member_id=member_id, period=period, goal_id=settlement_id,
                progress=progress, points=0, reward_id=goal.reward_id, settled_at=now,
            ).returning(table_of(GoalSettlement).c.goal_id))
        if claimed is None:
            return 0  # settled before
        points = domain.goal_points(goal, spend, program.point_value)
        if points:
            entry, _ = await ledger.credit(session, member, "bonus", points, rule_ids=[goal.rule_id],
                                           expires_at=domain.expiry_for(now, program.expiry_days),
                                           note=f"goal {period} ({settlement_id})")
            await session.execute(update(GoalSettlement).where(GoalSettlement.goal_id == settlement_id)
                                  .values(points=points, entry_id=entry.entry_id))
            await OUTBOX.add(session, events.PointsEarned(
                member_id=member_id, points=points, balance=snapshot(member), occurred_at=now, kind="bonus",
                rule_ids=[goal.rule_id]))
        await OUTBOX.add(session, events.GoalReached(
            member_id=member_id, goal_id=settlement_id, rule_id=goal.rule_id, period=period, metric=goal.metric,
            progress=shown(goal, progress), target=goal.target, points=points, reward_id=goal.reward_id))
    log.info("goal settled: rule %s, period %s, %d points", goal.rule_id, period, points)
    return 1


# --- progress -----------------------------------------------------------------------------------------


async def member_goals(session: AsyncSession, member_id: str) -> schemas.MemberGoals:
    """Each goal the member is in, with what counts so far in its current period (purchases still inside
    their return window included: they count once it has passed, unless refunded)."""
    member = await get_member(session, member_id)
    found = await rules.goal_rules(session)
    program = await get_program(session)
    zone = zone_of(program.time_zone)
    now = utcnow()
    facts = earning.member_facts(member)
    items = []
    for rule, goal in found:
        if goal.window.valid_until is not None and goal.window.valid_until <= now:
            continue
        if not goal.audience.admits(facts, now) or domain.held_out(goal.rule_id, member_id, goal.holdout_pct):
            continue
        first = _first_moment(rule, goal)
        if goal.period == ROLLING:
            start, end, key = first, None, None
        else:
            key, local_start, local_end = domain.goal_period(max(now, first).astimezone(zone), goal.period)
            start, end = local_start.astimezone(UTC), local_end.astimezone(UTC)
        rows = await session.execute(select(*_COLUMNS).where(Purchase.member_id == member_id,
                                                             Purchase.occurred_at >= start))
        purchases = [purchase_facts(row) for row in rows if end is None or row.occurred_at < end]
        progress = domain.goal_progress(goal, _eligible(purchases, program), zone)
        settled = list(await session.scalars(select(GoalSettlement.period).where(
            GoalSettlement.rule_id == rule.rule_id, GoalSettlement.member_id == member_id)
            .order_by(GoalSettlement.settled_at)))
        if goal.period == ROLLING:
            progress -= goal.target * len(settled)
            key = f"{ROLLING}-{len(settled) + 1}"
        items.append(schemas.GoalProgress(
            rule_id=rule.rule_id, metric=goal.metric, period=goal.period, period_key=key or "",
            progress=shown(goal, progress), target=goal.target, period_end=end, reward=rule.definition["reward"],
            settled=settled))
    return schemas.MemberGoals(member_id=member_id, goals=items)
