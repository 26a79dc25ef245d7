"""Field types of the public contract, shared by every service's schemas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints

from shared.clock import clock

ID_PATTERN = r"^[A-Za-z0-9._:-]+$"

ClientId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN),
    Field(description="1-64 characters from [A-Za-z0-9._:-]", examples=["C-1001"]),
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(examples=["USD"])]
Amount = Annotated[
    Decimal,
    Field(ge=0, max_digits=16, decimal_places=4, allow_inf_nan=False, examples=["12.30"],
          description="A decimal amount as a string, in the program's currency"),
]
Multiplier = Annotated[
    Decimal,
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


Timestamp = Annotated[AwareDatetime, AfterValidator(_within_bounds),
                      Field(description="RFC 3339 with an offset", examples=["2026-11-20T10:15:00Z"])]
# Start and end of a schedule (a promotion, a reward's validity): may lie far ahead.
ScheduleTime = Annotated[AwareDatetime, Field(description="RFC 3339 with an offset",
                                              examples=["2026-12-01T00:00:00Z"])]

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
