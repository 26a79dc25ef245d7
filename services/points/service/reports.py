"""Holdout reports: did a rule change what its audience spends, or only give points away?

A rule with ``holdout_pct`` keeps that share of its audience (``domain.held_out``) from ever getting it. The
report compares the two groups over the rule's window. Who is in them:

- the members the rule took in at a purchase (``rule_exposure``: its window and audience admitted the member,
  whether the rule was given or held back), and
- the members its audience admits now, so members who bought nothing (a lapsed member the win-back did not
  bring back) count too, with a spend of 0.

Both ways of coming in are blind to the group, so the two groups are drawn alike and a difference between
them is the rule's doing, up to chance; the interval says how much chance.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, schemas
from services.points.models import EarningRule, Member, Purchase, RuleExposure, table_of
from services.points.service import earning, rules
from shared.clock import utcnow
from shared.db.statements import insert_ignoring_conflicts


async def record_exposure(session: AsyncSession, rule_ids: tuple[str, ...], member_id: str) -> None:
    """Remember that these rules (with holdout groups) took the member in; the first time only."""
    statement = insert_ignoring_conflicts(table_of(RuleExposure), session.get_bind().dialect.name)
    now = utcnow()
    await session.execute(statement, [{"rule_id": rule_id, "member_id": member_id, "first_at": now}
                                      for rule_id in rule_ids])


def window_of(rule: EarningRule, now: datetime) -> tuple[datetime, datetime]:
    """The rule's window so far: from ``valid_from`` (or its creation) to ``valid_until`` or now, whichever
    comes first."""
    definition = rule.definition
    start = datetime.fromisoformat(definition["valid_from"]) if definition.get("valid_from") else rule.created_at
    end = datetime.fromisoformat(definition["valid_until"]) if definition.get("valid_until") else now
    return start, max(min(end, now), start)


async def holdout_report(session: AsyncSession, rule_id: str) -> schemas.HoldoutReport:
    rule = await rules.get_rule(session, rule_id)
    pct = int(rule.definition.get("holdout_pct") or 0)
    start, end = window_of(rule, utcnow())
    members = await _population(session, rule_id, rules.audience_of(rule.definition), end)
    figures = await _figures(session, start, end)
    treated: dict[str, tuple[int, Decimal, int]] = {}
    control: dict[str, tuple[int, Decimal, int]] = {}
    for member_id in members:
        group = control if domain.held_out(rule_id, member_id, pct) else treated
        group[member_id] = figures.get(member_id, (0, Decimal(0), 0))
    uplift = domain.spend_uplift([spend for _, spend, _ in treated.values()],
                                 [spend for _, spend, _ in control.values()])
    interval = list(uplift.interval_95) if uplift and uplift.interval_95 else None
    return schemas.HoldoutReport.model_validate({
        "rule_id": rule_id, "holdout_pct": pct, "from": start, "to": end,
        "treated": _group(treated), "control": _group(control),
        "spend_per_member_uplift": uplift.difference if uplift else None, "interval_95": interval,
        "significant": interval is not None and (interval[0] > 0 or interval[1] < 0),
    })


async def _population(session: AsyncSession, rule_id: str, audience: domain.Audience, end: datetime) -> set[str]:
    exposed = await session.scalars(select(RuleExposure.member_id).where(RuleExposure.rule_id == rule_id))
    members = set(exposed)
    member = table_of(Member)
    query = select(*earning.audience_columns(member)).where(member.c.enrolled_at < end)
    if audience.tiers:
        query = query.where(member.c.tier_id.in_(audience.tiers))
    if audience.value_classes:
        query = query.where(member.c.value_class.in_(audience.value_classes))
    if audience.lifecycles:
        query = query.where(member.c.lifecycle.in_(audience.lifecycles))
    for row in await session.execute(query):
        if audience.admits(_facts(row), end):
            members.add(row.member_id)
    return members


def _facts(row: Any) -> domain.MemberFacts:
    return domain.MemberFacts(tier_id=row.tier_id, value_class=row.value_class, lifecycle=row.lifecycle,
                              enrolled_at=row.enrolled_at, member_id=row.member_id)


async def _figures(session: AsyncSession, start: datetime, end: datetime) -> dict[str, tuple[int, Decimal, int]]:
    """Each member's purchases in the window: how many, their spend net of refunds, their points net of
    reversals."""
    rows = await session.execute(
        select(Purchase.member_id, func.count(), func.sum(Purchase.total), func.sum(Purchase.refunded_amount),
               func.sum(Purchase.points_earned - Purchase.points_reversed))
        .where(Purchase.occurred_at >= start, Purchase.occurred_at < end)
        .group_by(Purchase.member_id))
    return {member_id: (int(count), Decimal(total) - Decimal(refunded), int(points))
            for member_id, count, total, refunded, points in rows}


def _group(figures: dict[str, tuple[int, Decimal, int]]) -> dict[str, Any]:
    spend = sum((spend for _, spend, _ in figures.values()), Decimal(0))
    return {"members": len(figures), "purchases": sum(count for count, _, _ in figures.values()),
            "spend": spend, "points": sum(points for _, _, points in figures.values()),
            "spend_per_member": (spend / len(figures)).quantize(domain.CENTS) if figures else None}
