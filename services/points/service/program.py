"""The program's settings (currency, earning rate, expiry and pending days, excluded categories, the time zone
weekdays and birthdays are read in, the cap on one purchase's points): one row, created with the defaults by
the first request of a new database that needs it."""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, schemas
from services.points.models import Program, table_of
from services.points.service import rules
from shared.clock import utcnow
from shared.db.statements import insert_ignoring_conflicts

DEFAULT_PROGRAM = {
    "currency": "USD", "points_per_unit": Decimal(1), "expiry_days": 365, "pending_days": 0,
    "excluded_categories": [], "time_zone": "UTC", "max_points_per_purchase": domain.MAX_POINTS_PER_PURCHASE,
    **schemas.RedemptionSettings().model_dump(),
}
REDEMPTION_FIELDS = tuple(schemas.RedemptionSettings.model_fields)  # stored as columns of the program row


@cache
def zone_of(name: str) -> ZoneInfo:
    """The program's ``time_zone`` resolved once per name (a purchase only looks it up)."""
    return ZoneInfo(name)


async def get_program(session: AsyncSession, *, for_update: bool = False) -> Program:
    """The program row (made with the defaults on first use); ``for_update`` locks it, for a change."""
    program = await session.get(Program, 1, with_for_update=for_update)
    if program is None:
        # The first requests of a new database may all find no row: one insert wins, the others wait for it
        # and do nothing, and every one reads the winner's row (never a 500 for the duplicate key).
        await session.execute(insert_ignoring_conflicts(table_of(Program), session.get_bind().dialect.name).values(
            id=1, updated_at=utcnow(), rules_version=rules.new_version(), **DEFAULT_PROGRAM))
        program = await session.get(Program, 1, with_for_update=for_update)
        assert program is not None
    return program


async def put_program(session: AsyncSession, body: schemas.ProgramIn) -> Program:
    program = await get_program(session)
    fields = body.model_dump(exclude={"referral"})
    for field, value in {**fields.pop("redemption"), **fields}.items():
        setattr(program, field, value)
    program.referral = body.referral.model_dump(mode="json") if body.referral else None  # a JSON column
    program.updated_at = utcnow()
    await session.flush()
    return program


def _plain(value: Any) -> Any:
    """A decimal as it was given ("0.005", not the column's "0.005000")."""
    return Decimal(format(value.normalize(), "f")) if isinstance(value, Decimal) else value


def program_out(program: Program) -> schemas.Program:
    settings = schemas.RedemptionSettingsOut(**{field: _plain(getattr(program, field))
                                                for field in REDEMPTION_FIELDS})
    return schemas.Program(
        currency=program.currency, points_per_unit=program.points_per_unit, expiry_days=program.expiry_days,
        pending_days=program.pending_days, expiry_reminder_days=program.expiry_reminder_days,
        excluded_categories=program.excluded_categories,
        time_zone=program.time_zone, max_points_per_purchase=program.max_points_per_purchase,
        redemption=settings, updated_at=program.updated_at,
        referral=schemas.ReferralSettingsOut.model_validate(program.referral) if program.referral else None)
