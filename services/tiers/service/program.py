"""The tier program: how every use case reads it (as stored, or share-locked for an evaluation) and the
operator's replacement of it, which evaluates every member against the new ladder in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import schemas
from services.tiers.domain import tiers
from services.tiers.models import Base, Member, Tier, TierProgram
from services.tiers.service import AUDIT, BATCH_SIZE
from services.tiers.service.evaluation import settle
from services.tiers.service.formats import plain
from shared.clock import utcnow
from shared.db.statements import insert_ignoring_conflicts
from shared.errors import InvalidRequest

PROGRAM_TABLE = Base.metadata.tables["tier_program"]


async def load_program(session: AsyncSession) -> tiers.Program:
    """The stored program, or the default one before the first PUT."""
    row = await session.get(TierProgram, 1)
    ladder = (await session.execute(
        select(Tier.tier_id, Tier.name, Tier.threshold, Tier.earn_multiplier, Tier.perks).order_by(Tier.position)
    )).all()
    if row is None or not ladder:
        return tiers.DEFAULT_PROGRAM
    return tiers.Program(
        basis=cast(tiers.Basis, row.basis), window_days=row.window_days, retention_days=row.retention_days,
        downgrade=cast(tiers.Downgrade, row.downgrade),
        tiers=tuple(tiers.Tier(t.tier_id, t.threshold, t.earn_multiplier, t.name, tuple(t.perks)) for t in ladder),
    )


async def program_for_evaluation(session: AsyncSession) -> tiers.Program:
    """The program, its row share-locked (and created with the defaults if missing, so there is a row to
    lock) until the caller's transaction ends."""
    share = {"read": True, "key_share": True}
    if await session.get(TierProgram, 1, with_for_update=share) is None:
        default = tiers.DEFAULT_PROGRAM
        await session.execute(insert_ignoring_conflicts(PROGRAM_TABLE, session.get_bind().dialect.name).values(
            id=1, basis=default.basis, window_days=default.window_days, retention_days=default.retention_days,
            downgrade=default.downgrade, updated_at=None, updated_by=None,
        ))
        await session.get(TierProgram, 1, with_for_update=share)
    return await load_program(session)


async def get_program(session: AsyncSession) -> schemas.TierProgram:
    return program_out(await load_program(session), await session.get(TierProgram, 1))


async def put_program(
    session: AsyncSession, body: schemas.TierProgramIn, actor: str, *, now: datetime | None = None
) -> schemas.TierProgram:
    """Replace the program and evaluate every known member against it at once: upgrades now, downgrades
    only where retention has ended, and members of a tier that is gone go to the tier their window supports.
    Members whose tier stays but whose multiplier or ladder changed get a ``tier.changed`` (from and to the
    same tier, no history row) so that points and rewards hold the new terms."""
    now = now or utcnow()
    program = tiers.Program(
        basis=body.basis, window_days=body.window_days, retention_days=body.retention_days,
        downgrade=body.downgrade,
        tiers=tuple(tiers.Tier(t.tier_id, t.threshold, t.earn_multiplier, t.name, tuple(t.perks))
                    for t in body.tiers),
    )
    problems = tiers.ladder_problems(program.tiers, program.basis)
    if problems:
        errors = [{"loc": ["body", "tiers", index, field], "msg": msg} for index, field, msg in problems]
        index, field, msg = problems[0]
        raise InvalidRequest(f"body.tiers.{index}.{field}: {msg}", errors=errors)

    values = {"basis": program.basis, "window_days": program.window_days,
              "retention_days": program.retention_days, "downgrade": program.downgrade,
              "updated_at": now, "updated_by": actor}
    dialect = session.get_bind().dialect.name
    first = (await session.execute(
        insert_ignoring_conflicts(PROGRAM_TABLE, dialect).values(id=1, **values))).rowcount == 1  # type: ignore[attr-defined]
    row = await session.get(TierProgram, 1, with_for_update=True)  # waits for evaluations and other changes
    assert row is not None
    previous = await load_program(session)
    before = None if first else program_out(previous, row)  # the first program replaces the default
    for field, value in values.items():
        setattr(row, field, value)
    await session.execute(delete(Tier))
    await session.execute(insert(Tier), [
        {"tier_id": t.tier_id, "position": position, "name": t.name, "threshold": t.threshold,
         "earn_multiplier": t.earn_multiplier, "perks": list(t.perks)}
        for position, t in enumerate(program.tiers)
    ])
    await session.flush()

    last = ""
    while True:
        members = list((await session.execute(
            select(Member).where(Member.member_id > last).order_by(Member.member_id).limit(BATCH_SIZE)
            .with_for_update()
        )).scalars())
        if not members:
            break
        await settle(session, members, program, now, previous=previous)
        last = members[-1].member_id
    after = program_out(program, row)
    await AUDIT.record(session, actor=actor, action="tiers.changed", resource="tiers", before=before, after=after)
    return after


def program_out(program: tiers.Program, row: TierProgram | None) -> schemas.TierProgram:
    return schemas.TierProgram(
        basis=program.basis, window_days=program.window_days, retention_days=program.retention_days,
        downgrade=program.downgrade,
        tiers=[schemas.TierOut(tier_id=t.tier_id, name=t.name, threshold=plain(t.threshold),
                               earn_multiplier=plain(t.earn_multiplier), perks=list(t.perks))
               for t in program.tiers],
        updated_at=row.updated_at if row else None, updated_by=row.updated_by if row else None,
    )
