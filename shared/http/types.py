"""Field types of the public contract, shared by every service's schemas.

Money, points and time are read strictly: a decimal or an integer from a JSON string of plain ASCII digits or
a JSON integer (never ``"1_000"``, ``" 1"``, other scripts' digits, ``true`` or a float), a moment only from an
RFC 3339 string with its offset (never an epoch number). Text is refused when it holds what one of the
databases cannot store (NUL, lone surrogates), so both answer alike.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
)

from shared.clock import clock

_DECIMAL = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?", re.ASCII)
_INTEGER = re.compile(r"-?[0-9]{1,19}", re.ASCII)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})", re.ASCII)


def _plain_decimal(value: Any) -> Any:
    if isinstance(value, bool | float):
        raise ValueError("must be a decimal string such as \"12.30\" (or an integer), not a JSON float or boolean")
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise ValueError("must be a decimal of ASCII digits such as \"12.30\", without spaces or separators")
    return value


def _plain_integer(value: Any) -> Any:
    if isinstance(value, bool | float):
        raise ValueError("must be an integer, not a JSON float or boolean")
    if isinstance(value, str) and not _INTEGER.fullmatch(value):
        raise ValueError("must be an integer of ASCII digits, without spaces or separators")
    return value


def _spelled(pattern: re.Pattern[str], given: type, message: str) -> Callable[[Any], Any]:
    """A reading of text that matches ``pattern`` only (a ``given`` object passes: from Python callers, not
    from JSON)."""

    def read(value: Any) -> Any:
        if isinstance(value, given):
            return value
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(message)
        return value

    return read


_rfc3339 = _spelled(_RFC3339, datetime, "must be an RFC 3339 string with an offset, such as \"2026-11-20T10:15:00Z\"")
_iso_date = _spelled(_DATE, date, "must be a date string such as \"1990-12-10\" (YYYY-MM-DD)")


# The strict readings alone, for a value with bounds of its own (a query parameter): put after the bounds,
# ``Annotated[int, Query(ge=1, le=500), PLAIN_INTEGER]``, so the OpenAPI shows them as minimum and maximum.
PLAIN_INTEGER = BeforeValidator(_plain_integer)
PLAIN_DECIMAL = BeforeValidator(_plain_decimal)


def storable_text(value: str) -> str:
    """Text both databases store as it is: no NUL (PostgreSQL refuses it, SQLite keeps it) and no lone
    surrogate (not encodable as UTF-8)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise ValueError("must be valid Unicode (no lone surrogates)")
    return value


def _visible(value: str) -> str:
    """At least one character a person can read: not only spaces, zero-width or control characters."""
    if not any(unicodedata.category(char)[0] not in ("Z", "C") for char in value):
        raise ValueError("must contain visible characters")
    return value


class Body(BaseModel):
    """Base of every request body: no text field (at any depth of the body) holds what a database cannot
    store, so SQLite and PostgreSQL answer such text alike, with a 422."""

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        _check_text(value)
        return value


def _check_text(value: Any) -> None:
    if isinstance(value, str):
        storable_text(value)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check_text(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)


# Points as the contract has them: integers, bounded so that no sum of them overflows a 64-bit column.
MAX_POINTS = 10**12
Points = Annotated[int, BeforeValidator(_plain_integer), Field(ge=-MAX_POINTS, le=MAX_POINTS)]
# A count of something (a quantity, a limit): a plain integer too.
Count = Annotated[int, BeforeValidator(_plain_integer), Field(ge=0, le=1_000_000_000)]
# Free text a person wrote (a reason, a description): storable, with something visible in it.
Reason = Annotated[str, AfterValidator(storable_text), AfterValidator(_visible),
                   StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]

ID_PATTERN = r"^[A-Za-z0-9._:-]+$"

ClientId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN),
    Field(description="1-64 characters from [A-Za-z0-9._:-]", examples=["C-1001"]),
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(examples=["USD"])]
Amount = Annotated[
    Decimal, BeforeValidator(_plain_decimal),
    Field(ge=0, max_digits=16, decimal_places=4, allow_inf_nan=False, examples=["12.30"],
          description="A decimal amount as a string of ASCII digits (\"12.30\"), in the program's currency"),
]
Multiplier = Annotated[
    Decimal, BeforeValidator(_plain_decimal),
    Field(gt=0, max_digits=8, decimal_places=4, allow_inf_nan=False, examples=["1.5"]),
]


class TimeBounds:
    """How far from now a client's timestamp may be. Set from the settings when a service starts
    (``LOYALTY_MAX_PAST_DAYS``, ``LOYALTY_MAX_FUTURE_HOURS``): a till's clock may run a little ahead, and
    a catch-up batch may be old, but not absurdly so."""

    max_past = timedelta(days=3650)
    max_future = timedelta(hours=24)


def _within_bounds(value: datetime) -> datetime:
    now = datetime.now(UTC) + clock.offset
    if value < now - TimeBounds.max_past:
        raise ValueError(f"is more than {TimeBounds.max_past.days} days in the past")
    if value > now + TimeBounds.max_future:
        raise ValueError(f"is more than {TimeBounds.max_future} in the future")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_within_bounds),
                      Field(description="RFC 3339 with an offset", examples=["2026-11-20T10:15:00Z"])]
# A calendar date (a birth date): only "YYYY-MM-DD", never an epoch number or a moment.
CalendarDate = Annotated[date, BeforeValidator(_iso_date), Field(examples=["1990-12-10"])]
# Start and end of a schedule (a promotion, a reward's validity): may lie far ahead.
ScheduleTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339),
                         Field(description="RFC 3339 with an offset", examples=["2026-12-01T00:00:00Z"])]

# ISO 4217 currencies whose minor unit is not 1/100.
MINOR_UNITS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                     "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


def currency_decimals(currency: str) -> int:
    return MINOR_UNITS.get(currency, 2)


def check_currency_decimals(amount: Decimal, currency: str) -> None:
    """Raises ValueError when ``amount`` has more decimals than ``currency`` has (12.345 USD)."""
    places = currency_decimals(currency)
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise ValueError(f"{amount} has more decimals than {currency} allows ({places})")

# Client ids in URL paths (``/v1/members/{member_id}``...): same rules, validated before any lookup.
ClientIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
MemberIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["C-1001"])]
