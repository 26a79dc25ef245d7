"""The points migrations on both databases: 0004 copies the profiles' e-mails and phones into identifiers
(the first member by id keeps one two of them shared), matches the models (``alembic check``) and goes back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command

from shared.db.migrations import alembic_config, upgrade
from tests.support import run_sql, scratch_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return await scratch_database(request.param, "points", tmp_path)


async def test_0004_mirrors_profiles_matches_the_models_and_goes_back(empty_url: str) -> None:
    await asyncio.to_thread(upgrade, "points", empty_url, "0003")
    for member_id, email, phone in (("a", "'Ada@Example.com '", "'+1 (555) 010-0199'"),
                                    ("b", "'ada@example.com'", "NULL"), ("c", "NULL", "'()'")):
        await run_sql(empty_url, "INSERT INTO member (member_id, email, phone, status, enrolled_at, updated_at, "
                             "earn_multiplier, available, pending, lifetime_earned, lifetime_spent, purchase_count) "
                             f"VALUES ('{member_id}', {email}, {phone}, 'active', '2026-01-01 10:00:00', "
                             "'2026-01-01 10:00:00', 1, 0, 0, 0, 0, 0)")
    await asyncio.to_thread(upgrade, "points", empty_url, "head")
    rows = await run_sql(empty_url, "SELECT kind, normalized, member_id, value FROM member_identifier ORDER BY kind")
    assert rows == [("email", "ada@example.com", "a", "Ada@Example.com"), ("phone", "15550100199", "a",
                                                                           "+1 (555) 010-0199")]
    await asyncio.to_thread(command.check, alembic_config("points", empty_url))  # the models match

    await asyncio.to_thread(command.downgrade, alembic_config("points", empty_url), "0003")
    assert len(await run_sql(empty_url, "SELECT * FROM member")) == 3
    await asyncio.to_thread(upgrade, "points", empty_url, "head")
    await asyncio.to_thread(command.check, alembic_config("points", empty_url))
