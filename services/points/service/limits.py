"""The limits of earning rules: what a rule may still give a member in its period and out of its budget,
taken in the purchase's transaction so that concurrent purchases never give more than the budget, and given
back by refunds. Rules without limits never come here (the common purchase does not pay for this)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain
from services.points.models import EarningRule, Purchase, RuleBudget, RuleMemberUsage, table_of
from services.points.service import rules
from shared.db.statements import insert_ignoring_conflicts, upsert
from shared.metrics import RULE_BUDGET_USED, RULE_EXHAUSTED

# A purchase's record of what its limited rules gave: [rule_id, points, period, points given back since].
Record = list[list[Any]]


def limited_items(earned: domain.Earning, limits: dict[str, domain.Limits]) -> list[tuple[str, int, domain.Limits]]:
    """The breakdown's items that a rule with limits gave (a positive number of points), in rule id order,
    which is the order their budget rows are locked in."""
    return sorted((rule_id, points, limits[rule_id]) for rule_id, points in earned.breakdown
                  if points > 0 and rule_id in limits)


async def apply(session: AsyncSession, earned: domain.Earning, found: rules.ActiveRules, member_id: str,
                occurred_at: datetime, zone: tzinfo, *, take: bool) -> tuple[domain.Earning, Record]:
    """``earned`` within the limits of the rules that gave it, and the record a purchase keeps (``take``) of
    what its limited rules gave; a quote (not ``take``) only reads what is left."""
    items = limited_items(earned, rules.limits_of(found))
    if not items:
        return earned, []
    grants, record = await allowed(session, member_id, items, occurred_at.astimezone(zone), take=take)
    return domain.within_limits(earned, grants, found[1]), record


async def _member_used(session: AsyncSession, rule_id: str, member_id: str, period: str) -> int:
    used = (await session.execute(select(RuleMemberUsage.used).where(
        RuleMemberUsage.rule_id == rule_id, RuleMemberUsage.member_id == member_id,
        RuleMemberUsage.period == period))).scalar()
    return int(used or 0)


async def _budget_used(session: AsyncSession, rule_id: str, *, lock: bool) -> int:
    if lock:  # the row exists from the first purchase on: lock it, whoever made it
        dialect = (await session.connection()).dialect.name
        await session.execute(insert_ignoring_conflicts(table_of(RuleBudget), dialect).values(rule_id=rule_id, used=0))
    query = select(RuleBudget.used).where(RuleBudget.rule_id == rule_id)
    used = (await session.execute(query.with_for_update() if lock else query)).scalar()
    return int(used or 0)


async def allowed(session: AsyncSession, member_id: str, items: list[tuple[str, int, domain.Limits]],
                  local: datetime, *, take: bool) -> tuple[dict[str, int], Record]:
    """What each item may give (``domain.allowance``) and the record a purchase keeps of it. ``take``: for a
    purchase, which locks each budget row (the member's row is locked already, which orders the member's
    usage) and counts what it gives; a quote only reads."""
    grants: dict[str, int] = {}
    record: Record = []
    dialect = (await session.connection()).dialect.name
    for rule_id, points, limits in items:
        period = domain.period_key(local, limits.per_member_period)
        member_used = await _member_used(session, rule_id, member_id, period) if limits.per_member_points else 0
        budget_used = await _budget_used(session, rule_id, lock=take) if limits.budget_points else 0
        grant = domain.allowance(points, limits, member_used=member_used, budget_used=budget_used)
        grants[rule_id] = grant
        if not take or grant == 0:
            continue
        record.append([rule_id, grant, period, 0])
        await _count(session, dialect, rule_id, member_id, period, grant)
    return grants, record


async def _count(session: AsyncSession, dialect: str, rule_id: str, member_id: str, period: str, points: int) -> None:
    """Add ``points`` (negative: give back) to the rule's budget and to the member's usage of the period."""
    usage = upsert(table_of(RuleMemberUsage), dialect, ["rule_id", "member_id", "period"], add=["used"])
    await session.execute(usage.values(rule_id=rule_id, member_id=member_id, period=period, used=points))
    budget = upsert(table_of(RuleBudget), dialect, ["rule_id"], add=["used"])
    await session.execute(budget.values(rule_id=rule_id, used=points))


async def give_back(session: AsyncSession, purchase: Purchase) -> None:
    """A refund's share of what the purchase's limited rules gave goes back to their budgets and the member's
    usage, in the proportion the refund takes of the points (all of it on a full refund)."""
    if not purchase.limited:
        return
    dialect = (await session.connection()).dialect.name
    record: Record = []
    for rule_id, points, period, returned in sorted(purchase.limited):
        back = domain.points_to_return(points_paid=points, returned_before=returned, total=purchase.total,
                                       refunded=purchase.refunded_amount)
        if back:
            await _count(session, dialect, rule_id, purchase.member_id, period, -back)
        record.append([rule_id, points, period, returned + back])
    purchase.limited = record


async def refresh_gauges(session: AsyncSession) -> None:
    """``/metrics``' figures of the rules with a budget: what each has given and whether it is used up."""
    found = (await session.execute(select(EarningRule.rule_id, EarningRule.definition)
                                   .where(EarningRule.deleted_at.is_(None)))).all()
    budgets: dict[str, int] = {}
    for rule_id, definition in found:
        budget = (definition.get("limits") or {}).get("budget_points")
        if budget is not None:
            budgets[rule_id] = int(budget)
    rows = await session.execute(select(RuleBudget.rule_id, RuleBudget.used)
                                 .where(RuleBudget.rule_id.in_(list(budgets))))
    used = {rule_id: int(points) for rule_id, points in rows.all()}
    RULE_BUDGET_USED.clear()
    RULE_EXHAUSTED.clear()
    for rule_id, budget in budgets.items():
        RULE_BUDGET_USED.labels("points", rule_id).set(used.get(rule_id, 0))
        RULE_EXHAUSTED.labels("points", rule_id).set(int(used.get(rule_id, 0) >= budget))
