"""Referrals: each member's code, the referrer a code names at enrolment, and the program's referral bonuses,
paid to both sides by the referee's first purchase of at least ``min_spend`` within the referrer's yearly cap,
and taken back by a full refund of that purchase (with the bonuses of the ``referral`` earning rules).

Locks, always in this order: the referee's row (the purchase or the refund holds it already), then its
referral row, then the referrer's row. Two purchases of one referee wait for each other on the first, so
the second finds the referral settled; referees of one referrer wait on the last, so each counts the
referrals of the year after the one before committed and the cap is exact. Referrals only point at members
enrolled before (a code is taken at enrolment only), so no two transactions wait for each other in a circle.
"""

from __future__ import annotations

import secrets
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, schemas
from services.points.errors import ReferralInvalid
from services.points.models import LedgerEntry, Lot, Member, MemberIdentifier, Purchase, Referral
from services.points.service import IDEMPOTENCY, OUTBOX, ledger, members
from services.points.service.program import zone_of
from shared.clock import utcnow
from shared.errors import LoyaltyError
from shared.messaging import events


def new_code() -> str:
    """A fresh referral code: ``domain.REFERRAL_CODE_LENGTH`` characters drawn by ``secrets`` (unguessable;
    the unique index refuses the all but impossible repeat, which the client's retry draws again)."""
    return "".join(secrets.choice(domain.REFERRAL_ALPHABET) for _ in range(domain.REFERRAL_CODE_LENGTH))


# --- enrolment ---------------------------------------------------------------------------------------------


async def _owner(session: AsyncSession, code: str) -> Member:
    key = domain.normalize_referral_code(code)
    owner = (await session.execute(select(Member).where(Member.referral_code == key))).scalar_one_or_none() \
        if key else None
    if owner is None:
        raise ReferralInvalid(f"No member has the referral code '{code.strip()}'.",
                              errors=[{"loc": ["body", "referral_code"], "msg": "unknown referral code"}])
    return owner


def _refused(reason: str) -> LoyaltyError:
    return ReferralInvalid(f"The referral code is refused: {reason}.",
                           errors=[{"loc": ["body", "referral_code"], "msg": reason}])


async def referrer_at_enrolment(session: AsyncSession, member_id: str, body: schemas.MemberIn) -> str | None:
    """The ``referred_by`` of a member being enrolled: the owner of its ``referral_code``, once checked
    (``domain.referral_refusal``), else ``referred_by`` as given (imports and trusted back offices)."""
    if body.referral_code is None:
        return body.referred_by
    owner = await _owner(session, body.referral_code)
    if body.referred_by is not None and body.referred_by != owner.member_id:
        raise _refused("referred_by names another member than the code's owner")
    # The owner's profile and every e-mail and phone it is found by (a profile shared before identifiers
    # were unique is only on the profile).
    handles = (await session.execute(
        select(MemberIdentifier.kind, MemberIdentifier.normalized).where(
            MemberIdentifier.member_id == owner.member_id, MemberIdentifier.kind.in_(("email", "phone"))))).all()
    theirs: dict[str, list[str]] = {"email": [owner.email] if owner.email else [],
                                    "phone": [owner.phone] if owner.phone else []}
    for kind, key in handles:
        theirs[kind].append(key)
    reason = domain.referral_refusal(
        member_id=member_id, referrer_id=owner.member_id, referrer_active=owner.status == "active",
        emails=(body.email,), phones=(body.phone,),
        referrer_emails=tuple(theirs["email"]), referrer_phones=tuple(theirs["phone"]))
    if reason:
        raise _refused(reason)
    return owner.member_id


async def check_on_update(session: AsyncSession, member: Member, code: str) -> None:
    """A code sent to a member already enrolled: the retry of its enrolment (the code of its referrer)
    changes nothing; any other is refused, since a code is taken at enrolment only."""
    owner = await _owner(session, code)
    if owner.member_id == member.member_id:
        raise _refused("a member cannot use its own referral code")
    if member.referred_by != owner.member_id:
        raise _refused("a referral code is taken at enrolment only")


# --- the bonuses -------------------------------------------------------------------------------------------


def settings_of(stored: dict[str, Any]) -> domain.ReferralSettings:
    return domain.ReferralSettings(
        referrer_points=int(stored["referrer_points"]), referee_points=int(stored["referee_points"]),
        min_spend=Decimal(str(stored.get("min_spend", "0"))),
        max_per_referrer_per_year=stored.get("max_per_referrer_per_year"))


async def reward(session: AsyncSession, body: schemas.PurchaseIn, context: Any, paid_value: Decimal,
                 answer: dict[str, Any]) -> dict[str, Any]:
    """Settle the referral of the purchase's member (``context``: the purchase's context row, the member
    locked, with ``referred_by`` and the program's ``referral`` setting) if it is still open and the purchase
    qualifies; returns the purchase's answer, whose balance then includes the referee's bonus (and is stored
    again for retries to replay)."""
    settings = settings_of(context.referral)
    referrer_id = context.referred_by
    spend = body.total - paid_value
    if referrer_id == body.member_id or spend < settings.min_spend:
        return answer
    if await session.get(Referral, body.member_id) is not None:
        return answer  # settled by an earlier purchase (the member's row lock orders them)
    referrer = await session.get(Member, referrer_id, with_for_update=True, populate_existing=True)
    if referrer is None or referrer.status != "active":
        return answer  # stays open: a later qualifying purchase settles it once the referrer is active
    await members.settle(session, referrer)
    year = body.occurred_at.astimezone(zone_of(context.time_zone)).year
    rewarded = (await session.execute(select(func.count()).select_from(Referral).where(
        Referral.referrer_id == referrer_id, Referral.year == year, Referral.status == "rewarded"))).scalar_one()
    outcome = domain.referral_outcome(settings, spend=spend, rewarded_this_year=int(rewarded))
    if outcome is None:
        return answer
    referral = Referral(referee_id=body.member_id, referrer_id=referrer_id, purchase_id=body.purchase_id,
                        year=year, status=outcome, referrer_points=0, referee_points=0, settled_at=utcnow())
    if outcome == "rewarded":
        referee = await session.get(Member, body.member_id, with_for_update=True, populate_existing=True)
        assert referee is not None
        referral.referee_points, referral.referrer_points = settings.referee_points, settings.referrer_points
        referral.referee_entry_id = await _credit(session, referee, settings.referee_points, body, context)
        referral.referrer_entry_id = await _credit(session, referrer, settings.referrer_points, body, context)
        answer = {**answer, "balance": schemas.BalanceShort(available=referee.available,
                                                            pending=referee.pending).model_dump(mode="json")}
        await IDEMPOTENCY.complete(session, "purchase", body.purchase_id, 201, answer)
    session.add(referral)
    await session.flush()
    return answer


async def _credit(session: AsyncSession, member: Member, points: int, body: schemas.PurchaseIn, context: Any
                  ) -> int | None:
    """One side's bonus as a lot like the purchase's own: pending for the same return window, expiring on the
    same day, so a refund inside the window takes it back from the lot itself."""
    if points <= 0:
        return None
    occurred = body.occurred_at.astimezone(UTC)
    available_at = occurred + timedelta(days=context.pending_days) if context.pending_days else None
    entry, lot = await ledger.credit(
        session, member, "bonus", points, expires_at=domain.expiry_for(occurred, context.expiry_days),
        available_at=available_at, purchase_id=body.purchase_id, rule_ids=[domain.REFERRAL])
    await OUTBOX.add(session, events.PointsEarned(
        member_id=member.member_id, points=points, balance=ledger.snapshot(member), occurred_at=body.occurred_at,
        purchase_id=body.purchase_id, kind="bonus", rule_ids=[domain.REFERRAL],
        status="pending" if lot is not None and lot.pending else "credited"))
    return entry.entry_id


async def reverse(session: AsyncSession, purchase: Purchase, referee: Member, refund_id: str) -> None:
    """A full refund of a referee's purchase (``referee`` locked and settled) takes back what referring
    gave for it: the referee's and the referrer's bonus of the program's setting, and the bonuses of
    ``referral`` earning rules the referrer got. Each comes out of its own lot while that is pending, else
    as any reversal does (available below zero when they were spent: a debt the next credits repay)."""
    if referee.referred_by is None:
        return
    referral = await session.get(Referral, referee.member_id, with_for_update=True)
    if referral is not None and (referral.purchase_id != purchase.purchase_id or referral.status != "rewarded"):
        referral = None
    if referral is not None and referral.referee_entry_id is not None:
        await _take_back(session, referee, referral.referee_entry_id, referral.referee_points, [domain.REFERRAL],
                         purchase.purchase_id, refund_id)
    referrers = sorted({referee.referred_by, *([referral.referrer_id] if referral else [])} - {referee.member_id})
    for referrer_id in referrers:
        referrer = await session.get(Member, referrer_id, with_for_update=True)
        if referrer is None:
            continue  # a referred_by given as is may name no one
        await members.settle(session, referrer)
        given = (await session.execute(select(LedgerEntry).where(
            LedgerEntry.member_id == referrer_id, LedgerEntry.purchase_id == purchase.purchase_id,
            LedgerEntry.kind.in_(("bonus", "reversal"))).order_by(LedgerEntry.entry_id))).scalars().all()
        if any(entry.kind == "reversal" for entry in given):
            continue  # taken back already
        for entry in given:
            await _take_back(session, referrer, entry.entry_id, entry.points, entry.rule_ids or [],
                             purchase.purchase_id, refund_id)
    if referral is not None:
        referral.status, referral.refund_id = "reversed", refund_id


async def _take_back(session: AsyncSession, member: Member, entry_id: int, points: int, rule_ids: list[str],
                     purchase_id: str, refund_id: str) -> None:
    if points <= 0:
        return
    lot = (await session.execute(select(Lot).where(Lot.member_id == member.member_id, Lot.entry_id == entry_id)
                                 .with_for_update())).scalar_one_or_none()
    await ledger.debit(session, member, "reversal", points, first=lot, purchase_id=purchase_id,
                       refund_id=refund_id, rule_ids=rule_ids)
    await OUTBOX.add(session, events.PointsReversed(
        member_id=member.member_id, purchase_id=purchase_id, refund_id=refund_id, points=points,
        balance=ledger.snapshot(member), kind="bonus"))
