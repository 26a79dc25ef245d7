"""`loyalty apply`'s pure half: a program file validated into the desired state, and the changes that take
the current state (as the API answers it) there. No I/O besides reading the file.

Both sides go through the API's own request models, so "1.5" and "1.50" or two spellings of one moment
compare equal, and a file that validates here is one the services accept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from services.points.schemas import BonusRuleIn, GoalRuleIn, MultiplierRuleIn, ProgramIn, RuleIn
from services.rewards.schemas import RewardIn
from services.tiers.schemas import TierProgramIn
from shared.http.types import ClientId

Rule = MultiplierRuleIn | BonusRuleIn | GoalRuleIn
RULE: TypeAdapter[Rule] = TypeAdapter(RuleIn)
# Optional rule fields a PATCH clears by sending null when the file no longer has them.
CLEARABLE_RULE_FIELDS = ("valid_from", "valid_until", "days_of_week", "min_spend", "match", "audience", "limits",
                         "holdout_pct")


class RewardEntry(RewardIn):
    reward_id: ClientId


class ProgramFile(BaseModel):
    """Each section is optional: a section left out is not managed by the file."""

    model_config = ConfigDict(extra="forbid")

    program: ProgramIn | None = None
    earning_rules: list[RuleIn] | None = Field(None, max_length=10_000)
    tiers: TierProgramIn | None = None
    rewards: list[RewardEntry] | None = Field(None, max_length=10_000)

    @model_validator(mode="after")
    def _ids_unique(self) -> ProgramFile:
        for section, ids in (("earning_rules", [r.rule_id for r in self.earning_rules or ()]),
                             ("rewards", [r.reward_id for r in self.rewards or ()])):
            seen: set[str] = set()
            for position, item_id in enumerate(ids):
                if item_id in seen:
                    raise ValueError(f"{section}[{position}]: the id {item_id!r} appears twice")
                seen.add(item_id)
        return self


class ProgramFileError(Exception):
    """The file is not a valid program: each problem names the file, the path inside it and the reason."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source, self.problems = source, problems
        super().__init__("\n".join(f"{source}: {path}: {message}" for path, message in problems))


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("multiplier", "bonus", "function-after[_window_in_order(), RewardEntry]"):
            continue  # pydantic's name of the union member or validator, not a place in the file
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


class _DecimalsAsWritten(yaml.SafeLoader):
    """YAML reads ``1.5`` as a float; the API reads money and factors only from decimal strings (a float is
    not exact). A number with a point is kept as the text the operator wrote, and the API's own types judge
    it, as they would in a request."""


_DecimalsAsWritten.add_constructor(
    "tag:yaml.org,2002:float", lambda loader, node: loader.construct_scalar(node))


def parse_program(text: str, source: str = "<program>") -> ProgramFile:
    try:
        data = yaml.load(text, Loader=_DecimalsAsWritten)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(top level)"
        raise ProgramFileError(source, [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    if not isinstance(data, dict):
        raise ProgramFileError(source, [("(top level)", "expected a mapping with program, earning_rules, "
                                                        "tiers and rewards")])
    try:
        return ProgramFile.model_validate(data)
    except ValidationError as exc:
        raise ProgramFileError(source, [(_path(tuple(e["loc"])), e["msg"]) for e in exc.errors()]) from exc


def load_program(path: Path) -> ProgramFile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProgramFileError(str(path), [("(file)", exc.strerror or str(exc))]) from exc
    return parse_program(text, str(path))


# --- the current state, as the API answers it, in the same models -----------------------------------


def current_program(answer: dict[str, Any]) -> ProgramIn:
    return ProgramIn.model_validate({k: answer[k] for k in ProgramIn.model_fields})


# What the server says of a rule beside its definition: not the file's to set.
RULE_STATE_FIELDS = ("created_at", "updated_at", "budget_used", "exhausted")


def current_rule(answer: dict[str, Any]) -> Rule:
    fields = {k: v for k, v in answer.items() if v is not None and k not in RULE_STATE_FIELDS}
    return RULE.validate_python(fields)


def current_tiers(answer: dict[str, Any]) -> TierProgramIn:
    return TierProgramIn.model_validate({k: answer[k] for k in TierProgramIn.model_fields})


def current_reward(answer: dict[str, Any]) -> RewardEntry:
    return RewardEntry.model_validate({k: answer[k] for k in RewardEntry.model_fields if k in answer})


@dataclass
class Current:
    program: ProgramIn | None
    rules: dict[str, Rule]
    tiers: TierProgramIn | None
    rewards: dict[str, RewardEntry]


# --- the diff --------------------------------------------------------------------------------------

Action = Literal["create", "update", "delete", "deactivate"]


@dataclass
class Change:
    """One write: ``body`` is what is sent; ``fields`` maps a dotted field to (old, new) for the printout."""

    section: Literal["program", "earning rule", "tiers", "reward"]
    key: str
    action: Action
    method: str
    service: str
    path: str
    body: Any = None
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        head = f"{self.section} {self.key}: {self.action}" if self.key else f"{self.section}: {self.action}"
        lines = [head]
        for name, (old, new) in self.fields.items():
            lines.append(f"    {name}: {_show(old)} -> {_show(new)}")
        return "\n".join(lines)


@dataclass
class Plan:
    changes: list[Change]
    kept: list[str]  # on the server, not in the file, left alone (without --prune)
    conflicts: list[str]  # differences that no write can make (a rule's kind: ids are never reused)


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _comparable(model: BaseModel) -> dict[str, Any]:
    """Python values (Decimal, datetime) so that equal amounts and moments compare equal however written;
    an absent optional field and null are the same."""
    return _without_none(model.model_dump())


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def field_changes(old: Any, new: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted paths of what differs; lists of the same length compare item by item."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key in [*old, *(k for k in new if k not in old)]:
            out.update(field_changes(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and old != new:
        out = {}
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            out.update(field_changes(a, b, f"{prefix}[{index}]"))
        return out
    return {} if old == new else {prefix: (_jsonable(old), _jsonable(new))}


def _jsonable(value: Any) -> Any:
    return TypeAdapter(Any).dump_python(value, mode="json")


def plan_changes(desired: ProgramFile, current: Current, *, prune: bool = False) -> Plan:
    changes: list[Change] = []
    kept: list[str] = []
    conflicts: list[str] = []

    if desired.program is not None:
        old = _comparable(current.program) if current.program else {}
        diff = field_changes(old, _comparable(desired.program))
        if diff:
            changes.append(Change("program", "", "update", "PUT", "points", "/v1/program",
                                  desired.program.model_dump(mode="json"), diff))

    if desired.earning_rules is not None:
        wanted = {rule.rule_id: rule for rule in desired.earning_rules}
        for rule_id, rule in wanted.items():
            existing = current.rules.get(rule_id)
            if existing is None:
                changes.append(Change("earning rule", rule_id, "create", "POST", "points", "/v1/earning-rules",
                                      rule.model_dump(mode="json", exclude_none=True),
                                      field_changes({}, _comparable(rule) | {"rule_id": None})))
                continue
            if existing.kind != rule.kind:
                conflicts.append(f"earning rule {rule_id}: is a {existing.kind} rule on the server and a "
                                 f"{rule.kind} rule in the file; rule ids are never reused, so give it a new id")
                continue
            diff = field_changes(_comparable(existing), _comparable(rule))
            if diff:
                patch = rule.model_dump(mode="json", exclude={"rule_id", "kind"}, exclude_none=True)
                patch.update({name: None for name in CLEARABLE_RULE_FIELDS
                              if name not in patch and getattr(existing, name, None) is not None})
                changes.append(Change("earning rule", rule_id, "update", "PATCH", "points",
                                      f"/v1/earning-rules/{rule_id}", patch, diff))
        for rule_id in sorted(set(current.rules) - set(wanted)):
            if prune:
                changes.append(Change("earning rule", rule_id, "delete", "DELETE", "points",
                                      f"/v1/earning-rules/{rule_id}"))
            else:
                kept.append(f"earning rule {rule_id}")

    if desired.tiers is not None:
        old = _comparable(current.tiers) if current.tiers else {}
        diff = field_changes(old, _comparable(desired.tiers))
        if diff:
            changes.append(Change("tiers", "", "update", "PUT", "tiers", "/v1/tiers",
                                  desired.tiers.model_dump(mode="json"), diff))

    if desired.rewards is not None:
        wanted_rewards = {reward.reward_id: reward for reward in desired.rewards}
        for reward_id, reward in wanted_rewards.items():
            existing_reward = current.rewards.get(reward_id)
            diff = field_changes(_comparable(existing_reward) if existing_reward else {"reward_id": reward_id},
                                 _comparable(reward))
            if diff:
                changes.append(Change("reward", reward_id, "update" if existing_reward else "create", "PUT",
                                      "rewards", f"/v1/rewards/{reward_id}",
                                      reward.model_dump(mode="json", exclude={"reward_id"}), diff))
        for reward_id in sorted(set(current.rewards) - set(wanted_rewards)):
            stale = current.rewards[reward_id]
            if not stale.active:
                continue
            if prune:
                body = stale.model_copy(update={"active": False}).model_dump(mode="json", exclude={"reward_id"})
                changes.append(Change("reward", reward_id, "deactivate", "PUT", "rewards",
                                      f"/v1/rewards/{reward_id}", body, {"active": (True, False)}))
            else:
                kept.append(f"reward {reward_id}")
    return Plan(changes, kept, conflicts)
