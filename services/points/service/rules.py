"""Earning rules: stored as their validated definition, turned into domain rules for each purchase."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.points import domain, schemas
from services.points.models import EarningRule, Program, RuleBudget
from services.points.service import IDEMPOTENCY
from shared.clock import utcnow
from shared.errors import InvalidRequest, NotFound
from shared.http.idempotency import request_hash
from shared.http.pagination import decode_cursor, encode_cursor

RuleBody = schemas.MultiplierRuleIn | schemas.BonusRuleIn | schemas.GoalRuleIn
_RULE_IN: TypeAdapter[RuleBody] = TypeAdapter(schemas.RuleIn)


def rule_out(rule: EarningRule, budget_used: int = 0) -> schemas.Rule:
    budget = (rule.definition.get("limits") or {}).get("budget_points")
    return schemas.Rule(rule_id=rule.rule_id, kind=rule.kind, created_at=rule.created_at,
                        updated_at=rule.updated_at, budget_used=budget_used,
                        exhausted=budget is not None and budget_used >= budget, **rule.definition)


async def rules_out(session: AsyncSession, found: list[EarningRule]) -> list[schemas.Rule]:
    """The rules as answered, with what their budgets have given (one read for them all)."""
    rows = await session.execute(select(RuleBudget.rule_id, RuleBudget.used).where(
        RuleBudget.rule_id.in_([rule.rule_id for rule in found])))
    used = {rule_id: int(points) for rule_id, points in rows.all()}
    return [rule_out(rule, used.get(rule.rule_id, 0)) for rule in found]


async def create_rule(session: AsyncSession, body: RuleBody, owner: str
                      ) -> tuple[dict[str, Any], bool]:
    """Rule ids are never reused, not even after a delete, so a ledger entry's rule id stays unambiguous. A
    retry replays only for the key that created the rule (``owner``, its name)."""
    replay = await IDEMPOTENCY.claim(session, "rule", body.rule_id, request_hash(body, owner=owner))
    if replay is not None:
        return replay, False
    now = utcnow()
    rule = EarningRule(rule_id=body.rule_id, kind=body.kind, created_at=now, updated_at=now,
                       definition=body.model_dump(mode="json", exclude={"rule_id", "kind"}, exclude_none=True))
    session.add(rule)
    await session.flush()
    await touch(session)
    answer = rule_out(rule).model_dump(mode="json")
    await IDEMPOTENCY.complete(session, "rule", body.rule_id, 201, answer)
    return answer, True


async def get_rule(session: AsyncSession, rule_id: str, *, for_update: bool = False) -> EarningRule:
    rule = await session.get(EarningRule, rule_id, with_for_update=for_update)
    if rule is None or rule.deleted_at is not None:
        raise NotFound(f"No earning rule '{rule_id}'.")
    return rule


async def patch_rule(session: AsyncSession, rule_id: str, patch: schemas.RulePatch) -> EarningRule:
    rule = await get_rule(session, rule_id, for_update=True)
    merged = {**rule.definition, **patch.model_dump(mode="json", exclude_unset=True),
              "rule_id": rule.rule_id, "kind": rule.kind}
    try:
        validated = _RULE_IN.validate_python(merged)
    except ValidationError as exc:
        errors = [{"loc": ["body", *[str(p) for p in err["loc"][1:]]], "msg": err["msg"]} for err in exc.errors()]
        raise InvalidRequest(f"the rule would not be valid: {errors[0]['msg']}", errors=errors) from exc
    rule.definition = validated.model_dump(mode="json", exclude={"rule_id", "kind"}, exclude_none=True)
    rule.updated_at = utcnow()
    await session.flush()
    await touch(session)
    return rule


async def delete_rule(session: AsyncSession, rule_id: str) -> None:
    rule = await get_rule(session, rule_id, for_update=True)
    rule.deleted_at = utcnow()
    await session.flush()
    await touch(session)


async def list_rules(session: AsyncSession, limit: int, cursor: str | None) -> tuple[list[EarningRule], str | None]:
    query = select(EarningRule).where(EarningRule.deleted_at.is_(None)).order_by(EarningRule.rule_id)
    if cursor:
        (after,) = decode_cursor(cursor, (str,))
        query = query.where(EarningRule.rule_id > after)
    rows = list((await session.execute(query.limit(limit + 1))).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor([rows[-1].rule_id]) if more else None


def _window(definition: dict[str, Any]) -> domain.Window:
    def moment(key: str) -> datetime | None:
        value = definition.get(key)
        return datetime.fromisoformat(value) if value else None

    return domain.Window(valid_from=moment("valid_from"), valid_until=moment("valid_until"),
                         days_of_week=frozenset(definition.get("days_of_week") or ()))


def audience_of(definition: dict[str, Any]) -> domain.Audience:
    audience = definition.get("audience")
    if not audience:
        return domain.EVERYONE
    return domain.Audience(tiers=frozenset(audience.get("tiers") or ()),
                           value_classes=frozenset(audience.get("value_classes") or ()),
                           lifecycles=frozenset(audience.get("lifecycles") or ()),
                           enrolled_within_days=audience.get("enrolled_within_days"))


def _limits(definition: dict[str, Any]) -> domain.Limits | None:
    given = definition.get("limits")
    if not given:
        return None
    return domain.Limits(per_member_points=given.get("per_member_points"),
                         per_member_period=given.get("per_member_period") or "rule",
                         budget_points=given.get("budget_points"))


def limits_of(found: ActiveRules) -> dict[str, domain.Limits]:
    """The limits of the active rules that have any, by rule id."""
    every: list[domain.MultiplierRule | domain.BonusRule] = [*found[0], *found[1]]
    return {rule.rule_id: rule.limits for rule in every if rule.limits is not None}


ActiveRules = tuple[list[domain.MultiplierRule], list[domain.BonusRule]]
_parsed: dict[str, ActiveRules] = {}  # by rules_version; the domain rules are frozen, so sharing them is safe
_PARSED_KEPT = 16


def new_version() -> str:
    return str(uuid.uuid4())


async def touch(session: AsyncSession) -> None:
    """Mark a change of the rules (in the transaction that makes it): every process reads them again.
    Without a program row yet there is nothing to mark; the row is created with a token of its own."""
    await session.execute(update(Program).where(Program.id == 1).values(rules_version=new_version()))


def parsed(version: str) -> ActiveRules | None:
    """The rules parsed under ``version`` when they are at hand (no statement), else None."""
    return _parsed.get(version) if version else None


async def active_rules(session: AsyncSession, version: str) -> ActiveRules:
    """The rules not deleted, parsed; ``version`` is the program's ``rules_version`` read in the same
    transaction, so the rules parsed under that token are the rules that transaction would read."""
    if version and version in _parsed:
        return _parsed[version]
    parsed = await _read_rules(session)
    if version:
        if len(_parsed) >= _PARSED_KEPT:
            _parsed.clear()
        _parsed[version] = parsed
    return parsed


async def _read_rules(session: AsyncSession) -> ActiveRules:
    rows = (await session.execute(select(EarningRule).where(EarningRule.deleted_at.is_(None)))).scalars().all()
    return parse_rules(rows)


def parse_rules(rows: Iterable[Any]) -> ActiveRules:
    """The domain rules of stored ones (anything with ``rule_id``, ``kind`` and ``definition``), parsed alike
    for purchases, quotes and simulations. Goals are settled per period, not by a purchase: none here."""
    multipliers: list[domain.MultiplierRule] = []
    bonuses: list[domain.BonusRule] = []
    for rule in rows:
        d = rule.definition
        if rule.kind == "multiplier":
            match = d.get("match") or {}
            multipliers.append(domain.MultiplierRule(
                rule.rule_id, Decimal(d["factor"]),
                categories=frozenset(match.get("categories") or ()), skus=frozenset(match.get("skus") or ()),
                stores=frozenset(match.get("stores") or ()), channels=frozenset(match.get("channels") or ()),
                window=_window(d), audience=audience_of(d), limits=_limits(d), holdout_pct=d.get("holdout_pct") or 0,
            ))
        elif rule.kind == "bonus":
            bonuses.append(domain.BonusRule(
                rule.rule_id, int(d["points"]), d["trigger"],
                min_spend=Decimal(d["min_spend"]) if d.get("min_spend") is not None else None, window=_window(d),
                audience=audience_of(d), limits=_limits(d), holdout_pct=d.get("holdout_pct") or 0,
            ))
    return multipliers, bonuses


def goal_of(rule: EarningRule) -> domain.GoalRule:
    d = rule.definition
    match, reward = d.get("match") or {}, d["reward"]
    return domain.GoalRule(
        rule.rule_id, d["metric"], Decimal(d["target"]), d["period"],
        categories=frozenset(match.get("categories") or ()), skus=frozenset(match.get("skus") or ()),
        stores=frozenset(match.get("stores") or ()), channels=frozenset(match.get("channels") or ()),
        reward_points=reward.get("points"),
        rebate_pct=Decimal(reward["rebate_pct"]) if reward.get("rebate_pct") is not None else None,
        reward_id=reward.get("reward_id"), window=_window(d), audience=audience_of(d),
        holdout_pct=d.get("holdout_pct") or 0,
    )


async def goal_rules(session: AsyncSession) -> list[tuple[EarningRule, domain.GoalRule]]:
    """The goals not deleted, by rule id (read each time: the settlement job and progress are not hot)."""
    rows = await session.scalars(select(EarningRule).where(EarningRule.kind == "goal",
                                                           EarningRule.deleted_at.is_(None))
                                 .order_by(EarningRule.rule_id))
    return [(rule, goal_of(rule)) for rule in rows]
