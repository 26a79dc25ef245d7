"""What a basket earns, for a purchase and for a quote alike: the facts gathered from the body, the member
and the program, handed to the one earning function (``domain.compute_earning``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import FromClause
from sqlalchemy.sql.elements import KeyedColumnElement

from services.points import domain, schemas
from services.points.service.program import zone_of


def earning_of(body: schemas.Basket, member: Any, program: Any, multipliers: list[domain.MultiplierRule],
               bonuses: list[domain.BonusRule], points_paid_value: Decimal = Decimal(0)) -> domain.Earning:
    """``member`` and ``program`` are anything with their columns (the purchase's context row is both).
    The value paid with points earns nothing unless the program says ``earn_on_points_paid``."""
    lines = tuple(domain.Line(line.unit_price * line.quantity, line.category, line.sku) for line in body.lines) \
        if body.lines else (domain.Line(body.total),)
    if points_paid_value and not program.earn_on_points_paid:
        lines = domain.net_of_points_paid(lines, points_paid_value)
    facts = domain.PurchaseFacts(lines=lines, occurred_at=body.occurred_at, store_id=body.store_id,
                                 channel=body.channel)
    return domain.compute_earning(
        facts, points_per_unit=program.points_per_unit, excluded_categories=set(program.excluded_categories),
        multipliers=multipliers, bonuses=bonuses, tier_multiplier=member.earn_multiplier,
        member=member_facts(member),
        time_zone=zone_of(program.time_zone), max_points=program.max_points_per_purchase,
    )


def audience_columns(member: FromClause) -> list[KeyedColumnElement[Any]]:
    """The member's columns ``member_facts`` reads beside those a purchase reads anyway."""
    return [member.c.member_id, member.c.tier_id, member.c.value_class, member.c.lifecycle, member.c.enrolled_at]


def member_facts(member: Any) -> domain.MemberFacts:
    """What the rules may ask of a member (its row, or a context row with the same columns)."""
    return domain.MemberFacts(first_purchase=member.purchase_count == 0,
                              birth_month=member.birth_date.month if member.birth_date else None,
                              birthday_bonus_year=member.birthday_bonus_year, tier_id=member.tier_id,
                              value_class=member.value_class, lifecycle=member.lifecycle,
                              enrolled_at=member.enrolled_at, member_id=member.member_id)
