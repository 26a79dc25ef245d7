"""Figures as tiers writes them in its answers and events: stored with four decimals, shown as an operator
would write them. Shared by the program, the members' tiers and the segments."""

from __future__ import annotations

from decimal import Decimal

from services.tiers.domain import tiers

CENT = Decimal("0.01")


def plain(value: Decimal) -> str:
    """``500.0000`` as ``500``, ``1.5000`` as ``1.5``: the figure as an operator would write it."""
    return format(value.normalize(), "f")


def amount(value: Decimal, basis: tiers.Basis) -> str:
    """Points as a whole number; spend as money, with at least two decimals (``120.00``, ``12.345``)."""
    if basis == "points":
        return str(int(value))
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return format(value.quantize(CENT), "f")
    return format(normal, "f")
