"""Use cases of the tiers service, one transaction each (the caller commits; these only flush).

A member's tier is evaluated (``domain.evaluate``) after each purchase fact, for every member when the
program changes, and by the hourly ``evaluate_all`` for members whose retention has ended. Segments
(``segments.segment_all``) are computed for everyone by ``recompute_segments``, every 15 minutes; a purchase
or refund moves its member's lifecycle at once.

Locks are always taken in one order: the program row first (shared by evaluations, exclusive for a program
change), then member rows in member_id order. So an evaluation never applies a ladder that a committed
change replaced, a member enrolled during a change is evaluated against the new ladder, and nothing
deadlocks. The segmentation run locks its run row and then every segment row, and takes no other lock; a
purchase locks its member's segment row last, after the program and member rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from services.tiers import domain, schemas, segments
from services.tiers.errors import MemberNotFound
from services.tiers.models import (
    Base,
    Member,
    PointsBalance,
    Purchase,
    Refund,
    Segment,
    SegmentRun,
    Tier,
    TierHistory,
    TierProgram,
    outbox,
)
from shared.clock import utcnow
from shared.db.database import Database
from shared.db.statements import insert_ignoring_conflicts
from shared.db.types import MONEY_SCALE, Money
from shared.errors import InvalidRequest
from shared.http.pagination import decode_cursor, encode_cursor
from shared.messaging import events
from shared.messaging.outbox import Outbox

log = logging.getLogger(__name__)

SOURCE = "tiers"
OUTBOX = Outbox(outbox, SOURCE)
BATCH_SIZE = 500
CENT = Decimal("0.01")
PROGRAM_TABLE = Base.metadata.tables["tier_program"]
RUN_TABLE = Base.metadata.tables["segment_run"]
MEMBER_TABLE: Table = Base.metadata.tables["member"]
PURCHASE_TABLE: Table = Base.metadata.tables["purchase"]
SEGMENT_TABLE: Table = Base.metadata.tables["segment"]
HISTORY_TABLE: Table = Base.metadata.tables["tier_history"]


# --- program ---------------------------------------------------------------------------------------


async def load_program(session: AsyncSession) -> domain.Program:
    """The stored program, or the default one before the first PUT."""
    row = await session.get(TierProgram, 1)
    tiers = (await session.execute(
        select(Tier.tier_id, Tier.name, Tier.threshold, Tier.earn_multiplier, Tier.perks).order_by(Tier.position)
    )).all()
    if row is None or not tiers:
        return domain.DEFAULT_PROGRAM
    return domain.Program(
        basis=cast(domain.Basis, row.basis), window_days=row.window_days, retention_days=row.retention_days,
        downgrade=cast(domain.Downgrade, row.downgrade),
        tiers=tuple(domain.Tier(t.tier_id, t.threshold, t.earn_multiplier, t.name, tuple(t.perks)) for t in tiers),
    )


async def program_for_evaluation(session: AsyncSession) -> domain.Program:
    """The program, its row share-locked (and created with the defaults if missing, so there is a row to
    lock) until the caller's transaction ends."""
    share = {"read": True, "key_share": True}
    if await session.get(TierProgram, 1, with_for_update=share) is None:
        default = domain.DEFAULT_PROGRAM
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
    program = domain.Program(
        basis=body.basis, window_days=body.window_days, retention_days=body.retention_days,
        downgrade=body.downgrade,
        tiers=tuple(domain.Tier(t.tier_id, t.threshold, t.earn_multiplier, t.name, tuple(t.perks))
                    for t in body.tiers),
    )
    problems = domain.ladder_problems(program.tiers, program.basis)
    if problems:
        errors = [{"loc": ["body", "tiers", index, field], "msg": msg} for index, field, msg in problems]
        index, field, msg = problems[0]
        raise InvalidRequest(f"body.tiers.{index}.{field}: {msg}", errors=errors)

    values = {"basis": program.basis, "window_days": program.window_days,
              "retention_days": program.retention_days, "downgrade": program.downgrade,
              "updated_at": now, "updated_by": actor}
    dialect = session.get_bind().dialect.name
    await session.execute(insert_ignoring_conflicts(PROGRAM_TABLE, dialect).values(id=1, **values))
    row = await session.get(TierProgram, 1, with_for_update=True)  # waits for evaluations and other changes
    assert row is not None
    previous = await load_program(session)
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
    return program_out(program, row)


def program_out(program: domain.Program, row: TierProgram | None) -> schemas.TierProgram:
    return schemas.TierProgram(
        basis=program.basis, window_days=program.window_days, retention_days=program.retention_days,
        downgrade=program.downgrade,
        tiers=[schemas.TierOut(tier_id=t.tier_id, name=t.name, threshold=_plain(t.threshold),
                               earn_multiplier=_plain(t.earn_multiplier), perks=list(t.perks))
               for t in program.tiers],
        updated_at=row.updated_at if row else None, updated_by=row.updated_by if row else None,
    )


# --- members ---------------------------------------------------------------------------------------


async def member_tier(session: AsyncSession, member_id: str, *, now: datetime | None = None) -> schemas.MemberTier:
    """The member's tier and progress; the qualifying value is summed now, so purchases that left the
    window no longer count even before the next evaluation."""
    now = now or utcnow()
    member = await _get_member(session, member_id)
    program = await load_program(session)
    window_start = program.window_start(now)
    facts = await _facts(session, [member_id], window_start)
    value = domain.qualifying_value(facts.get(member_id, ()), program.basis, window_start)
    rank = program.rank_of(member.tier_id)
    tier = program.tiers[rank] if rank is not None else None
    above = domain.next_tier(program.tiers, member.tier_id)
    return schemas.MemberTier(
        member_id=member.member_id, tier_id=member.tier_id, name=tier.name if tier else member.tier_id,
        since=member.tier_since, retained_until=member.retained_until,
        qualifying_value=_amount(value, program.basis), window_start=window_start,
        next_tier=schemas.NextTier(
            tier_id=above.tier_id, threshold=_amount(above.threshold, program.basis),
            remaining=_amount(max(above.threshold - value, Decimal(0)), program.basis),
        ) if above else None,
        earn_multiplier=_plain(tier.earn_multiplier) if tier else "1",
    )


async def history_page(
    session: AsyncSession, member_id: str, limit: int, cursor: str | None
) -> tuple[list[schemas.HistoryEntry], str | None]:
    """Newest first, keyset on entry_id so a page costs the same however long the history is."""
    await _get_member(session, member_id)
    query = select(TierHistory).where(TierHistory.member_id == member_id)
    if cursor:
        (before,) = decode_cursor(cursor, 1)
        if not isinstance(before, int):
            raise InvalidRequest("cursor: not a cursor this service gave out")
        query = query.where(TierHistory.entry_id < before)
    rows = list((await session.execute(query.order_by(TierHistory.entry_id.desc()).limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    items = [schemas.HistoryEntry(from_tier=r.from_tier, to_tier=r.to_tier, reason=r.reason, at=r.at) for r in rows]
    return items, encode_cursor([rows[-1].entry_id]) if more else None


async def _get_member(session: AsyncSession, member_id: str) -> Member:
    member = await session.get(Member, member_id)
    if member is None:
        raise MemberNotFound(f"No member '{member_id}' is known to tiers; members appear with their enrolment "
                             "or their first purchase.")
    return member


# --- events from points ----------------------------------------------------------------------------


async def record_member(session: AsyncSession, data: events.MemberEnrolled, *, now: datetime | None = None) -> None:
    """``member.enrolled`` / ``member.updated``: a member not known yet starts at the lowest tier."""
    now = now or utcnow()
    member = await _known_member(session, data.member_id, await program_for_evaluation(session), now)
    member.status = data.status
    member.enrolled_at = data.enrolled_at
    member.updated_at = now
    await session.flush()


async def record_purchase(
    session: AsyncSession, data: events.PurchaseRecorded, *, now: datetime | None = None
) -> None:
    """Store the purchase's facts (once per purchase_id, however often it is told) and evaluate."""
    await record_purchases(session, [data], now=now)


async def record_purchases(
    session: AsyncSession, batch: Sequence[events.PurchaseRecorded], *, now: datetime | None = None
) -> None:
    """Purchases in the order they were told, in one go: a consumer catching up on a backlog needs the same
    dozen statements for thousands of events as for one. What the evaluations need is read once (members
    locked, the purchases as stored, their refunds, each member's qualifying value summed by the database);
    the events are then replayed in memory in their order, each member evaluated after each of their
    purchases as when the events come one at a time (two purchases that each cross a threshold make two
    changes of tier, in the history too), and the outcome is written back in bulk."""
    now = now or utcnow()
    await session.flush()  # what earlier events of the transaction staged is in the rows read below
    await _plan_for_the_arrays(session)
    program = await program_for_evaluation(session)
    replay = _Replay(program, now, ROUND_HALF_UP if _is_postgres(session) else ROUND_HALF_EVEN)
    replay.members = await _locked_standings(session, sorted({d.member_id for d in batch}), now)
    purchase_ids = list(dict.fromkeys(d.purchase_id for d in batch))
    replay.purchases = await _stored_purchases(session, purchase_ids)
    replay.refunds = await _refund_sums(session, purchase_ids)
    values = await _window_values(session, list(replay.members), program.basis, program.window_start(now))
    for member in replay.members.values():
        member.value = values.get(member.member_id, Decimal(0))
    replay.lifecycles = await _Lifecycles.load(session, [m for m in replay.members.values() if not m.new], now)
    replay.enrol_new_members()
    for data in batch:
        replay.apply(data)
    await replay.write(session)


@dataclass
class _Standing:
    """A locked member row as the batch's purchases move it; ``value`` is the qualifying value so far."""

    member_id: str
    tier_id: str
    since: datetime
    retained_until: datetime
    enrolled_at: datetime  # the enrolment, or when tiers first saw the member
    new: bool = False
    moved: bool = False
    value: Decimal = Decimal(0)


@dataclass(frozen=True)
class _Told:
    """A purchase as stored, or as last told in the batch."""

    member_id: str
    currency: str
    facts: domain.PurchaseFacts


class _Replay:
    """The batch's purchases applied in memory, one at a time, with the rules ``settle`` and
    ``_refresh_lifecycles`` apply to one purchase; ``write`` stores the outcome."""

    def __init__(self, program: domain.Program, now: datetime, rounding: str) -> None:
        self.program = program
        self.rounding = rounding  # how the database rounds money to four decimals
        self.policy = program.policy
        self.now = now
        self.window_start = program.window_start(now)
        self.members: dict[str, _Standing] = {}
        self.purchases: dict[str, _Told] = {}
        self.refunds: dict[str, tuple[Decimal, int]] = {}
        self.lifecycles = _Lifecycles.none(now)
        self.written: dict[str, _Told] = {}
        self.history: list[dict[str, Any]] = []
        self.announcements: list[events.EventData] = []

    def enrol_new_members(self) -> None:
        """A member seen for the first time starts at the lowest tier (no facts of theirs can exist yet)."""
        decision = domain.evaluate(None, Decimal(0), self.program.tiers, self.policy, self.now)
        for member in self.members.values():
            if member.new:
                self._change(member.member_id, None, decision)
                member.tier_id, member.since, member.retained_until = (decision.tier_id, decision.since,
                                                                       decision.retained_until)

    def apply(self, data: events.PurchaseRecorded) -> None:
        """Store the purchase's facts (set, not added: a purchase told twice counts once) and evaluate."""
        known = self.purchases.get(data.purchase_id)
        if known is not None and known.member_id != data.member_id:
            log.warning("purchase %s is already %s's; ignored for %s", data.purchase_id, known.member_id,
                        data.member_id)
            return
        refunded, reversed_ = self.refunds.get(data.purchase_id, (Decimal(0), 0))
        told = _Told(data.member_id, data.currency, domain.PurchaseFacts(
            occurred_at=data.occurred_at, total=_as_stored(data.total, self.rounding), refunded=refunded,
            points=data.points_earned, points_reversed=reversed_))
        member = self.members[data.member_id]
        member.value += self._counted(told) - (self._counted(known) if known is not None else 0)
        self.purchases[data.purchase_id] = self.written[data.purchase_id] = told
        self._evaluate(member)
        changed = self.lifecycles.refresh(member, data.purchase_id, told)
        if changed is not None:
            self.announcements.append(changed)

    def _counted(self, told: _Told) -> Decimal:
        """What the purchase adds to its member's qualifying value (``domain.qualifying_value``)."""
        if told.facts.occurred_at < self.window_start:
            return Decimal(0)
        return told.facts.value(self.program.basis)

    def _evaluate(self, member: _Standing) -> None:
        standing = domain.Standing(member.tier_id, member.since, member.retained_until)
        decision = domain.evaluate(standing, member.value, self.program.tiers, self.policy, self.now)
        if decision.reason is not None:
            self._change(member.member_id, member.tier_id, decision)
        if decision.standing != standing:
            member.tier_id, member.since, member.retained_until = (decision.tier_id, decision.since,
                                                                   decision.retained_until)
            member.moved = True

    def _change(self, member_id: str, from_tier: str | None, decision: domain.Decision) -> None:
        """A change of tier: its history row and its announcement, in the order they happen."""
        assert decision.reason is not None
        self.history.append({"member_id": member_id, "from_tier": from_tier, "to_tier": decision.tier_id,
                             "reason": decision.reason, "at": self.now})
        self.announcements.append(_tier_changed(member_id, from_tier, decision, self.program, decision.reason,
                                                self.now))

    async def write(self, session: AsyncSession) -> None:
        """The outcome in a handful of bulk statements (members first: the other rows refer to them)."""
        await _insert_members(session, [m for m in self.members.values() if m.new], self.now)
        await _update_members(session, [m for m in self.members.values() if m.moved and not m.new], self.now)
        await _upsert_purchases(session, self.written)
        await _insert_rows(session, HISTORY_TABLE, self.history)
        await OUTBOX.add(session, *self.announcements)
        await self.lifecycles.write(session)
        _forget_stale_objects(session)


def _as_stored(amount: Decimal, rounding: str) -> Decimal:
    """The amount as the money column keeps it (four decimals: PostgreSQL's NUMERIC rounds half away from
    zero, ``Money`` on SQLite half to even), so the replay counts what a later read would."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -MONEY_SCALE:
        return amount
    return amount.quantize(Decimal(1).scaleb(-MONEY_SCALE), rounding=rounding)


async def _locked_standings(session: AsyncSession, member_ids: list[str], now: datetime) -> dict[str, _Standing]:
    """The members' rows, locked in id order (see ``_known_members``); a member not known yet is marked new
    (``_Replay.enrol_new_members`` places them, ``_insert_members`` stores them)."""
    table = MEMBER_TABLE
    rows = (await session.execute(
        select(table.c.member_id, table.c.tier_id, table.c.tier_since, table.c.retained_until, table.c.enrolled_at,
               table.c.first_seen_at)
        .where(_among(session, table.c.member_id, member_ids)).order_by(table.c.member_id).with_for_update()
    )).all()
    members = {row.member_id: _Standing(row.member_id, row.tier_id, row.tier_since, row.retained_until,
                                        row.enrolled_at or row.first_seen_at) for row in rows}
    for member_id in member_ids:
        if member_id not in members:
            members[member_id] = _Standing(member_id, "", now, now, now, new=True)
    return members


async def _stored_purchases(session: AsyncSession, purchase_ids: list[str]) -> dict[str, _Told]:
    table = PURCHASE_TABLE
    rows = (await session.execute(
        select(table.c.purchase_id, table.c.member_id, table.c.currency, table.c.occurred_at, table.c.total,
               table.c.refunded, table.c.points_earned, table.c.points_reversed)
        .where(_among(session, table.c.purchase_id, purchase_ids))
    )).all()
    return {row.purchase_id: _Told(row.member_id, row.currency, domain.PurchaseFacts(
        occurred_at=row.occurred_at, total=row.total, refunded=row.refunded, points=row.points_earned,
        points_reversed=row.points_reversed)) for row in rows}


async def _refund_sums(session: AsyncSession, purchase_ids: list[str]) -> dict[str, tuple[Decimal, int]]:
    """Each purchase's refunded amount and reversed points: the sums of its refunds' facts (``_sync_refunds``)."""
    rows = (await session.execute(
        select(Refund.purchase_id, func.sum(Refund.amount).label("amount"),
               func.sum(Refund.points_reversed).label("points"))
        .where(_among(session, Refund.purchase_id, purchase_ids)).group_by(Refund.purchase_id)
    )).all()
    return {row.purchase_id: (row.amount, int(row.points)) for row in rows}


async def _window_values(
    session: AsyncSession, member_ids: list[str], basis: domain.Basis, window_start: datetime
) -> dict[str, Decimal]:
    """Each member's qualifying value as stored, summed by the database: ``domain.qualifying_value`` over
    their purchases, without carrying every purchase of the window over the wire."""
    table = PURCHASE_TABLE
    total: ColumnElement[Any]
    if basis == "points":
        net = table.c.points_earned - table.c.points_reversed
        total = func.sum(case((net > 0, net), else_=literal_column("0")))
    else:
        net = table.c.total - table.c.refunded
        total = type_coerce(func.sum(case((net > 0, net), else_=literal_column("0"))), Money)
    rows = (await session.execute(
        select(table.c.member_id, total.label("value"))
        .where(_among(session, table.c.member_id, member_ids), table.c.occurred_at >= window_start)
        .group_by(table.c.member_id)
    )).all()
    return {row.member_id: Decimal(row.value or 0) for row in rows}


async def _insert_members(session: AsyncSession, members: list[_Standing], now: datetime) -> None:
    await _insert_rows(session, MEMBER_TABLE, [
        {"member_id": m.member_id, "status": None, "enrolled_at": None, "first_seen_at": now, "tier_id": m.tier_id,
         "tier_since": m.since, "retained_until": m.retained_until, "updated_at": now}
        for m in members])


async def _update_members(session: AsyncSession, members: list[_Standing], now: datetime) -> None:
    await _update_rows(session, MEMBER_TABLE, "member_id", [
        {"member_id": m.member_id, "tier_id": m.tier_id, "tier_since": m.since, "retained_until": m.retained_until,
         "updated_at": now}
        for m in members])


async def _upsert_purchases(session: AsyncSession, purchases: dict[str, _Told]) -> None:
    """Each purchase's facts as last told: inserted, or set over what was stored (never added to)."""
    await _insert_rows(session, PURCHASE_TABLE, [
        {"purchase_id": purchase_id, "member_id": told.member_id, "occurred_at": told.facts.occurred_at,
         "currency": told.currency, "total": told.facts.total, "refunded": told.facts.refunded,
         "points_earned": told.facts.points, "points_reversed": told.facts.points_reversed}
        for purchase_id, told in purchases.items()
    ], on_conflict="purchase_id", keep=("member_id",))


# --- bulk statements -------------------------------------------------------------------------------
# On PostgreSQL a batch's rows travel as one array per column (``unnest``), so a statement has a handful
# of parameters however many rows it carries: compiled once, planned once, executed once. Elsewhere (SQLite)
# the same statements run once per row (executemany).


async def _plan_for_the_arrays(session: AsyncSession) -> None:
    """PostgreSQL plans the array statements below for each batch's arrays (at a fraction of a millisecond)
    instead of reusing a generic plan: one made while a table was nearly empty scans it whole, and a
    consumer catching up makes a table grow faster than the statistics follow."""
    if _is_postgres(session):
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def _is_postgres(session: AsyncSession) -> bool:
    return bool(session.get_bind().dialect.name == "postgresql")


def _among(session: AsyncSession, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """``column = ANY(array)`` on PostgreSQL; an IN list, rendered anew for every length, elsewhere."""
    if _is_postgres(session):
        return cast(ColumnElement[bool], column == any_(bindparam(None, list(values), type_=_array_of(column.type))))
    return cast(ColumnElement[bool], column.in_(values))


def _array_of(item: Any) -> ARRAY[Any]:
    """An array of the column's values, strings without their length: an explicit cast to ``varchar(n)``
    cuts a longer value short, where storing it into the column (or comparing) must fail (or not match)."""
    return ARRAY(String() if isinstance(item, String) else item)


def _unnested(table: Table, rows: list[dict[str, Any]]) -> Any:
    """The rows as ``unnest(arrays) WITH ORDINALITY AS v(columns..., ord)`` (PostgreSQL)."""
    columns = list(rows[0])
    arrays = [bindparam(f"rows_{column}", [row[column] for row in rows], type_=_array_of(table.c[column].type))
              for column in columns]
    return func.unnest(*arrays).table_valued(*columns, with_ordinality="ord").render_derived(name="v")


async def _insert_rows(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]], *, on_conflict: str | None = None,
    keep: Sequence[str] = (),
) -> None:
    """Insert the rows in their order; with ``on_conflict``, a row whose key exists sets the stored one's
    columns instead (all but the key and ``keep``)."""
    if not rows:
        return
    postgres = _is_postgres(session)
    statement = (postgresql.insert if postgres else sqlite.insert)(table)
    if postgres:
        rows_ = _unnested(table, rows)
        statement = statement.from_select(list(rows[0]), select(*(rows_.c[c] for c in rows[0])).order_by(rows_.c.ord))
    if on_conflict is not None:
        statement = statement.on_conflict_do_update(index_elements=[on_conflict], set_={
            column: statement.excluded[column] for column in rows[0] if column != on_conflict and column not in keep})
    if postgres:
        await session.execute(statement)
    else:
        await session.execute(statement, rows)


async def _update_rows(session: AsyncSession, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """Set each row's columns on the stored row with its ``key``."""
    if not rows:
        return
    if _is_postgres(session):
        rows_ = _unnested(table, rows)
        await session.execute(update(table).where(table.c[key] == rows_.c[key])
                              .values({column: rows_.c[column] for column in rows[0] if column != key}))
        return
    await session.execute(update(table).where(table.c[key] == bindparam("row_key")), [
        {"row_key": row[key], **{column: value for column, value in row.items() if column != key}} for row in rows])


def _forget_stale_objects(session: AsyncSession) -> None:
    """Rows written above bypass the session: objects it holds for them are read again on their next use,
    so a later event of the same transaction never builds on (or writes back) what it held before."""
    for obj in list(session.sync_session.identity_map.values()):
        if isinstance(obj, Member | Purchase | Segment):
            session.expire(obj)


class _Lifecycles:
    """Segmented members' lifecycles as the batch's purchases move them: what ``_refresh_lifecycles`` does
    after each purchase, on the rows and purchases read once."""

    def __init__(self, now: datetime, params: segments.Params | None = None,
                 rows: dict[str, dict[str, Any]] | None = None,
                 bought: dict[str, dict[str, segments.Purchase]] | None = None) -> None:
        self.now = now
        self.params = params
        self.rows = rows or {}
        self.bought = bought or {}
        self.changed: dict[str, dict[str, Any]] = {}

    @classmethod
    def none(cls, now: datetime) -> _Lifecycles:
        return cls(now)

    @classmethod
    async def load(cls, session: AsyncSession, members: list[_Standing], now: datetime) -> _Lifecycles:
        """The members' segment rows, locked (after the member rows, as everywhere), with their purchases;
        nothing before the first segmentation run (the lifecycle then waits for it)."""
        run = await _last_run(session)
        if run is None or not members:
            return cls.none(now)
        table = SEGMENT_TABLE
        rows = {row.member_id: dict(row._mapping) for row in (await session.execute(
            select(table.c.member_id, table.c.value_class, table.c.lifecycle, table.c.recency, table.c.frequency,
                   table.c.monetary)
            .where(_among(session, table.c.member_id, [m.member_id for m in members])).order_by(table.c.member_id)
            .with_for_update()
        )).all()}
        if not rows:
            return cls.none(now)
        purchases = PURCHASE_TABLE
        bought: dict[str, dict[str, segments.Purchase]] = {}
        for row in (await session.execute(
            select(purchases.c.member_id, purchases.c.purchase_id, purchases.c.occurred_at, purchases.c.total,
                   purchases.c.refunded).where(_among(session, purchases.c.member_id, list(rows)))
        )).all():
            bought.setdefault(row.member_id, {})[row.purchase_id] = segments.Purchase(row.occurred_at,
                                                                                     row.total - row.refunded)
        params = segments.Params(window_days=run.window_days, recency_days=run.recency_days, new_days=run.new_days)
        return cls(now, params, rows, bought)

    def refresh(self, member: _Standing, purchase_id: str, told: _Told) -> events.MemberSegmentChanged | None:
        """The member's lifecycle after this purchase; its announcement when it moved."""
        row = self.rows.get(member.member_id)
        if row is None or self.params is None:
            return None
        bought = self.bought.setdefault(member.member_id, {})
        bought[purchase_id] = segments.Purchase(told.facts.occurred_at, told.facts.total - told.facts.refunded)
        history = segments.summarize(bought.values(), self.now, self.params)
        lifecycle = segments.lifecycle(member.enrolled_at, history, self.now, self.params)
        if lifecycle == row["lifecycle"]:
            return None
        rfm = events.RfmScores(recency=row["recency"], frequency=row["frequency"], monetary=row["monetary"])
        announcement = _segment_changed(member.member_id, row["value_class"], row["lifecycle"], row["value_class"],
                                        lifecycle, rfm, self.now)
        row["lifecycle"] = lifecycle
        self.changed[member.member_id] = row
        return announcement

    async def write(self, session: AsyncSession) -> None:
        await _update_rows(session, SEGMENT_TABLE, "member_id", [
            {"member_id": member_id, "lifecycle": row["lifecycle"], "changed_at": self.now}
            for member_id, row in self.changed.items()])


async def record_refund(session: AsyncSession, data: events.PurchaseRefunded, *, now: datetime | None = None) -> None:
    """Store the refund's facts (once per refund_id) and lower its purchase's value."""
    now = now or utcnow()
    program = await program_for_evaluation(session)
    member = await _known_member(session, data.member_id, program, now)
    refund = await _refund(session, data.refund_id, data.purchase_id, data.member_id)
    refund.amount = data.amount
    refund.points_reversed = data.points_reversed
    refund.occurred_at = data.occurred_at
    purchase = await session.get(Purchase, data.purchase_id)
    if purchase is not None and purchase.member_id == data.member_id:
        await _sync_refunds(session, [purchase])
    await settle(session, [member], program, now)
    await _refresh_lifecycles(session, [member], now)


async def record_points_earned(
    session: AsyncSession, data: events.PointsEarned, *, now: datetime | None = None
) -> None:
    """Confirm a purchase's points. Only the buyer's own purchase counts: a referral bonus names the
    referred member's purchase, and points not tied to a purchase (enrolment, referral) do not qualify.
    When the purchase is not known yet its ``purchase.recorded`` brings the same figure."""
    now = now or utcnow()
    await record_points_balance(session, data, now=now)
    if data.purchase_id is None:
        return
    program = await program_for_evaluation(session)
    member = await session.get(Member, data.member_id, with_for_update=True)
    purchase = await session.get(Purchase, data.purchase_id)
    if member is None or purchase is None or purchase.member_id != data.member_id:
        return
    purchase.points_earned = data.points
    await settle(session, [member], program, now)


async def record_points_reversed(
    session: AsyncSession, data: events.PointsReversed, *, now: datetime | None = None
) -> None:
    """Store the points a refund took back; they count once the purchase is known."""
    now = now or utcnow()
    await record_points_balance(session, data, now=now)
    program = await program_for_evaluation(session)
    member = await session.get(Member, data.member_id, with_for_update=True)
    refund = await _refund(session, data.refund_id, data.purchase_id, data.member_id)
    refund.points_reversed = data.points
    purchase = await session.get(Purchase, data.purchase_id)
    if member is None or purchase is None or purchase.member_id != data.member_id:
        await session.flush()
        return
    await _sync_refunds(session, [purchase])
    await settle(session, [member], program, now)


async def record_points_balance(
    session: AsyncSession, data: events.PointsEvent, *, now: datetime | None = None
) -> None:
    """Keep the member's balance as the event tells it (a member's events come in order, so the last one
    is the balance now); the points liability is their sum."""
    now = now or utcnow()
    balance = await session.get(PointsBalance, data.member_id, with_for_update=True)
    if balance is None:
        balance = PointsBalance(member_id=data.member_id)
        session.add(balance)
    balance.available = data.balance.available
    balance.pending = data.balance.pending
    balance.updated_at = now
    await session.flush()


# --- the hourly job --------------------------------------------------------------------------------


async def evaluate_all(db: Database, *, now: datetime | None = None, batch_size: int = BATCH_SIZE) -> int:
    """Evaluate every member whose retention has ended (one transaction per batch); returns how many
    changed tier.

    Nobody else can change by time alone: a purchase leaving the window only lowers the value, and a lower
    value matters only once retention has ended. Run again, it finds those members renewed or moved on.
    """
    now = now or utcnow()
    changed = 0
    last = ""
    while True:
        async with db.transaction() as session:
            program = await program_for_evaluation(session)
            members = list((await session.execute(
                select(Member).where(Member.retained_until <= now, Member.member_id > last)
                .order_by(Member.member_id).limit(batch_size).with_for_update()
            )).scalars())
            if not members:
                return changed
            changed += await settle(session, members, program, now)
        last = members[-1].member_id


# --- segments --------------------------------------------------------------------------------------


async def recompute_segments(
    db: Database, *, now: datetime | None = None, params: segments.Params | None = None
) -> schemas.SegmentRunOut:
    """Segment every member in one pass and one transaction (the job, every 15 minutes, and
    ``loyalty jobs segments``): RFM scores, value class, lifecycle and CLV, and a ``member.segment_changed``
    for each member whose value class or lifecycle changed. Safe to repeat.

    The run's row lock keeps runs from overlapping; the segment rows are locked first, so a purchase that
    refreshes a lifecycle meanwhile waits and then builds on what this run wrote."""
    now = now or utcnow()
    params = params or segments.Params()
    async with db.transaction() as session:
        run = await _locked_run(session)
        stored = {row.member_id: row for row in (await session.execute(
            select(Segment).order_by(Segment.member_id).with_for_update()
        )).scalars()}
        facts = await _member_facts(session, now, params)
        results, overview = segments.segment_all(facts, now, params)
        announcements: list[events.EventData] = []
        for member in facts:
            segment = results[member.member_id]
            row = stored.get(member.member_id)
            if row is None:
                row = Segment(member_id=member.member_id, changed_at=now)
                session.add(row)
            rfm = events.RfmScores(recency=segment.recency, frequency=segment.frequency, monetary=segment.monetary)
            if (row.value_class, row.lifecycle) != (segment.value_class, segment.lifecycle):
                announcements.append(_segment_changed(row.member_id, row.value_class, row.lifecycle,
                                                      segment.value_class, segment.lifecycle, rfm, now))
                row.changed_at = now
            row.recency, row.frequency, row.monetary = rfm.recency, rfm.frequency, rfm.monetary
            row.value_class, row.lifecycle = segment.value_class, segment.lifecycle
            row.clv_estimate = segment.clv_estimate
            row.revenue = member.history.window_revenue
            row.purchases = member.history.window_purchases
            row.last_purchase_at = member.history.last_at
        run.computed_at = now
        run.window_days, run.recency_days, run.new_days = params.window_days, params.recency_days, params.new_days
        run.members, run.scored, run.revenue = len(facts), overview.scored, overview.revenue
        run.top_20pct_revenue_share = _ratio(overview.top_20pct_revenue_share)
        run.retention_rate = _ratio(overview.retention_rate)
        run.expected_lifetime_years = overview.expected_lifetime_years.quantize(Decimal("0.0001"))
        await session.flush()
        await OUTBOX.add(session, *announcements)
    return schemas.SegmentRunOut(computed_at=now, members=len(facts), scored=overview.scored,
                                 changed=len(announcements))


async def last_segmented_at(db: Database) -> datetime | None:
    """When the last segmentation run ran, None before the first."""
    async with db.read() as session:
        run = await _last_run(session)
    return run.computed_at if run else None


async def member_segment(
    session: AsyncSession, member_id: str, params: segments.Params, *, now: datetime | None = None
) -> schemas.MemberSegment:
    """The member's segment as the last run left it; before the member's first run, RFM 1 and class D, with
    lifecycle and CLV computed now from the member's own purchases (``computed_at`` null)."""
    now = now or utcnow()
    member = await _get_member(session, member_id)
    run = await _last_run(session)
    row = await session.get(Segment, member_id)
    if row is not None and run is not None:
        return schemas.MemberSegment(
            member_id=member_id,
            rfm=schemas.Rfm(recency=row.recency, frequency=row.frequency, monetary=row.monetary),
            value_class=cast(segments.ValueClass, row.value_class), lifecycle=cast(segments.Lifecycle, row.lifecycle),
            clv_estimate=_amount(row.clv_estimate, "spend"), computed_at=run.computed_at,
        )
    history = (await _histories(session, now, params, [member_id])).get(member_id, segments.History())
    lifetime = run.expected_lifetime_years if run is not None else segments.expected_lifetime_years(None)
    segment = segments.unscored(segments.MemberFacts(member_id, member.status, _enrolled(member), history),
                                now, params, lifetime)
    return schemas.MemberSegment(
        member_id=member_id, rfm=schemas.Rfm(recency=1, frequency=1, monetary=1), value_class="D",
        lifecycle=segment.lifecycle, clv_estimate=_amount(segment.clv_estimate, "spend"), computed_at=None,
    )


async def analytics_summary(session: AsyncSession) -> schemas.AnalyticsSummary:
    """Counts read from the stored tiers and segments (GROUP BY), the Pareto share of the last run and
    the points liability; nothing is recomputed here."""
    program = await load_program(session)
    by_tier = dict.fromkeys(program.ladder, 0) | await _counts(session, Member.tier_id)
    by_status = {"active": 0, "suspended": 0, "closed": 0} | {
        status or "unknown": count for status, count in (await _counts(session, Member.status)).items()}
    by_class = dict.fromkeys(segments.VALUE_CLASSES, 0) | await _counts(session, Segment.value_class)
    by_lifecycle = dict.fromkeys(segments.LIFECYCLES, 0) | await _counts(session, Segment.lifecycle)
    outstanding = PointsBalance.available + PointsBalance.pending
    liability = (await session.execute(
        select(func.coalesce(func.sum(case((outstanding > 0, outstanding), else_=0)), 0))
    )).scalar_one()
    run = await _last_run(session)
    return schemas.AnalyticsSummary(
        members=sum(by_tier.values()), by_tier=by_tier, by_status=by_status, by_value_class=by_class,
        by_lifecycle=by_lifecycle,
        pareto=schemas.Pareto(top_20pct_revenue_share=_float(run.top_20pct_revenue_share) if run else None),
        points_liability=int(liability),
        segments=schemas.SegmentsInfo(
            computed_at=run.computed_at, segmented=sum(by_class.values()), scored=run.scored,
            window_days=run.window_days, recency_threshold_days=run.recency_days, new_member_days=run.new_days,
            revenue=_amount(run.revenue, "spend"), retention_rate=_float(run.retention_rate),
            expected_lifetime_years=float(run.expected_lifetime_years),
        ) if run else None,
    )


async def restore_announced_segment(
    session: AsyncSession, data: events.MemberSegmentChanged, *, now: datetime | None = None
) -> None:
    """For a rebuild only: take the segment a ``member.segment_changed`` in the log announced as the
    member's stored one, so the rebuilt service announces only what changed since. (The live service
    ignores its own announcements.)"""
    if await session.get(Member, data.member_id) is None:
        return
    row = await session.get(Segment, data.member_id, with_for_update=True)
    if row is None:
        row = Segment(member_id=data.member_id, clv_estimate=Decimal(0), revenue=Decimal(0), purchases=0)
        session.add(row)
    row.recency, row.frequency, row.monetary = data.rfm.recency, data.rfm.frequency, data.rfm.monetary
    row.value_class, row.lifecycle, row.changed_at = data.value_class, data.lifecycle, data.at
    await session.flush()


async def _refresh_lifecycles(session: AsyncSession, members: Sequence[Member], now: datetime) -> None:
    """A purchase or refund moves a segmented member's lifecycle at once (a lapsed member who buys is won
    back now, not at the next run), with the settings of the last run; the rest waits for the next run."""
    run = await _last_run(session)
    if run is None or not members:
        return
    rows = {row.member_id: row for row in (await session.execute(
        select(Segment).where(Segment.member_id.in_([m.member_id for m in members]))
        .order_by(Segment.member_id).with_for_update()
    )).scalars()}
    if not rows:
        return
    params = segments.Params(window_days=run.window_days, recency_days=run.recency_days, new_days=run.new_days)
    histories = await _histories(session, now, params, list(rows))
    for member in members:
        row = rows.get(member.member_id)
        if row is None:
            continue
        lifecycle = segments.lifecycle(_enrolled(member), histories.get(member.member_id, segments.History()),
                                       now, params)
        if lifecycle == row.lifecycle:
            continue
        rfm = events.RfmScores(recency=row.recency, frequency=row.frequency, monetary=row.monetary)
        await OUTBOX.add(session, _segment_changed(row.member_id, row.value_class, row.lifecycle, row.value_class,
                                                    lifecycle, rfm, now))
        row.lifecycle, row.changed_at = lifecycle, now
    await session.flush()


def _segment_changed(
    member_id: str, previous_value_class: str | None, previous_lifecycle: str | None, value_class: str,
    lifecycle: str, rfm: events.RfmScores, now: datetime,
) -> events.MemberSegmentChanged:
    """The announcement of a change from what the stored row held (a new row has no class yet)."""
    return events.MemberSegmentChanged(
        member_id=member_id, value_class=cast(segments.ValueClass, value_class),
        lifecycle=cast(segments.Lifecycle, lifecycle),
        previous_value_class=cast(segments.ValueClass | None, previous_value_class),
        previous_lifecycle=cast(segments.Lifecycle | None, previous_lifecycle), rfm=rfm, at=now,
    )


async def _last_run(session: AsyncSession) -> SegmentRun | None:
    """The last segmentation run, None before the first."""
    run = await session.get(SegmentRun, 1)
    return run if run is not None and run.computed_at is not None else None


async def _locked_run(session: AsyncSession) -> SegmentRun:
    """The run's row, created if missing and locked until the caller's transaction ends."""
    await session.execute(insert_ignoring_conflicts(RUN_TABLE, session.get_bind().dialect.name).values(
        id=1, computed_at=None, window_days=0, recency_days=0, new_days=0, members=0, scored=0, revenue=Decimal(0),
        top_20pct_revenue_share=None, retention_rate=None, expected_lifetime_years=Decimal(1),
    ))
    run = await session.get(SegmentRun, 1, with_for_update=True)
    assert run is not None
    return run


def _enrolled(member: Member) -> datetime:
    """When the member joined: the enrolment, or when tiers first saw them if it never heard of it."""
    return member.enrolled_at or member.first_seen_at


async def scored_revenues(session: AsyncSession, now: datetime, params: segments.Params) -> list[Decimal]:
    """The window revenue of each member of the scored base as of ``now``: what the Pareto figures are
    taken over (the dashboard's curve)."""
    return [m.history.window_revenue for m in await _member_facts(session, now, params) if m.scored]


async def _member_facts(session: AsyncSession, now: datetime, params: segments.Params) -> list[segments.MemberFacts]:
    histories = await _histories(session, now, params)
    members = (await session.execute(
        select(Member.member_id, Member.status, Member.enrolled_at, Member.first_seen_at).order_by(Member.member_id)
    )).all()
    return [segments.MemberFacts(m.member_id, m.status, m.enrolled_at or m.first_seen_at,
                                 histories.get(m.member_id, segments.History())) for m in members]


async def _histories(
    session: AsyncSession, now: datetime, params: segments.Params, member_ids: list[str] | None = None
) -> dict[str, segments.History]:
    """Each member's purchases folded into their History, streamed member by member."""
    query = (select(Purchase.member_id, Purchase.occurred_at, Purchase.total, Purchase.refunded)
             .order_by(Purchase.member_id).execution_options(yield_per=2000))
    if member_ids is not None:
        query = query.where(Purchase.member_id.in_(member_ids))
    histories: dict[str, segments.History] = {}
    current: str | None = None
    bought: list[segments.Purchase] = []
    async for row in await session.stream(query):
        if row.member_id != current:
            if current is not None:
                histories[current] = segments.summarize(bought, now, params)
            current, bought = row.member_id, []
        bought.append(segments.Purchase(row.occurred_at, row.total - row.refunded))
    if current is not None:
        histories[current] = segments.summarize(bought, now, params)
    return histories


async def _counts(session: AsyncSession, column: Any) -> dict[Any, int]:
    rows = (await session.execute(select(column, func.count()).group_by(column))).all()
    return {value: count for value, count in rows}


def _ratio(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.00001"))


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


# --- evaluation ------------------------------------------------------------------------------------


async def _known_member(session: AsyncSession, member_id: str, program: domain.Program, now: datetime) -> Member:
    """The member's row, locked; see ``_known_members``."""
    return (await _known_members(session, [member_id], program, now))[member_id]


async def _known_members(
    session: AsyncSession, member_ids: Sequence[str], program: domain.Program, now: datetime
) -> dict[str, Member]:
    """The members' rows, locked (in id order, so that two transactions never wait for each other in a
    circle); a member seen for the first time is placed at the lowest tier (no facts can exist for them
    yet, so the value is 0)."""
    members = {m.member_id: m for m in (await session.execute(
        select(Member).where(Member.member_id.in_(member_ids)).order_by(Member.member_id).with_for_update()
    )).scalars()}
    new = [member_id for member_id in member_ids if member_id not in members]
    if not new:
        return members
    decision = domain.evaluate(None, Decimal(0), program.tiers, program.policy, now)
    for member_id in new:
        members[member_id] = Member(member_id=member_id, first_seen_at=now, tier_id=decision.tier_id,
                                    tier_since=decision.since, retained_until=decision.retained_until,
                                    updated_at=now)
        session.add(members[member_id])
    await session.flush()
    await OUTBOX.add(session, *(_record_change(session, member_id, None, decision, program, now) for member_id in new))
    return members


async def settle(
    session: AsyncSession, members: Sequence[Member], program: domain.Program, now: datetime,
    *, previous: domain.Program | None = None,
) -> int:
    """Evaluate locked members against ``program`` and apply the decisions; returns how many changed tier.
    ``previous`` is the program being replaced, if any, to tell members about new terms of their tier."""
    window_start = program.window_start(now)
    facts = await _facts(session, [m.member_id for m in members], window_start)
    changed = 0
    announcements = []
    for member in members:
        value = domain.qualifying_value(facts.get(member.member_id, ()), program.basis, window_start)
        standing = domain.Standing(member.tier_id, member.tier_since, member.retained_until)
        decision = domain.evaluate(standing, value, program.tiers, program.policy, now)
        if decision.reason is not None:
            announcements.append(_record_change(session, member.member_id, member.tier_id, decision, program, now))
            changed += 1
        elif previous is not None and _terms_changed(previous, program, member.tier_id):
            announcements.append(_tier_changed(member.member_id, member.tier_id, decision, program,
                                               domain.TIERS_CHANGED, now))
        if decision.standing != standing:
            member.tier_id = decision.tier_id
            member.tier_since = decision.since
            member.retained_until = decision.retained_until
            member.updated_at = now
    await OUTBOX.add(session, *announcements)
    await session.flush()
    return changed


def _terms_changed(previous: domain.Program, program: domain.Program, tier_id: str) -> bool:
    before = previous.rank_of(tier_id)
    after = program.rank_of(tier_id)
    if before is None or after is None:
        return True
    return (previous.ladder != program.ladder
            or previous.tiers[before].earn_multiplier != program.tiers[after].earn_multiplier)


def _record_change(
    session: AsyncSession, member_id: str, from_tier: str | None, decision: domain.Decision,
    program: domain.Program, now: datetime,
) -> events.TierChanged:
    """The history row of a change of tier (staged in the session) and its announcement, for the caller to
    add to the outbox with the others of its batch."""
    assert decision.reason is not None
    session.add(TierHistory(member_id=member_id, from_tier=from_tier, to_tier=decision.tier_id,
                            reason=decision.reason, at=now))
    return _tier_changed(member_id, from_tier, decision, program, decision.reason, now)


def _tier_changed(
    member_id: str, from_tier: str | None, decision: domain.Decision, program: domain.Program, reason: str,
    now: datetime,
) -> events.TierChanged:
    tier = program.tiers[decision.rank]
    return events.TierChanged(
        member_id=member_id, from_tier=from_tier, to_tier=tier.tier_id, rank=decision.rank, ladder=program.ladder,
        earn_multiplier=Decimal(_plain(tier.earn_multiplier)), reason=reason, at=now,
    )


async def _facts(
    session: AsyncSession, member_ids: list[str], window_start: datetime
) -> dict[str, list[domain.PurchaseFacts]]:
    rows = (await session.execute(
        select(Purchase.member_id, Purchase.occurred_at, Purchase.total, Purchase.refunded,
               Purchase.points_earned, Purchase.points_reversed)
        .where(Purchase.member_id.in_(member_ids), Purchase.occurred_at >= window_start)
    )).all()
    facts: dict[str, list[domain.PurchaseFacts]] = {}
    for row in rows:
        facts.setdefault(row.member_id, []).append(domain.PurchaseFacts(
            occurred_at=row.occurred_at, total=row.total, refunded=row.refunded, points=row.points_earned,
            points_reversed=row.points_reversed,
        ))
    return facts


async def _refund(session: AsyncSession, refund_id: str, purchase_id: str, member_id: str) -> Refund:
    refund = await session.get(Refund, refund_id)
    if refund is None:
        refund = Refund(refund_id=refund_id, purchase_id=purchase_id, member_id=member_id, amount=Decimal(0),
                        points_reversed=0)
        session.add(refund)
    return refund


async def _sync_refunds(session: AsyncSession, purchases: Sequence[Purchase]) -> None:
    """A purchase's refunded amount and reversed points are the sums of its refunds' facts."""
    if not purchases:
        return
    sums = {row.purchase_id: row for row in (await session.execute(
        select(Refund.purchase_id, func.sum(Refund.amount).label("amount"),
               func.sum(Refund.points_reversed).label("points"))
        .where(Refund.purchase_id.in_({p.purchase_id for p in purchases})).group_by(Refund.purchase_id)
    )).all()}
    for purchase in purchases:
        row = sums.get(purchase.purchase_id)
        purchase.refunded = row.amount if row is not None else Decimal(0)
        purchase.points_reversed = int(row.points) if row is not None else 0


# --- formats ---------------------------------------------------------------------------------------


def _plain(value: Decimal) -> str:
    """``500.0000`` as ``500``, ``1.5000`` as ``1.5``: the figure as an operator would write it."""
    return format(value.normalize(), "f")


def _amount(value: Decimal, basis: domain.Basis) -> str:
    """Points as a whole number; spend as money, with at least two decimals (``120.00``, ``12.345``)."""
    if basis == "points":
        return str(int(value))
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return format(value.quantize(CENT), "f")
    return format(normal, "f")
