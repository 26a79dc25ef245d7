"""The catalog: rewards created, changed and read, and the catalog's pages with each reward marked eligible
or not for a member; also the units that redemptions hold, which a new stock and a per-member limit count."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards import domain, schemas
from services.rewards.errors import RewardNotFound
from services.rewards.models import Redemption, Reward, audit
from services.rewards.service import members
from shared.audit import AuditTrail
from shared.clock import utcnow
from shared.http.pagination import decode_cursor, encode_cursor

HOLDING = ("pending", "confirmed")  # redemptions that hold stock and count against a member's limit
# ... unless a goal gave them: a gift holds stock but is not what the per-member limit is about (what a member
# may redeem for points), so it neither counts against the limit nor is checked against it (service.goals).
REDEEMED = Redemption.source == "member"
AUDIT = AuditTrail(audit)  # the catalog's changes (shared.audit)


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


async def put_reward(session: AsyncSession, reward_id: str, body: schemas.RewardIn, actor: str
                     ) -> tuple[Reward, bool]:
    """Create a reward or replace its terms, with its audit entry; returns (reward, created). Setting
    ``stock`` counts the units that pending and confirmed redemptions hold: ``stock_left`` is what remains of
    the new stock."""
    reward = await session.get(Reward, reward_id, with_for_update=True)
    now = utcnow()
    created = reward is None
    before = None if reward is None else reward_out(reward)
    held = 0 if created else await units_held(session, reward_id)
    if reward is None:
        reward = Reward(reward_id=reward_id, created_at=now)
        session.add(reward)
    for field, value in body.model_dump().items():
        setattr(reward, field, value)
    reward.stock_left = domain.stock_left_for(body.stock, held)
    reward.updated_at = now
    await session.flush()
    await AUDIT.record(session, actor=actor, action="reward.created" if created else "reward.updated",
                       resource=f"reward:{reward_id}", before=before, after=reward_out(reward))
    return reward, created


async def units_held(session: AsyncSession, reward_id: str, member_id: str | None = None) -> int:
    """The units of the reward that pending and confirmed redemptions hold: in all (the stock), or those one
    member redeemed (the member's limit: no goal's gifts)."""
    query = select(func.coalesce(func.sum(Redemption.quantity), 0)).where(
        Redemption.reward_id == reward_id, Redemption.status.in_(HOLDING))
    if member_id is not None:
        query = query.where(Redemption.member_id == member_id, REDEEMED)
    return int((await session.execute(query)).scalar_one())


async def catalog_page(session: AsyncSession, limit: int, cursor: str | None, member_id: str | None
                       ) -> tuple[list[schemas.CatalogItem], str | None]:
    """Rewards by id; with a member, each marked eligible or not with the reason."""
    query = select(Reward).order_by(Reward.reward_id)
    if cursor:
        (after,) = decode_cursor(cursor, (str,))
        query = query.where(Reward.reward_id > after)
    rows = list((await session.execute(query.limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [schemas.CatalogItem.model_validate(r, from_attributes=True) for r in rows]
    if member_id is not None and rows:
        member = await members.standing(session, member_id)
        ladder = await members.tier_ladder(session)
        held = dict((await session.execute(
            select(Redemption.reward_id, func.sum(Redemption.quantity))
            .where(Redemption.member_id == member_id, Redemption.reward_id.in_([r.reward_id for r in rows]),
                   Redemption.status.in_(HOLDING), REDEEMED)
            .group_by(Redemption.reward_id)
        )).all())
        now = utcnow()
        for item, reward in zip(items, rows, strict=True):
            item.reason = domain.ineligibility(_terms(reward), member, ladder,
                                               held=int(held.get(reward.reward_id, 0)), now=now)
            item.eligible = item.reason is None
    return items, encode_cursor([rows[-1].reward_id]) if more else None
