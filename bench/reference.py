"""The benchmark's reference write: the cheapest write a service can do through its own engine.

`make bench` reports purchase ingestion beside this figure, measured on the same server in the same run, so
the ratio says how much of a purchase's cost is the purchase itself rather than HTTP, auth and a commit.
The production apps never mount it: the benchmark starts points from ``create_points_app``
(``uvicorn --factory bench.reference:create_points_app``), points' own app with this one route added.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, func

from services.points.app import create_app
from services.points.settings import Settings
from shared.db.database import Database
from shared.http.auth import PurchasesWrite

router = APIRouter(prefix="/bench", tags=["operations"], include_in_schema=False)

# Kept out of the services' metadata (and so out of their migrations): the table exists only where the
# benchmark ran, created on the first call.
reference_table = Table(
    "bench_reference",
    MetaData(),
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("note", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

_created: set[str] = set()  # database URLs where the table is known to exist
_creating = asyncio.Lock()


async def _ensure_table(db: Database) -> None:
    if db.url in _created:
        return
    async with _creating:
        if db.url not in _created:
            async with db.engine.begin() as conn:
                await conn.run_sync(reference_table.create, checkfirst=True)
            _created.add(db.url)


@router.post("/reference-write", status_code=201, summary="Insert one row and commit (benchmark reference)")
async def reference_write(request: Request, _: PurchasesWrite) -> JSONResponse:
    """One row inserted and committed through the service's Database, behind the same auth dependency as
    `POST /v1/purchases`, so the two differ only by what the purchase does."""
    db: Database = request.app.state.db
    await _ensure_table(db)
    async with db.transaction() as session:
        row_id = (await session.execute(
            reference_table.insert().values(note=request.headers.get("x-bench-id", "-")[:64])
            .returning(reference_table.c.id)
        )).scalar_one()
    return JSONResponse({"id": row_id}, status_code=201)


def create_points_app(settings: Settings | None = None) -> FastAPI:
    """points' app as production runs it, plus ``POST /bench/reference-write``."""
    app = create_app(settings)
    app.include_router(router)
    return app
