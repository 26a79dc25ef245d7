"""Members: enrolment (with its bonuses) and profile, and the member every use case that moves points starts
from, found, locked and settled as of now (also what the expiry job does to each member with a lot due)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, schemas
from services.points.errors import MemberNotFound
from services.points.models import Hold, Lot, Member
from services.points.service import OUTBOX, earning, holds, identifiers, ledger, referrals, rules
from services.points.service.ledger import snapshot
from services.points.service.program import get_program
from shared.clock import utcnow
from shared.messaging import events


def member_out(member: Member, *, contacts: bool) -> schemas.Member:
    """The member as answered; without ``contacts`` (a store-bound key's answer) e-mail and phone are null."""
    return schemas.Member(
        member_id=member.member_id, name=member.name,
        email=member.email if contacts else None, phone=member.phone if contacts else None,
        birth_date=member.birth_date, referred_by=member.referred_by, status=member.status,
        enrolled_at=member.enrolled_at, tier=member.tier_id, referral_code=member.referral_code,
    )


def _member_event(member: Member, cls: type[events.MemberEnrolled]) -> events.MemberEnrolled:
    return cls(
        member_id=member.member_id, status=member.status,
        enrolled_at=member.enrolled_at, birth_month=member.birth_date.month if member.birth_date else None,
        referred_by=member.referred_by,
    )


async def upsert_member(session: AsyncSession, member_id: str, body: schemas.MemberIn) -> tuple[Member, bool]:
    """Enroll a member (with any enrollment bonus), or update the fields given; returns (member, created).
    A ``referral_code`` is checked and resolved to ``referred_by`` (``referrals``) before anything is
    written; the member gets its own code."""
    member = await session.get(Member, member_id, with_for_update=True)
    now = utcnow()
    if member is None:
        fields = body.model_dump(exclude={"status", "referral_code"})
        fields["referred_by"] = await referrals.referrer_at_enrolment(session, member_id, body)
        member = Member(
            member_id=member_id, status=body.status or "active", enrolled_at=now, updated_at=now,
            earn_multiplier=Decimal(1), available=0, pending=0, lifetime_earned=0, lifetime_spent=0,
            purchase_count=0, referral_code=referrals.new_code(), **fields,
        )
        session.add(member)
        await session.flush()
        await _mirror_profile(session, member, member.email, member.phone)
        await OUTBOX.add(session, _member_event(member, events.MemberEnrolled))
        await _enrollment_bonus(session, member)
        return member, True
    if body.referral_code is not None:
        await referrals.check_on_update(session, member, body.referral_code)
    changes = body.model_dump(exclude_unset=True, exclude={"referral_code"})
    changed = {k: v for k, v in changes.items() if v is not None and getattr(member, k) != v}
    if changed:
        for field, value in changed.items():
            setattr(member, field, value)
        member.updated_at = now
        await session.flush()
        await _mirror_profile(session, member, changed.get("email"), changed.get("phone"))
        await OUTBOX.add(session, _member_event(member, events.MemberUpdated))
    return member, False


async def _mirror_profile(session: AsyncSession, member: Member, email: str | None, phone: str | None) -> None:
    """The profile's e-mail and phone as identifiers, so a lookup finds them (409 when another member's)."""
    await identifiers.mirror_profile(session, member, "email", email)
    await identifiers.mirror_profile(session, member, "phone", phone)


async def _enrollment_bonus(session: AsyncSession, member: Member) -> None:
    program = await get_program(session)
    _, bonuses = await rules.active_rules(session, program.rules_version)
    for bonus in sorted(bonuses, key=lambda b: b.rule_id):
        if bonus.trigger == "enrollment" and bonus.window.contains(member.enrolled_at) \
                and bonus.audience.admits(earning.member_facts(member), member.enrolled_at):
            await give_bonus(session, member, program.expiry_days, bonus)


async def give_bonus(session: AsyncSession, member: Member, expiry_days: int, bonus: domain.BonusRule,
                     **refs: Any) -> None:
    """Credit a bonus rule's points to a member (locked and settled), with its ``points.earned`` event."""
    now = utcnow()
    await ledger.credit(session, member, "bonus", bonus.points, rule_ids=[bonus.rule_id],
                        expires_at=domain.expiry_for(now, expiry_days), **refs)
    await OUTBOX.add(session, events.PointsEarned(
        member_id=member.member_id, points=bonus.points, balance=snapshot(member), occurred_at=now,
        purchase_id=refs.get("purchase_id"), kind="bonus", rule_ids=[bonus.rule_id],
    ))


async def get_member(session: AsyncSession, member_id: str, *, for_update: bool = False) -> Member:
    member = await session.get(Member, member_id, with_for_update=for_update)
    if member is None:
        raise MemberNotFound(f"No member '{member_id}'; enroll it with PUT /v1/members/{member_id}.")
    return member


async def locked_member(session: AsyncSession, member_id: str) -> Member:
    """The member row locked and settled as of now (with a points.expired event if lots expired)."""
    member = await get_member(session, member_id, for_update=True)
    await settle(session, member)
    return member


async def settle(session: AsyncSession, member: Member) -> None:
    """Settle a member already locked: give back holds past their time, release matured pending lots,
    expire the others past their date (a lot a hold gave back past its date too)."""
    await holds.expire_due(session, member)
    expired = await ledger.settle(session, member)
    if expired:
        await OUTBOX.add(session, events.PointsExpired(member_id=member.member_id, points=expired,
                                                       balance=snapshot(member)))


async def members_due(session: AsyncSession, limit: int = 500) -> list[str]:
    """Members with a lot to release or expire, or a hold to give back, now (the expiry job works through
    them)."""
    now = utcnow()
    rows = await session.execute(
        select(Lot.member_id).where(ledger.due_lots_clause(now))
        .union(select(Hold.member_id).where(holds.due_clause(now))).limit(limit))
    return [row[0] for row in rows]


async def settle_member(session: AsyncSession, member_id: str) -> None:
    await locked_member(session, member_id)
