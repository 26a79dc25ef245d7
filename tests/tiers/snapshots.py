"""What a tiers database holds that a rebuild must reproduce, read straight from its tables."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from services.tiers.models import Member, PointsBalance, Segment, SegmentRun, TierHistory, outbox
from tests.support import outbox_events


async def tiers_state(url: str) -> dict[str, Any]:
    """What must come out the same: tiers and their history, segments, balances, the run's findings."""
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        members = {r.member_id: (r.tier_id, r.status, r.enrolled_at) for r in await conn.execute(select(Member))}
        history: dict[str, list[tuple[str | None, str, str]]] = {}
        for r in await conn.execute(select(TierHistory).order_by(TierHistory.entry_id)):
            history.setdefault(r.member_id, []).append((r.from_tier, r.to_tier, r.reason))
        segments = {r.member_id: (r.recency, r.frequency, r.monetary, r.value_class, r.lifecycle, r.clv_estimate,
                                  r.revenue, r.purchases, r.last_purchase_at)
                    for r in await conn.execute(select(Segment))}
        balances = {r.member_id: (r.available, r.pending, r.held) for r in await conn.execute(select(PointsBalance))}
        run = (await conn.execute(select(SegmentRun))).one()
        pending = (await conn.execute(select(outbox.c.event_type).where(outbox.c.published_at.is_(None)))).all()
    await engine.dispose()
    return {"members": members, "history": history, "segments": segments, "balances": balances,
            "run": (run.computed_at, run.members, run.scored, run.revenue, run.top_20pct_revenue_share,
                    run.retention_rate, run.expected_lifetime_years),
            "unpublished": [r.event_type for r in pending]}


async def standing(app: FastAPI, client: httpx.AsyncClient, member_id: str) -> dict[str, Any]:
    """A member's tier and qualifying value, the history oldest first and the tier changes announced, as the
    API and the outbox tell them (to compare two runs of one story)."""
    tier = (await client.get(f"/v1/members/{member_id}/tier")).json()
    history = (await client.get(f"/v1/members/{member_id}/tier/history")).json()["items"]
    return {
        "tier": (tier["tier_id"], tier["qualifying_value"]),
        "history": [(h["from_tier"], h["to_tier"], h["reason"]) for h in reversed(history)],
        "announced": [(e["data"]["from_tier"], e["data"]["to_tier"], e["data"]["reason"])
                      for e in await outbox_events(app, "tier.changed") if e["subject"] == member_id],
    }
