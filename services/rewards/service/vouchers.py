"""Vouchers at the till: a voucher checked by its code as printed, and used exactly once. (Vouchers are
issued by ``settlement`` when points confirms a redemption, and cancelled with it by ``redemptions``.)"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.rewards import domain, schemas
from services.rewards.errors import VoucherAlreadyUsed
from services.rewards.models import Voucher
from shared.clock import utcnow
from shared.errors import Conflict, NotFound


def voucher_out(voucher: Voucher) -> schemas.Voucher:
    return schemas.Voucher.model_validate(voucher, from_attributes=True)


async def get_voucher(session: AsyncSession, typed_code: str) -> Voucher:
    code = domain.normalize_code(typed_code)
    voucher = await session.get(Voucher, code) if code is not None else None
    if voucher is None:
        raise NotFound(f"No voucher '{typed_code}'.")
    return voucher


async def use_voucher(session: AsyncSession, typed_code: str, store_id: str | None) -> Voucher:
    """Mark a voucher used, exactly once even when two tills try at the same moment: the conditional update
    lets one of them through and the other finds it used."""
    voucher = await get_voucher(session, typed_code)
    done = await session.execute(
        update(Voucher).where(Voucher.code == voucher.code, Voucher.status == "active")
        .values(status="used", used_at=utcnow(), store_id=store_id)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(voucher)
    if done.rowcount == 1:  # type: ignore[attr-defined]
        return voucher
    if voucher.status == "used":
        used_at = voucher.used_at.isoformat() if voucher.used_at else "an unknown time"
        raise VoucherAlreadyUsed(f"Voucher '{voucher.code}' was already used at {used_at}.")
    raise Conflict(f"Voucher '{voucher.code}' is {voucher.status}.")
