"""A goal's catalog reward: points sends ``goal.reached`` with a ``reward_id`` and rewards gives one unit for
free, as a redemption (``source`` ``goal``, ``redemption_id`` = ``goal_id``, ``points_cost`` 0) confirmed with
its voucher at once, or rejected with the reason, in the event's transaction. There is nothing to pay, so
points is never asked (no ``redemption.requested``).

The program chose the reward for the goal, so only the reward itself is asked (``domain.gift_refusal``): it
exists, is active and in its validity window, and has a unit left, taken like any redemption's. The member's
tier and per-member limit are not (and the gift does not count against the limit, ``catalog.REDEEMED``).

The ``goal_id`` is claimed as a redemption id, as a client's ``redemption_id`` is (``idempotency_key``,
operation ``redemption``): the same goal reached again under another event id gives nothing more, even when
its first event found no reward and left no redemption row, and a client that posts that id gets
``409 idempotency-conflict``.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards import domain, schemas
from services.rewards.service import redemptions, settlement
from services.rewards.service.redemptions import IDEMPOTENCY
from services.rewards.service.saga import OUTBOX, REDEMPTIONS, redemption_event
from shared.clock import utcnow
from shared.errors import IdempotencyConflict
from shared.http.idempotency import request_hash
from shared.messaging import events
from shared.messaging.consumer import EventRefused

log = logging.getLogger(__name__)
GOAL = "goal"


async def issue_goal_reward(session: AsyncSession, data: events.GoalReached) -> None:
    """The goal's reward as a confirmed redemption with a voucher, or a rejected one (``redemption.rejected``
    with ``out-of-stock``, ``reward-inactive``, ``reward-unavailable``; ``reward-not-found`` leaves no row, as a
    redemption refers to a reward of the catalog). A goal that gives points only is not rewards' business."""
    if data.reward_id is None:
        return
    now = utcnow()
    if not await _claim(session, data.goal_id):
        return
    terms = await redemptions.reward_terms(session, data.reward_id)
    refused = domain.gift_refusal(terms, now=now)
    if refused is None and terms is not None and terms.stock_left is not None \
            and not await redemptions.took_stock(session, data.reward_id, 1):
        refused = "out-of-stock"
    gift = schemas.Redemption(
        redemption_id=data.goal_id, member_id=data.member_id, reward_id=data.reward_id, quantity=1, points_cost=0,
        status="confirmed" if refused is None else "rejected", reason=refused,
        voucher_code=domain.new_voucher_code() if refused is None else None, source=GOAL,
        created_at=now, updated_at=now,
    )
    if refused != "reward-not-found":
        await session.execute(REDEMPTIONS.insert().values(**gift.model_dump(), last_requested_at=now, asks=0))
    if refused is None:
        await settlement.issue_vouchers(session, [gift])
        await OUTBOX.add(session, redemption_event(gift, events.RedemptionConfirmed))
        return
    log.warning("goal %s of rule %s: reward %s not given (%s)", data.goal_id, data.rule_id, data.reward_id, refused)
    await OUTBOX.add(session, redemption_event(gift, events.RedemptionRejected, reason=refused))


async def _claim(session: AsyncSession, goal_id: str) -> bool:
    """Whether this is the first time the goal is given; a client's redemption holding the id is refused (to
    the dead letters: an operator sees the goal whose reward could not be given)."""
    try:
        return await IDEMPOTENCY.claim(session, "redemption", goal_id, _goal_hash(goal_id)) is None
    except IdempotencyConflict:
        raise EventRefused(f"redemption id {goal_id!r} of the goal's reward is taken by a client's redemption"
                           ) from None


def _goal_hash(goal_id: str) -> str:
    """What the goal's claim of its id records: no client's request hashes to it (theirs hash a
    ``RedemptionIn``), so a client's request with the id conflicts and never replays."""
    return request_hash({"goal_id": goal_id}, owner=GOAL)
