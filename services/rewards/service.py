"""Use cases of the rewards service, one transaction each (the caller commits; these only flush).

Locks, and why they never wait on each other in a cycle:

- A redemption request reads the reward's terms under a KEY SHARE lock, which other requests share and which
  only ``put_reward`` (FOR UPDATE) waits for; a per-member limit then locks the member's row; a limited stock
  is taken by one conditional UPDATE of the reward, the request's last statement, so the reward's exclusive
  lock is held only until the commit. Redemptions of one reward therefore run side by side.
- Settling a redemption (points' answer) locks member rows (their balance) and then the pending redemption
  rows; a rejection or a cancellation then gives units back to the reward by one conditional UPDATE.
- Asking again for overdue redemptions locks only redemption rows and skips those already locked, so it never
  waits at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import and_, case, delete, func, literal_column, or_, select, update
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
from services.rewards.models import Base, Member, Redemption, Reward, Tier, Voucher, idempotency, outbox
from shared.clock import utcnow
from shared.db.database import unit_of_work
from shared.db.statements import insert_ignoring_conflicts, upsert
from shared.errors import Conflict, InvalidRequest, LoyaltyError, NotFound
from shared.http.idempotency import IdempotencyKeys, request_hash
from shared.http.pagination import decode_cursor, encode_cursor
from shared.messaging import events
from shared.messaging.outbox import Outbox
from shared.signals import Signal

SOURCE = "rewards"
OUTBOX = Outbox(outbox, SOURCE)
IDEMPOTENCY = IdempotencyKeys(idempotency)
HOLDING = ("pending", "confirmed")  # redemptions that hold stock and count against a member's limit
# After the commit, for the requests of this process that wait on a redemption (``settlements``):
REQUESTED: Signal[str] = Signal("redemption requested")  # created, pending
SETTLED: Signal[list[schemas.Redemption]] = Signal("redemptions settled")  # confirmed or rejected
CODE_ATTEMPTS = 5
VOUCHERS = Base.metadata.tables["voucher"]
MEMBERS = Base.metadata.tables["member"]
REWARDS = Base.metadata.tables["reward"]
REDEMPTIONS = Base.metadata.tables["redemption"]
TERMS = ("points_cost", "active", "valid_from", "valid_until", "min_tier", "stock_left", "per_member_limit")

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


async def read_redemption(conn: AsyncConnection, redemption_id: str) -> schemas.Redemption:
    """One statement, no ORM: what a waiting ``GET`` reads (``Settlements``)."""
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


async def request_redemption(session: AsyncSession, body: schemas.RedemptionIn) -> tuple[dict[str, Any], bool]:
    """Check eligibility, reserve the stock and ask points for the points (``redemption.requested``); returns
    (answer, created). A refusal raises, so the caller's rollback leaves the id free for another try.

    Redemptions of one reward run side by side: the reward's row is only share-locked while its terms are
    read, and a limited stock is taken by the last statement, so the row's exclusive lock lasts until the
    commit and no longer."""
    reward = await _reward_terms(session, body.reward_id)
    if reward is None:
        return await _request_for_unknown_reward(session, body)
    now = utcnow()
    answer = _pending_answer(body, reward.points_cost * body.quantity, now)
    replay = await _claim(session, body, answer, now)
    if replay is not None:
        return replay, False
    standing, ladder, held = await _member_facts(session, body, reward)
    refused = domain.refusal(reward, standing, ladder, quantity=body.quantity, held=held, now=now)
    if refused is not None:
        raise REFUSALS[refused](_refusal_detail(refused, body.reward_id, reward, body.quantity, held))
    await session.execute(REDEMPTIONS.insert().values(**_row_of(answer, now), last_requested_at=now, asks=1))
    await OUTBOX.add(session, events.RedemptionRequested(
        member_id=body.member_id, redemption_id=body.redemption_id, reward_id=body.reward_id,
        quantity=body.quantity, points_cost=answer["points_cost"],
    ))
    if reward.stock_left is not None:
        await _take_stock(session, body.reward_id, body.quantity)
    unit_of_work(session).on_commit(partial(REQUESTED.emit, body.redemption_id))
    return answer, True


async def _reward_terms(session: AsyncSession, reward_id: str) -> domain.RewardTerms | None:
    """The reward's terms under a KEY SHARE lock: other redemptions take it too, but ``put_reward`` (FOR
    UPDATE) waits for this transaction, so the terms cannot change before it commits and an operator's new
    ``stock`` counts the units this request holds."""
    row = (await session.execute(
        select(*(REWARDS.c[name] for name in TERMS)).where(REWARDS.c.reward_id == reward_id)
        .with_for_update(read=True, key_share=True)
    )).first()
    return None if row is None else domain.RewardTerms(**row._asdict())


async def _request_for_unknown_reward(session: AsyncSession, body: schemas.RedemptionIn
                                      ) -> tuple[dict[str, Any], bool]:
    """A retry still replays (or conflicts) when its reward is gone: the id is checked before the 404."""
    replay = await IDEMPOTENCY.claim(session, "redemption", body.redemption_id, request_hash(body))
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


async def _claim(session: AsyncSession, body: schemas.RedemptionIn, answer: dict[str, Any], now: datetime
                 ) -> dict[str, Any] | None:
    """Claims the id with its answer in one statement (no second write to complete the key); None when this
    request is the first with the id, else the first answer to replay. A concurrent first request is waited
    for: PostgreSQL's ON CONFLICT waits for its commit or rollback."""
    body_hash = request_hash(body)
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
        member = await _member(session, body.member_id)
        standing = domain.MemberStanding(tier_id=member.tier_id, tier_rank=member.tier_rank,
                                         available=member.available)
        held = await _held(session, body.reward_id, body.member_id)
    elif reward.min_tier is not None:
        standing = await _standing(session, body.member_id)
    ladder = await _ladder(session) if reward.min_tier is not None else {}
    return standing, ladder, held


async def _take_stock(session: AsyncSession, reward_id: str, quantity: int) -> None:
    """Takes units only if that many are left, in one statement: concurrent requests queue on the row for
    this statement's time, and the one that finds too few left is refused (its transaction rolls back)."""
    taken = await session.execute(
        update(REWARDS).where(REWARDS.c.reward_id == reward_id, REWARDS.c.stock_left >= quantity)
        .values(stock_left=REWARDS.c.stock_left - quantity)
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
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


def _event(redemption: Redemption | schemas.Redemption, cls: type[events.RedemptionEvent], **fields: Any
           ) -> events.RedemptionEvent:
    return cls(member_id=redemption.member_id, redemption_id=redemption.redemption_id,
               reward_id=redemption.reward_id, quantity=redemption.quantity, points_cost=redemption.points_cost,
               **fields)


async def _give_back_stock(session: AsyncSession, units: dict[str, int]) -> None:
    """Units come back to limited rewards (``domain.restock``, in one statement per reward, in reward order
    so that two transactions lock rewards in the same order). An unlimited reward's row is not locked."""
    left = REWARDS.c.stock_left
    for reward_id in sorted(units):
        back = left + units[reward_id]
        await session.execute(
            update(REWARDS).where(REWARDS.c.reward_id == reward_id, left.is_not(None), REWARDS.c.stock.is_not(None))
            .values(stock_left=case((back > REWARDS.c.stock, REWARDS.c.stock), else_=back))
        )


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
    await session.flush()
    await _give_back_stock(session, {redemption.reward_id: redemption.quantity})
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
#
# The settlements take a batch of points' answers (the consumer's batch handlers; one event is a batch of
# one): a few statements for the whole batch, each redemption settled by a conditional UPDATE that only
# a pending redemption passes, so a duplicate or late answer changes nothing.


async def confirm_redemption(session: AsyncSession, data: events.PointsSpent) -> None:
    await confirm_redemptions(session, [data])


async def confirm_redemptions(session: AsyncSession, batch: Sequence[events.PointsSpent]) -> None:
    """Points were taken: each redemption still pending is confirmed with a new voucher."""
    await _record_balances(session, [(data.member_id, data.balance.available) for data in batch])
    codes = {data.redemption_id: domain.new_voucher_code() for data in batch}
    confirmed = await _settle(session, list(codes), status="confirmed",
                              voucher_code=case(codes, value=REDEMPTIONS.c.redemption_id))
    if not confirmed:
        return
    await _issue_vouchers(session, confirmed)
    await OUTBOX.add(session, *[_event(redemption, events.RedemptionConfirmed) for redemption in confirmed])
    _mark_settled(session, confirmed)


async def reject_redemption(session: AsyncSession, data: events.PointsSpendDeclined) -> None:
    await reject_redemptions(session, [data])


async def reject_redemptions(session: AsyncSession, batch: Sequence[events.PointsSpendDeclined]) -> None:
    """Points declined: each redemption still pending is rejected with points' reason and its stock released."""
    reasons: dict[str, str] = {}
    for data in batch:
        reasons.setdefault(data.redemption_id, data.reason)  # the first answer settles it, as one by one
    rejected = await _settle(session, list(reasons), status="rejected",
                             reason=case(reasons, value=REDEMPTIONS.c.redemption_id))
    if not rejected:
        return
    units: dict[str, int] = {}
    for redemption in rejected:
        units[redemption.reward_id] = units.get(redemption.reward_id, 0) + redemption.quantity
    await _give_back_stock(session, units)
    await OUTBOX.add(session, *[_event(r, events.RedemptionRejected, reason=r.reason) for r in rejected])
    _mark_settled(session, rejected)


async def _settle(session: AsyncSession, redemption_ids: list[str], **values: Any) -> list[schemas.Redemption]:
    """Moves the pending ones among ``redemption_ids`` out of pending in one statement (which locks them);
    returns them as settled, in the order of ``redemption_ids`` (the order their answers came in)."""
    rows = (await session.execute(
        update(REDEMPTIONS)
        .where(REDEMPTIONS.c.redemption_id.in_(redemption_ids), REDEMPTIONS.c.status == "pending")
        .values(updated_at=utcnow(), **values)
        .returning(*REDEMPTIONS.c)
    )).all()
    order = {redemption_id: index for index, redemption_id in enumerate(redemption_ids)}
    settled = [schemas.Redemption.model_validate(row._asdict()) for row in rows]
    return sorted(settled, key=lambda redemption: order[redemption.redemption_id])


async def _issue_vouchers(session: AsyncSession, confirmed: list[schemas.Redemption]) -> None:
    """The vouchers of the codes ``_settle`` gave the redemptions; a code already taken is drawn again (a 1
    in 2**75 event per pair) and its redemption updated, until every voucher is in."""
    dialect = session.get_bind().dialect.name
    now = utcnow()
    waiting = {redemption.redemption_id: redemption for redemption in confirmed}
    for _ in range(CODE_ATTEMPTS):
        inserted = set((await session.execute(
            insert_ignoring_conflicts(VOUCHERS, dialect).returning(VOUCHERS.c.redemption_id),
            [{"code": r.voucher_code, "redemption_id": r.redemption_id, "reward_id": r.reward_id,
              "member_id": r.member_id, "status": "active", "created_at": now} for r in waiting.values()],
        )).scalars())
        waiting = {key: r for key, r in waiting.items() if key not in inserted}
        if not waiting:
            return
        for redemption in waiting.values():
            redemption.voucher_code = domain.new_voucher_code()
            await session.execute(update(REDEMPTIONS).where(REDEMPTIONS.c.redemption_id == redemption.redemption_id)
                                  .values(voucher_code=redemption.voucher_code))
    raise RuntimeError(f"no free voucher code after {CODE_ATTEMPTS} attempts")


def _mark_settled(session: AsyncSession, settled: list[schemas.Redemption]) -> None:
    """For ``Settlements``: the requests waiting on these get them once the transaction commits."""
    if settled:
        unit_of_work(session).on_commit(partial(SETTLED.emit, settled))


async def _record_balances(session: AsyncSession, balances: Sequence[tuple[str, int]]) -> None:
    """The balances points.* events carried, one upsert for all (events of one member arrive in order: the
    last one is current). Rows in member order, so concurrent upserts lock them in the same order. Executed
    with many rows, so the statement is compiled once whatever the batch's size."""
    if not balances:
        return
    now = utcnow()
    latest = dict(balances)
    dialect = session.get_bind().dialect.name
    await session.execute(upsert(MEMBERS, dialect, ["member_id"], only=["available", "updated_at"]), [
        {"member_id": member_id, "tier_rank": 0, "available": latest[member_id], "updated_at": now}
        for member_id in sorted(latest)])


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
    await record_points_events(session, [data])


async def record_points_events(session: AsyncSession, batch: Sequence[events.PointsEvent]) -> None:
    """Any points.* event with a balance: keep the member's available points for the catalog's checks."""
    await _record_balances(session, [(data.member_id, data.balance.available) for data in batch])


async def record_member(session: AsyncSession, data: events.MemberEnrolled) -> None:
    member = await _member(session, data.member_id)
    member.status = data.status
    member.updated_at = utcnow()


async def apply_tier_change(session: AsyncSession, data: events.TierChanged) -> None:
    await apply_tier_changes(session, [data])


async def apply_tier_changes(session: AsyncSession, batch: Sequence[events.TierChanged]) -> None:
    """Remember each member's tier and rank (its last event: a member's events come in order), in one upsert,
    and the ladder the events carry unless a newer one is known, decided event by event in order."""
    now = utcnow()
    latest = {data.member_id: data for data in batch}
    dialect = session.get_bind().dialect.name
    await session.execute(upsert(MEMBERS, dialect, ["member_id"], only=["tier_id", "tier_rank", "updated_at"]), [
        {"member_id": member_id, "tier_id": data.to_tier, "tier_rank": data.rank, "available": 0, "updated_at": now}
        for member_id, data in sorted(latest.items())])
    with_ladder = [data for data in batch if data.ladder]
    if not with_ladder:
        return
    known: list[tuple[str, int, datetime]] = [
        (tier_id, rank, as_of) for tier_id, rank, as_of in (await session.execute(
            select(Tier.tier_id, Tier.rank, Tier.as_of))).all()]
    ladder = known
    for data in with_ladder:
        if {t: r for t, r, _ in ladder} == {t: r for r, t in enumerate(data.ladder)}:
            continue
        if ladder and max(as_of for _, _, as_of in ladder) > data.at:
            continue  # an older event that arrived late (events of different members are not ordered)
        ladder = [(tier_id, rank, data.at) for rank, tier_id in enumerate(data.ladder)]
    if ladder is not known:
        await session.execute(delete(Tier))
        session.add_all([Tier(tier_id=tier_id, rank=rank, as_of=as_of) for tier_id, rank, as_of in ladder])
        await session.flush()
