"""`loyalty import`'s pure half: CSV rows turned into API bodies or a reason to reject them, deterministic
purchase ids, and the checkpoint that lets an interrupted import resume.

The services stay the authority on a row (unknown member, a date beyond ``LOYALTY_MAX_PAST_DAYS``, lines
that do not add up): the checks here only catch what cannot be sent at all, and everything the API refuses
is reported with the API's reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from services.points.schemas import MemberIn
from shared.http.types import ClientId

Kind = Literal["members", "purchases"]
MEMBER_COLUMNS = ("member_id", "name", "email", "phone", "birth_date", "referred_by", "status", "card")
PURCHASE_COLUMNS = ("purchase_id", "member_id", "occurred_at", "total", "currency", "store_id", "channel",
                    "category", "sku")
_CLIENT_ID: TypeAdapter[str] = TypeAdapter(ClientId)
_MOMENT: TypeAdapter[Any] = TypeAdapter(AwareDatetime)


class Rejected(Exception):
    """A row that cannot become a request; the message goes to the rejected file."""


def detect_kind(header: list[str]) -> Kind:
    columns = set(header)
    if {"occurred_at", "total"} <= columns:
        return "purchases"
    if "member_id" in columns:
        return "members"
    raise Rejected("the header names neither members (member_id, ...) nor purchases (member_id, occurred_at, "
                   "total, ...)")


def check_header(header: list[str], kind: Kind) -> None:
    known = MEMBER_COLUMNS if kind == "members" else PURCHASE_COLUMNS
    required = ("member_id",) if kind == "members" else ("member_id", "occurred_at", "total")
    unknown = [c for c in header if c not in known]
    missing = [c for c in required if c not in header]
    if unknown or missing:
        parts = ([f"unknown columns {', '.join(unknown)}"] if unknown else []) + (
            [f"missing columns {', '.join(missing)}"] if missing else [])
        raise Rejected(f"{'; '.join(parts)} (the columns of {kind}: {', '.join(known)})")


def _cells(row: Mapping[str, str | None]) -> dict[str, str]:
    return {k: v.strip() for k, v in row.items() if k is not None and v is not None and v.strip() != ""}


def _client_id(value: str | None, column: str) -> str:
    if value is None:
        raise Rejected(f"{column}: missing")
    try:
        return _CLIENT_ID.validate_python(value)
    except ValidationError:
        raise Rejected(f"{column}: {value!r} is not 1-64 characters from [A-Za-z0-9._:-]") from None


def member_request(row: Mapping[str, str | None]) -> tuple[str, dict[str, Any]]:
    """(member_id, the PUT body). Empty cells leave the member's field as it is."""
    cells = _cells(row)
    member_id = _client_id(cells.pop("member_id", None), "member_id")
    cells.pop("card", None)  # given after the member's PUT (member_card)
    try:
        body = MemberIn.model_validate(cells).model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise Rejected(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None
    return member_id, body


def member_card(row: Mapping[str, str | None]) -> str | None:
    """The row's ``card`` (trimmed), PUT as the member's card identifier after the member; None when empty."""
    card = _cells(row).get("card")
    if card is not None and len(card) > 254:
        raise Rejected("card: more than 254 characters")
    if card is not None and ("/" in card or "\x00" in card):
        raise Rejected(f"card: {card!r} holds a character a card cannot have ('/' or NUL)")
    return card


def derived_purchase_id(cells: dict[str, str]) -> str:
    """The same row gives the same id on every run, so a re-run (or a resumed one) replays instead of
    recording the purchase twice. Two rows alike in every column are taken for one purchase."""
    material = "\x1f".join(cells.get(c, "") for c in PURCHASE_COLUMNS if c != "purchase_id")
    return "csv-" + hashlib.sha256(material.encode()).hexdigest()[:40]


def purchase_body(row: Mapping[str, str | None], default_currency: str) -> dict[str, Any]:
    """The POST /v1/purchases body. A ``category`` (or ``sku``) makes the purchase one line of that
    category, so category rules and exclusions apply to it."""
    cells = _cells(row)
    member_id = _client_id(cells.get("member_id"), "member_id")
    purchase_id = (_client_id(cells["purchase_id"], "purchase_id") if "purchase_id" in cells
                   else derived_purchase_id(cells))
    if "occurred_at" not in cells:
        raise Rejected("occurred_at: missing")
    try:
        _MOMENT.validate_python(cells["occurred_at"])
    except ValidationError:
        raise Rejected(f"occurred_at: {cells['occurred_at']!r} is not an RFC 3339 time with an offset") from None
    try:
        total = Decimal(cells.get("total", ""))
    except InvalidOperation:
        raise Rejected(f"total: {cells.get('total', '')!r} is not a decimal amount") from None
    if not total.is_finite() or total < 0:
        raise Rejected(f"total: {cells['total']!r} is not an amount of zero or more")
    body: dict[str, Any] = {"purchase_id": purchase_id, "member_id": member_id,
                            "occurred_at": cells["occurred_at"], "currency": cells.get("currency", default_currency),
                            "total": cells["total"]}
    for column in ("store_id", "channel"):
        if column in cells:
            body[column] = cells[column]
    if "category" in cells or "sku" in cells:
        body["lines"] = [{"sku": cells.get("sku", cells.get("category")), "category": cells.get("category"),
                          "quantity": 1, "unit_price": cells["total"]}]
    return body


def rejection_reason(status: int, problem: dict[str, Any]) -> str:
    """One line from the API's problem+json answer for the rejected file."""
    slug = str(problem.get("type", "")).rsplit("/", 1)[-1] or str(status)
    errors = problem.get("errors") or []
    if errors:
        first = errors[0]
        loc = [str(p) for p in first.get("loc", ()) if str(p) not in ("body", "purchases") and not str(p).isdigit()]
        return f"{status} {slug}: {'.'.join(loc)}: {first.get('msg', '')}"
    return f"{status} {slug}: {problem.get('detail') or problem.get('title') or ''}".rstrip()


# --- checkpoint ------------------------------------------------------------------------------------


@dataclass
class Tally:
    created: int = 0
    existing: int = 0  # already there: a purchase replayed, a member updated (a resumed or repeated import)
    rejected: int = 0

    def add(self, other: Tally) -> None:
        self.created += other.created
        self.existing += other.existing
        self.rejected += other.rejected


@dataclass
class Checkpoint:
    """Written after each batch: rows before ``rows_done`` are settled and their rejections are the first
    ``rejected_bytes`` of the rejected file (a crash between the two writes cannot list a row twice)."""

    source_size: int
    rows_done: int = 0
    rejected_bytes: int = 0
    tally: Tally = field(default_factory=Tally)

    def save(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self)))
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(source_size=int(data["source_size"]), rows_done=int(data["rows_done"]),
                   rejected_bytes=int(data["rejected_bytes"]), tally=Tally(**data["tally"]))


def side_files(source: Path) -> tuple[Path, Path]:
    """(rejected rows, checkpoint) next to the imported file."""
    return source.with_name(source.name + ".rejected.csv"), source.with_name(source.name + ".checkpoint.json")
