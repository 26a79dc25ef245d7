"""Use cases of the rewards service, one transaction each (the caller commits; these only flush).

Every use case that moves stock locks the reward row first; the settlement and cancellation of a redemption
lock the redemption row, then the reward's. A redemption request locks only the reward, so the two orders
never wait on each other in a cycle. Asking again for overdue redemptions locks only redemption rows and skips
those already locked, so it never waits at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards import domain, schemas
from services.rewards.models import Base, Member, Redemption, Reward, Tier, Voucher, idempotency, outbox
from shared import events
from shared.db import insert_ignoring_conflicts, utcnow
from shared.errors import (
    Conflict,
    InvalidRequest,
    LimitReached,
    LoyaltyError,
    NotFound,
    OutOfStock,
    RewardNotFound,
    RewardUnavailable,
    TierTooLow,
    VoucherAlreadyUsed,
)
from shared.idempotency import IdempotencyKeys, request_hash
from shared.outbox import Outbox
from shared.pagination import decode_cursor, encode_cursor

SOURCE = "rewards"
OUTBOX = Outbox(outbox, SOURCE)
IDEMPOTENCY = IdempotencyKeys(idempotency)
HOLDING = ("pending", "confirmed")  # redemptions that hold stock and count against a member's limit
SETTLED = "settled_redemptions"  # session.info: redemptions this transaction moved out of pending
CODE_ATTEMPTS = 5
VOUCHERS = Base.metadata.tables["voucher"]
MEMBERS = Base.metadata.tables["member"]

REFUSALS: dict[domain.Refusal, type[LoyaltyError]] = {
    "reward-unavailable": RewardUnavailable,
    "tier-too-low": TierTooLow,
    "out-of-stock": OutOfStock,
    "limit-reached": LimitReached,
}


# --- catalog ---------------------------------------------------------------------------------------


def reward_out(reward: Reward) -> schemas.Reward:
    return schemas.Reward.model_validate(reward, from_attributes=True)


def _terms(reward: Reward) -> domain.RewardTerms:
    return domain.RewardTerms(
        points_cost=reward.points_cost, active=reward.active, valid_from=reward.valid_from,
        valid_until=reward.valid_until, min_tier=reward.min_tier, stock_left=reward.stock_left,
        per_member_limit=reward.per_member_limit,
    )


async def get_reward(session: AsyncSession, reward_id: str, *, for_update: bool = False) -> Reward:
    reward = await session.get(Reward, reward_id, with_for_update=for_update)
    if reward is None:
        raise RewardNotFound(f"No reward '{reward_id}'.")
    return reward


async def put_reward(session: AsyncSession, reward_id: str, body: schemas.RewardIn) -> tuple[Reward, bool]:
    """Create a reward or replace its terms; returns (reward, created). Setting ``stock`` counts the units
    that pending and confirmed redemptions hold: ``stock_left`` is what remains of the new stock."""
    reward = await session.get(Reward, reward_id, with_for_update=True)
    now = utcnow()
    created = reward is None
    held = 0 if created else await _held(session, reward_id)
    if reward is None:
        reward = Reward(reward_id=reward_id, created_at=now)
        session.add(reward)
    for field, value in body.model_dump().items():
        setattr(reward, field, value)
    reward.stock_left = domain.stock_left_for(body.stock, held)
    reward.updated_at = now
    await session.flush()
    return reward, created


async def _held(session: AsyncSession, reward_id: str, member_id: str | None = None) -> int:
    query = select(func.coalesce(func.sum(Redemption.quantity), 0)).where(
        Redemption.reward_id == reward_id, Redemption.status.in_(HOLDING))
    if member_id is not None:
        query = query.where(Redemption.member_id == member_id)
    return int((await session.execute(query)).scalar_one())


async def _standing(session: AsyncSession, member_id: str) -> domain.MemberStanding:
    member = await session.get(Member, member_id)
    if member is None:
        return domain.MemberStanding()
    return domain.MemberStanding(tier_id=member.tier_id, tier_rank=member.tier_rank, available=member.available)


async def _ladder(session: AsyncSession) -> dict[str, int]:
    return {tier_id: rank for tier_id, rank in (await session.execute(select(Tier.tier_id, Tier.rank))).all()}


async def catalog_page(session: AsyncSession, limit: int, cursor: str | None, member_id: str | None
                       ) -> tuple[list[schemas.CatalogItem], str | None]:
    """Rewards by id; with a member, each marked eligible or not with the reason."""
    query = select(Reward).order_by(Reward.reward_id)
    if cursor:
        (after,) = decode_cursor(cursor, 1)
        query = query.where(Reward.reward_id > str(after))
    rows = list((await session.execute(query.limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [schemas.CatalogItem.model_validate(r, from_attributes=True) for r in rows]
    if member_id is not None and rows:
        member = await _standing(session, member_id)
        ladder = await _ladder(session)
        held = dict((await session.execute(
            select(Redemption.reward_id, func.sum(Redemption.quantity))
            .where(Redemption.member_id == member_id, Redemption.reward_id.in_([r.reward_id for r in rows]),
                   Redemption.status.in_(HOLDING))
            .group_by(Redemption.reward_id)
        )).all())
        now = utcnow()
        for item, reward in zip(items, rows, strict=True):
            item.reason = domain.ineligibility(_terms(reward), member, ladder,
                                               held=int(held.get(reward.reward_id, 0)), now=now)
            item.eligible = item.reason is None
    return items, encode_cursor([rows[-1].reward_id]) if more else None


# --- redemptions -----------------------------------------------------------------------------------


def redemption_out(redemption: Redemption) -> schemas.Redemption:
    return schemas.Redemption.model_validate(redemption, from_attributes=True)


async def get_redemption(session: AsyncSession, redemption_id: str, *, for_update: bool = False) -> Redemption:
    redemption = await session.get(Redemption, redemption_id, with_for_update=for_update)
    if redemption is None:
        raise NotFound(f"No redemption '{redemption_id}'.")
    return redemption


async def request_redemption(session: AsyncSession, body: schemas.RedemptionIn) -> tuple[dict[str, Any], bool]:
    """Check eligibility, reserve the stock and ask points for the points (``redemption.requested``); returns
    (answer, created). A refusal raises, so the caller's rollback leaves the id free for another try."""
    replay = await IDEMPOTENCY.claim(session, "redemption", body.redemption_id, request_hash(body))
    if replay is not None:
        return replay, False
    reward = await get_reward(session, body.reward_id, for_update=True)
    held = await _held(session, reward.reward_id, body.member_id) if reward.per_member_limit is not None else 0
    refused = domain.refusal(_terms(reward), await _standing(session, body.member_id), await _ladder(session),
                             quantity=body.quantity, held=held, now=utcnow())
    if refused is not None:
        raise REFUSALS[refused](_refusal_detail(refused, reward, body.quantity, held))
    if reward.stock_left is not None:
        reward.stock_left -= body.quantity
    now = utcnow()
    redemption = Redemption(
        redemption_id=body.redemption_id, member_id=body.member_id, reward_id=reward.reward_id,
        quantity=body.quantity, points_cost=reward.points_cost * body.quantity, status="pending",
        created_at=now, updated_at=now, last_requested_at=now, asks=1,
    )
    session.add(redemption)
    await session.flush()
    await OUTBOX.add(session, events.RedemptionRequested(
        member_id=redemption.member_id, redemption_id=redemption.redemption_id, reward_id=redemption.reward_id,
        quantity=redemption.quantity, points_cost=redemption.points_cost,
    ))
    answer = redemption_out(redemption).model_dump(mode="json")
    await IDEMPOTENCY.complete(session, "redemption", body.redemption_id, 202, answer)
    return answer, True


def _refusal_detail(refused: domain.Refusal, reward: Reward, quantity: int, held: int) -> str:
    name = f"Reward '{reward.reward_id}'"
    if refused == "reward-unavailable":
        return f"{name} is not active or outside its validity period."
    if refused == "tier-too-low":
        return f"{name} needs tier '{reward.min_tier}' or above."
    if refused == "out-of-stock":
        return f"{name} has {reward.stock_left} left; {quantity} asked."
    return f"{name} allows {reward.per_member_limit} per member; the member holds {held}, {quantity} asked."


def _event(redemption: Redemption, cls: type[events.RedemptionEvent], **fields: Any) -> events.RedemptionEvent:
    return cls(member_id=redemption.member_id, redemption_id=redemption.redemption_id,
               reward_id=redemption.reward_id, quantity=redemption.quantity, points_cost=redemption.points_cost,
               **fields)


async def _give_back_stock(session: AsyncSession, redemption: Redemption) -> None:
    reward = await get_reward(session, redemption.reward_id, for_update=True)
    reward.stock_left = domain.restock(reward.stock, reward.stock_left, redemption.quantity)


async def member_redemptions_page(session: AsyncSession, member_id: str, limit: int, cursor: str | None
                                  ) -> tuple[list[schemas.Redemption], str | None]:
    """Newest first, keyset on (created_at, redemption_id). A member rewards has not heard of has none."""
    query = select(Redemption).where(Redemption.member_id == member_id)
    if cursor:
        created_at, redemption_id = decode_cursor(cursor, 2)
        try:
            before = datetime.fromisoformat(str(created_at))
        except ValueError:
            before = None
        if before is None or before.tzinfo is None:
            raise InvalidRequest("cursor: not a cursor this service gave out",
                                 errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}])
        query = query.where(or_(
            Redemption.created_at < before,
            and_(Redemption.created_at == before, Redemption.redemption_id < str(redemption_id)),
        ))
    rows = list((await session.execute(
        query.order_by(Redemption.created_at.desc(), Redemption.redemption_id.desc()).limit(limit + 1)
    )).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor([rows[-1].created_at.isoformat(), rows[-1].redemption_id]) if more else None
    return [redemption_out(r) for r in rows], next_cursor


async def cancel_redemption(session: AsyncSession, redemption_id: str) -> Redemption:
    """Cancel a confirmed redemption whose voucher is unused: the voucher is cancelled, the stock comes back
    and ``redemption.cancelled`` tells points to give the points back. Cancelling a cancelled redemption
    again answers it as it is and changes nothing, so a client may retry a cancel whose answer it lost."""
    redemption = await get_redemption(session, redemption_id, for_update=True)
    if redemption.status == "cancelled":
        return redemption
    if redemption.status != "confirmed":
        raise Conflict(f"Redemption '{redemption_id}' is {redemption.status}; only a confirmed one can be "
                       "cancelled.")
    voucher = (await session.execute(
        select(Voucher).where(Voucher.redemption_id == redemption_id).with_for_update()
    )).scalar_one()
    if voucher.status == "used":
        raise VoucherAlreadyUsed(f"The voucher of redemption '{redemption_id}' was already used; the "
                                 "redemption can no longer be cancelled.")
    voucher.status = "cancelled"
    redemption.status = "cancelled"
    redemption.updated_at = utcnow()
    await _give_back_stock(session, redemption)
    await session.flush()
    await OUTBOX.add(session, _event(redemption, events.RedemptionCancelled))
    return redemption


async def reask_overdue(session: AsyncSession, *, now: datetime, retry_seconds: float, retry_max_seconds: float,
                        limit: int) -> list[Redemption]:
    """Ask points again for up to ``limit`` pending redemptions whose answer is overdue (see
    ``domain.reask_delays``): another ``redemption.requested`` with the same redemption id and terms. Rows
    another transaction holds (a settlement, another instance's re-ask) are skipped, not waited for."""
    delays = domain.reask_delays(retry_seconds, retry_max_seconds)
    overdue = [and_(Redemption.asks == asks, Redemption.last_requested_at <= now - timedelta(seconds=delay))
               for asks, delay in enumerate(delays[:-1], start=1)]
    overdue.append(and_(Redemption.asks >= len(delays),
                        Redemption.last_requested_at <= now - timedelta(seconds=delays[-1])))
    rows = list((await session.execute(
        select(Redemption)
        # a literal, not a parameter, so PostgreSQL can use the partial index ix_redemption_pending_asked
        .where(Redemption.status == literal_column("'pending'"),
               Redemption.last_requested_at <= now - timedelta(seconds=delays[0]), or_(*overdue))
        .order_by(Redemption.last_requested_at).limit(limit)
        .with_for_update(skip_locked=True)
    )).scalars())
    for redemption in rows:
        redemption.asks += 1
        redemption.last_requested_at = now
    await session.flush()
    await OUTBOX.add(session, *[_event(r, events.RedemptionRequested) for r in rows], repeated=True)
    return rows


# --- vouchers --------------------------------------------------------------------------------------


def voucher_out(voucher: Voucher) -> schemas.Voucher:
    return schemas.Voucher.model_validate(voucher, from_attributes=True)


async def get_voucher(session: AsyncSession, typed_code: str) -> Voucher:
    code = domain.normalize_code(typed_code)
    voucher = await session.get(Voucher, code) if code is not None else None
    if voucher is None:
        raise NotFound(f"No voucher '{typed_code}'.")
    return voucher


async def use_voucher(session: AsyncSession, typed_code: str, store_id: str | None) -> Voucher:
    """Mark a voucher used, exactly once even when two tills try at the same moment: the conditional update
    lets one of them through and the other finds it used."""
    voucher = await get_voucher(session, typed_code)
    done = await session.execute(
        update(Voucher).where(Voucher.code == voucher.code, Voucher.status == "active")
        .values(status="used", used_at=utcnow(), store_id=store_id)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(voucher)
    if done.rowcount == 1:  # type: ignore[attr-defined]
        return voucher
    if voucher.status == "used":
        used_at = voucher.used_at.isoformat() if voucher.used_at else "an unknown time"
        raise VoucherAlreadyUsed(f"Voucher '{voucher.code}' was already used at {used_at}.")
    raise Conflict(f"Voucher '{voucher.code}' is {voucher.status}.")


# --- events from points, tiers and members ---------------------------------------------------------


async def _pending(session: AsyncSession, redemption_id: str) -> Redemption | None:
    """The redemption if it still waits for points' answer; a duplicate or late answer finds None."""
    redemption = await session.get(Redemption, redemption_id, with_for_update=True)
    return redemption if redemption is not None and redemption.status == "pending" else None


async def confirm_redemption(session: AsyncSession, data: events.PointsSpent) -> None:
    """Points were taken: the redemption is confirmed with a new voucher."""
    await record_balance(session, data.member_id, data.balance.available)
    redemption = await _pending(session, data.redemption_id)
    if redemption is None:
        return
    redemption.voucher_code = await _issue_voucher(session, redemption)
    redemption.status = "confirmed"
    redemption.updated_at = utcnow()
    await session.flush()
    await OUTBOX.add(session, _event(redemption, events.RedemptionConfirmed))
    session.info.setdefault(SETTLED, set()).add(redemption.redemption_id)


async def _issue_voucher(session: AsyncSession, redemption: Redemption) -> str:
    dialect = session.get_bind().dialect.name
    for _ in range(CODE_ATTEMPTS):  # a collision is a 1 in 2**75 event per pair; another code settles it
        code = domain.new_voucher_code()
        inserted = (await session.execute(
            insert_ignoring_conflicts(VOUCHERS, dialect).values(
                code=code, redemption_id=redemption.redemption_id, reward_id=redemption.reward_id,
                member_id=redemption.member_id, status="active", created_at=utcnow(),
            ).returning(VOUCHERS.c.code)
        )).first()
        if inserted is not None:
            return code
    raise RuntimeError(f"no free voucher code after {CODE_ATTEMPTS} attempts")


async def reject_redemption(session: AsyncSession, data: events.PointsSpendDeclined) -> None:
    """Points declined: the redemption is rejected with points' reason and its stock is released."""
    redemption = await _pending(session, data.redemption_id)
    if redemption is None:
        return
    redemption.status = "rejected"
    redemption.reason = data.reason
    redemption.updated_at = utcnow()
    await _give_back_stock(session, redemption)
    await session.flush()
    await OUTBOX.add(session, _event(redemption, events.RedemptionRejected, reason=data.reason))
    session.info.setdefault(SETTLED, set()).add(redemption.redemption_id)


async def _member(session: AsyncSession, member_id: str) -> Member:
    """The member's projection row, created empty on first news, locked for the update."""
    await session.execute(
        insert_ignoring_conflicts(MEMBERS, session.get_bind().dialect.name)
        .values(member_id=member_id, tier_rank=0, available=0, updated_at=utcnow())
    )
    member = await session.get(Member, member_id, with_for_update=True, populate_existing=True)
    assert member is not None
    return member


async def record_points_event(session: AsyncSession, data: events.PointsEvent) -> None:
    """Any points.* event with a balance: keep the member's available points for the catalog's checks."""
    await record_balance(session, data.member_id, data.balance.available)


async def record_balance(session: AsyncSession, member_id: str, available: int) -> None:
    """The balance a points.* event carried (events of one member arrive in order: the last one is current)."""
    member = await _member(session, member_id)
    member.available = available
    member.updated_at = utcnow()


async def record_member(session: AsyncSession, data: events.MemberEnrolled) -> None:
    member = await _member(session, data.member_id)
    member.status = data.status
    member.updated_at = utcnow()


async def apply_tier_change(session: AsyncSession, data: events.TierChanged) -> None:
    """Remember the member's tier and rank, and the ladder the event carries unless a newer one is known."""
    member = await _member(session, data.member_id)
    member.tier_id = data.to_tier
    member.tier_rank = data.rank
    member.updated_at = utcnow()
    if not data.ladder:
        return
    known = (await session.execute(select(Tier.tier_id, Tier.rank, Tier.as_of))).all()
    if {t: r for t, r, _ in known} == {t: r for r, t in enumerate(data.ladder)}:
        return
    if known and max(as_of for _, _, as_of in known) > data.at:
        return  # an older event that arrived late (events of different members are not ordered)
    await session.execute(delete(Tier))
    session.add_all([Tier(tier_id=tier_id, rank=rank, as_of=data.at) for rank, tier_id in enumerate(data.ladder)])
    await session.flush()
