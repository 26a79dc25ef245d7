"""Field types of the public contract, shared by every service's schemas."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import Path
from pydantic import AwareDatetime, Field, StringConstraints

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
Timestamp = AwareDatetime

# Client ids in URL paths (``/v1/members/{member_id}``...): same rules, validated before any lookup.
ClientIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]
MemberIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, examples=["C-1001"])]
