"""Redemptions asked for by members: a request checked against the reward's terms and the member's standing,
its stock reserved and points asked for the points (``settlement`` takes points' answer); a confirmed one
cancelled; and the reads of redemptions (one, a member's pages, the settled among those that wait).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.rewards import domain, schemas
from services.rewards.errors import (
    LimitReached,
    OutOfStock,
    RewardNotFound,
    RewardUnavailable,
    TierTooLow,
    VoucherAlreadyUsed,
)
from services.rewards.models import Redemption, Voucher, idempotency
from services.rewards.service import catalog, members
from services.rewards.service.saga import (
    OUTBOX,
    REDEMPTIONS,
    REQUESTED,
    REWARDS,
    give_back_stock,
    redemption_event,
)
from shared.clock import utcnow
from shared.db.database import unit_of_work
from shared.db.statements import insert_ignoring_conflicts
from shared.errors import Conflict, LoyaltyError, NotFound
from shared.http.auth import Principal, Scope
from shared.http.idempotency import IdempotencyKeys, request_hash
from shared.http.pagination import decode_cursor, encode_cursor
from shared.messaging import events

IDEMPOTENCY = IdempotencyKeys(idempotency)
TERMS = ("points_cost", "active", "valid_from", "valid_until", "min_tier", "stock_left", "per_member_limit")

REFUSALS: dict[domain.Refusal, type[LoyaltyError]] = {
    "reward-unavailable": RewardUnavailable,
    "tier-too-low": TierTooLow,
    "out-of-stock": OutOfStock,
    "limit-reached": LimitReached,
}


def redemption_out(redemption: Redemption) -> schemas.Redemption:
    return schemas.Redemption.model_validate(redemption, from_attributes=True)


def shown_to(redemption: schemas.Redemption, viewer: Principal) -> schemas.Redemption:
    """The redemption as ``viewer`` may read it: the voucher code only for keys of the whole program with
    ``vouchers:use`` (or ``admin``) and for the key that asked for the redemption; for any other key, a
    store-bound one included whatever its scopes, it is null (a copy: the answer may be shared by several
    waiting requests)."""
    sees_every_code = viewer.allows(Scope.VOUCHERS_USE) and not viewer.store_bound
    if redemption.voucher_code is None or sees_every_code or redemption.created_by == viewer.name:
        return redemption
    return redemption.model_copy(update={"voucher_code": None})


async def get_redemption(session: AsyncSession, redemption_id: str, *, for_update: bool = False) -> Redemption:
    redemption = await session.get(Redemption, redemption_id, with_for_update=for_update)
    if redemption is None:
        raise NotFound(f"No redemption '{redemption_id}'.")
    return redemption


async def read_redemption(conn: AsyncConnection, redemption_id: str) -> schemas.Redemption:
    """One statement, no ORM: what a waiting ``GET`` reads (``waiting.Settlements``)."""
    row = (await conn.execute(select(REDEMPTIONS).where(REDEMPTIONS.c.redemption_id == redemption_id))).first()
    if row is None:
        raise NotFound(f"No redemption '{redemption_id}'.")
    return schemas.Redemption.model_validate(row._asdict())


async def settled_among(conn: AsyncConnection, redemption_ids: list[str]) -> list[schemas.Redemption]:
    """Those of ``redemption_ids`` no longer pending, in one statement for all the requests that wait."""
    rows = (await conn.execute(
        select(REDEMPTIONS).where(REDEMPTIONS.c.redemption_id.in_(redemption_ids), REDEMPTIONS.c.status != "pending")
    )).all()
    return [schemas.Redemption.model_validate(row._asdict()) for row in rows]


async def request_redemption(session: AsyncSession, body: schemas.RedemptionIn, owner: str
                             ) -> tuple[dict[str, Any], bool]:
    """Check eligibility, reserve the stock and ask points for the points (``redemption.requested``); returns
    (answer, created). A refusal raises, so the caller's rollback leaves the id free for another try.
    ``owner``, the calling key's name, is recorded as ``created_by``; only that key's retry replays.

    Redemptions of one reward run side by side: the reward's row is only share-locked while its terms are
    read, and a limited stock is taken by the last statement, so the row's exclusive lock lasts until the
    commit and no longer."""
    reward = await reward_terms(session, body.reward_id)
    if reward is None:
        return await _request_for_unknown_reward(session, body, owner)
    now = utcnow()
    answer = _pending_answer(body, reward.points_cost * body.quantity, now)
    replay = await _claim(session, body, answer, now, owner)
    if replay is not None:
        return replay, False
    standing, ladder, held = await _member_facts(session, body, reward)
    refused = domain.refusal(reward, standing, ladder, quantity=body.quantity, held=held, now=now)
    if refused is not None:
        raise REFUSALS[refused](_refusal_detail(refused, body.reward_id, reward, body.quantity, held))
    await session.execute(REDEMPTIONS.insert().values(**_row_of(answer, now), last_requested_at=now, asks=1,
                                                      created_by=owner))
    await OUTBOX.add(session, events.RedemptionRequested(
        member_id=body.member_id, redemption_id=body.redemption_id, reward_id=body.reward_id,
        quantity=body.quantity, points_cost=answer["points_cost"],
    ))
    if reward.stock_left is not None:
        await _take_stock(session, body.reward_id, body.quantity)
    unit_of_work(session).on_commit(partial(REQUESTED.emit, body.redemption_id))
    return answer, True


async def reward_terms(session: AsyncSession, reward_id: str) -> domain.RewardTerms | None:
    """The reward's terms under a KEY SHARE lock: other redemptions take it too, but ``put_reward`` (FOR
    UPDATE) waits for this transaction, so the terms cannot change before it commits and an operator's new
    ``stock`` counts the units this request holds."""
    row = (await session.execute(
        select(*(REWARDS.c[name] for name in TERMS)).where(REWARDS.c.reward_id == reward_id)
        .with_for_update(read=True, key_share=True)
    )).first()
    return None if row is None else domain.RewardTerms(**row._asdict())


async def _request_for_unknown_reward(session: AsyncSession, body: schemas.RedemptionIn, owner: str
                                      ) -> tuple[dict[str, Any], bool]:
    """A retry still replays (or conflicts) when its reward is gone: the id is checked before the 404."""
    replay = await IDEMPOTENCY.claim(session, "redemption", body.redemption_id, request_hash(body, owner=owner))
    if replay is not None:
        return replay, False
    raise RewardNotFound(f"No reward '{body.reward_id}'.")


def _pending_answer(body: schemas.RedemptionIn, points_cost: int, now: datetime) -> dict[str, Any]:
    return schemas.Redemption(
        redemption_id=body.redemption_id, member_id=body.member_id, reward_id=body.reward_id,
        quantity=body.quantity, points_cost=points_cost, status="pending", created_at=now, updated_at=now,
    ).model_dump(mode="json")


def _row_of(answer: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The redemption's columns from its answer (the datetimes as the objects, not their JSON text)."""
    return {**answer, "created_at": now, "updated_at": now}


async def _claim(session: AsyncSession, body: schemas.RedemptionIn, answer: dict[str, Any], now: datetime,
                 owner: str) -> dict[str, Any] | None:
    """Claims the id with its answer in one statement (no second write to complete the key); None when this
    request is the first with the id, else the first answer to replay. A concurrent first request is waited
    for: PostgreSQL's ON CONFLICT waits for its commit or rollback."""
    body_hash = request_hash(body, owner=owner)
    claimed = (await session.execute(
        insert_ignoring_conflicts(idempotency, session.get_bind().dialect.name).values(
            operation="redemption", key=body.redemption_id, request_hash=body_hash, status_code=202,
            response=json.dumps(answer, separators=(",", ":")), created_at=now,
        ).returning(idempotency.c.key)
    )).first()
    if claimed is not None:
        return None
    replay = await IDEMPOTENCY.claim(session, "redemption", body.redemption_id, body_hash)
    if replay is None:  # the key went away in between: this request owns the id after all
        await IDEMPOTENCY.complete(session, "redemption", body.redemption_id, 202, answer)
    return replay


async def _member_facts(session: AsyncSession, body: schemas.RedemptionIn, reward: domain.RewardTerms
                        ) -> tuple[domain.MemberStanding, dict[str, int], int]:
    """(standing, ladder, units held): only what the reward's terms need. A per-member limit locks the
    member's row first, so two requests of one member cannot both count the units before either commits."""
    held = 0
    standing = domain.MemberStanding()
    if reward.per_member_limit is not None:
        member = await members.locked_member(session, body.member_id)
        standing = domain.MemberStanding(tier_id=member.tier_id, tier_rank=member.tier_rank,
                                         available=member.available)
        held = await catalog.units_held(session, body.reward_id, body.member_id)
    elif reward.min_tier is not None:
        standing = await members.standing(session, body.member_id)
    ladder = await members.tier_ladder(session) if reward.min_tier is not None else {}
    return standing, ladder, held


async def took_stock(session: AsyncSession, reward_id: str, quantity: int) -> bool:
    """Takes units of a limited reward only if that many are left, in one statement (concurrent takers queue
    on the row for this statement's time); whether it did."""
    taken = await session.execute(
        update(REWARDS).where(REWARDS.c.reward_id == reward_id, REWARDS.c.stock_left >= quantity)
        .values(stock_left=REWARDS.c.stock_left - quantity)
    )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


async def _take_stock(session: AsyncSession, reward_id: str, quantity: int) -> None:
    """``took_stock`` or the request is refused (its transaction rolls back)."""
    if await took_stock(session, reward_id, quantity):
        return
    left = (await session.execute(select(REWARDS.c.stock_left).where(REWARDS.c.reward_id == reward_id))).scalar()
    raise OutOfStock(f"Reward '{reward_id}' has {left} left; {quantity} asked.")


def _refusal_detail(refused: domain.Refusal, reward_id: str, reward: domain.RewardTerms, quantity: int,
                    held: int) -> str:
    name = f"Reward '{reward_id}'"
    if refused == "reward-unavailable":
        return f"{name} is not active or outside its validity period."
    if refused == "tier-too-low":
        return f"{name} needs tier '{reward.min_tier}' or above."
    if refused == "out-of-stock":
        return f"{name} has {reward.stock_left} left; {quantity} asked."
    return f"{name} allows {reward.per_member_limit} per member; the member holds {held}, {quantity} asked."


async def member_redemptions_page(session: AsyncSession, member_id: str, limit: int, cursor: str | None
                                  ) -> tuple[list[schemas.Redemption], str | None]:
    """Newest first, keyset on (created_at, redemption_id). A member rewards has not heard of has none."""
    query = select(Redemption).where(Redemption.member_id == member_id)
    if cursor:
        before, redemption_id = decode_cursor(cursor, (datetime, str))
        query = query.where(or_(
            Redemption.created_at < before,
            and_(Redemption.created_at == before, Redemption.redemption_id < redemption_id),
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
    and ``redemption.cancelled`` tells points to give the points back (a goal's reward cost none: points finds
    no debit for it and gives nothing). Cancelling a cancelled redemption again answers it as it is and changes
    nothing, so a client may retry a cancel whose answer it lost."""
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
    await session.flush()
    await give_back_stock(session, {redemption.reward_id: redemption.quantity})
    await OUTBOX.add(session, redemption_event(redemption, events.RedemptionCancelled))
    return redemption
