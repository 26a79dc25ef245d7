"""HTTP endpoints of the tiers service: parse, call a use case, shape the answer. A module for each thing
they are about (the program, a member's tier, segments and analytics, the operator dashboard), each with
its router; ``ROUTERS`` is the order they appear in the OpenAPI document."""

from __future__ import annotations

from fastapi import APIRouter

from services.tiers.api import dashboard, members, program, segments

ROUTERS: list[APIRouter] = [program.router, members.router, segments.router, dashboard.router]
