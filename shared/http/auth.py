"""API keys: the bootstrap admin key, a keys file re-read when it changes, scopes, the stores a key is bound
to, and a brake on clients that keep presenting unknown keys.

Keys are stored as SHA-256 hex digests and compared in constant time. The keys file is looked at again at
most every ``RELOAD_SECONDS``, so a revoked key stops working within seconds without a restart. While the
file cannot be read or parsed, none of its keys works (it may have revoked any of them): the service fails
closed, logs it at every look, and only the bootstrap key still gets in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, Field, TypeAdapter

from shared.errors import Forbidden, RateLimited, Unauthorized

log = logging.getLogger(__name__)

RELOAD_SECONDS = 2.0
BOOTSTRAP_KEY_NAME = "bootstrap-admin"


class Scope(StrEnum):
    PURCHASES_WRITE = "purchases:write"
    MEMBERS_READ = "members:read"
    MEMBERS_WRITE = "members:write"
    REDEMPTIONS_WRITE = "redemptions:write"
    VOUCHERS_USE = "vouchers:use"
    ADMIN = "admin"


StoreId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class KeyRecord(BaseModel):
    """One entry of the keys file (``LOYALTY_API_KEYS_FILE``). A key with ``stores`` is one lent to a till or a
    shop: it acts only for those stores and reads no e-mail or phone."""

    name: str = Field(min_length=1, max_length=64)
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope]
    stores: list[StoreId] | None = Field(None, min_length=1)


_KEYS_FILE = TypeAdapter(list[KeyRecord])


@dataclass(frozen=True)
class Principal:
    """Who made a request: the key's name is recorded as the actor of what it changes. ``stores`` is None for
    a key of the whole program, else the stores it may act for."""

    name: str
    scopes: frozenset[str]
    stores: frozenset[str] | None = None

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    @property
    def store_bound(self) -> bool:
        return self.stores is not None

    def acts_for(self, store_id: str | None) -> bool:
        """Whether the key may act at ``store_id`` (a key of the whole program acts everywhere, a store-bound
        one only at its stores and never without one)."""
        return self.stores is None or (store_id is not None and store_id in self.stores)

    def check_store(self, store_id: str | None, doing: str) -> None:
        """``acts_for`` or ``403 forbidden`` saying why; ``doing`` is what was asked ("posts purchases")."""
        if not self.acts_for(store_id):
            where = f"store '{store_id}'" if store_id is not None else "no store_id"
            raise Forbidden(f"This key {doing} only for its stores ({', '.join(sorted(self.stores or ()))}); the "
                            f"request gives {where}. Give one of its stores as store_id.")

    @property
    def reads_contacts(self) -> bool:
        """E-mail and phone are for keys of the whole program, not for a till's."""
        return self.stores is None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "lk_" + secrets.token_urlsafe(32)


def read_keys_file(path: Path) -> list[KeyRecord]:
    if not path.exists():
        return []
    return _KEYS_FILE.validate_json(path.read_bytes() or b"[]")


def write_keys_file(path: Path, records: list[KeyRecord]) -> None:
    """Atomic replace, so a service reading the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps([r.model_dump(mode="json") for r in records], indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-")
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class Guesses:
    """Unknown keys per client address in a sliding window: past ``limit`` within ``window`` seconds the
    address is answered 429 until the window has passed. In memory, per process: with N processes a guesser
    gets N times the limit before all of them brake (docs/operations.md). Known keys are never slowed."""

    def __init__(self, limit: int = 20, window: float = 60.0, max_addresses: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._seen: dict[str, list[float]] = {}

    def _recent(self, address: str, now: float) -> list[float]:
        times = [t for t in self._seen.get(address, ()) if now - t < self.window]
        if times:
            self._seen[address] = times
        else:
            self._seen.pop(address, None)
        return times

    def retry_after(self, address: str) -> int | None:
        """Seconds the address must wait, or None when it may try."""
        now = time.monotonic()
        times = self._recent(address, now)
        if len(times) < self.limit:
            return None
        return max(1, int(times[-self.limit] + self.window - now + 0.999))

    def failed(self, address: str) -> None:
        now = time.monotonic()
        if address not in self._seen and len(self._seen) >= self.max_addresses:
            del self._seen[next(iter(self._seen))]  # the oldest address first: bounded memory
        times = self._recent(address, now)
        times.append(now)
        self._seen[address] = times[-self.limit * 2:]


class KeyStore:
    def __init__(self, bootstrap_admin_key: str | None, keys_file: Path | None) -> None:
        self._bootstrap = hash_key(bootstrap_admin_key) if bootstrap_admin_key else None
        self._file = keys_file
        self._file_stamp: tuple[float, int] | None = None
        self._file_keys: list[KeyRecord] = []
        self._file_broken = False
        self._checked_at = 0.0
        self.guesses = Guesses()
        self._reload()

    def _reload(self) -> None:
        self._checked_at = time.monotonic()
        if self._file is None:
            return
        try:
            stat = self._file.stat()
            stamp = (stat.st_mtime, stat.st_size)
        except FileNotFoundError:
            stamp = None
        except OSError as exc:
            self._fail_closed(exc)
            return
        if stamp == self._file_stamp and not self._file_broken:
            return
        try:
            self._file_keys = read_keys_file(self._file) if stamp else []
        except (OSError, ValueError) as exc:
            self._fail_closed(exc)
            return
        self._file_stamp = stamp
        if self._file_broken:
            log.warning("keys file %s is readable again: its keys work again", self._file)
        self._file_broken = False
        log.info("loaded %d API keys from %s", len(self._file_keys), self._file)

    def _fail_closed(self, exc: Exception) -> None:
        """A file that cannot be read may have revoked any key: none of its keys works until it can be."""
        self._file_keys = []
        self._file_stamp = None
        self._file_broken = True
        log.error("keys file %s cannot be read (%s): every key of it is refused until it can be; only the "
                  "bootstrap admin key works meanwhile", self._file, type(exc).__name__)

    def authenticate(self, presented: str) -> Principal | None:
        if time.monotonic() - self._checked_at > RELOAD_SECONDS:
            self._reload()
        digest = hash_key(presented)
        found: Principal | None = None
        # Every candidate is compared, so the time taken says nothing about which one matched.
        if self._bootstrap is not None and hmac.compare_digest(digest, self._bootstrap):
            found = Principal(BOOTSTRAP_KEY_NAME, frozenset({Scope.ADMIN}))
        for record in self._file_keys:
            if hmac.compare_digest(digest, record.key_sha256) and found is None:
                stores = frozenset(record.stores) if record.stores is not None else None
                found = Principal(record.name, frozenset(record.scopes), stores)
        return found

    def admit(self, presented: str, address: str) -> Principal:
        """The key's principal; an unknown key is 401, or 429 once its address has presented too many."""
        principal = self.authenticate(presented)
        if principal is not None:
            return principal
        wait = self.guesses.retry_after(address)
        if wait is not None:
            raise RateLimited(f"Too many requests with unknown API keys from this address; retry in {wait} "
                              "seconds.", headers={"Retry-After": str(wait)})
        self.guesses.failed(address)
        raise Unauthorized("The API key is not known or was revoked.")


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


def client_address(request: Request) -> str:
    """The peer's address as the server saw it (behind a proxy: the proxy's, unless the server is told to
    trust its forwarded headers, e.g. uvicorn's --forwarded-allow-ips)."""
    return request.client.host if request.client is not None else "unknown"


def require(*scopes: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that admits keys holding one of ``scopes`` (or ``admin``) and returns the caller."""
    if not scopes:
        raise ValueError("require() needs at least one scope")

    async def dependency(request: Request) -> Principal:
        key = presented_key(request)
        if key is None:
            raise Unauthorized("Send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'.")
        store: KeyStore = request.app.state.keys
        principal = store.admit(key, client_address(request))
        if not any(principal.allows(scope) for scope in scopes):
            named = " or ".join(f"'{scope}'" for scope in scopes)
            raise Forbidden(f"This operation needs the {named} scope.")
        request.state.principal = principal
        return principal

    dependency.__name__ = "require_" + "_or_".join(scope.value.replace(":", "_") for scope in scopes)
    return dependency


# The caller of an endpoint, admitted with the scope in the name (or ``admin``).
MembersRead = Annotated[Principal, Depends(require(Scope.MEMBERS_READ))]
MembersWrite = Annotated[Principal, Depends(require(Scope.MEMBERS_WRITE))]
PurchasesWrite = Annotated[Principal, Depends(require(Scope.PURCHASES_WRITE))]
RedemptionsWrite = Annotated[Principal, Depends(require(Scope.REDEMPTIONS_WRITE))]
VouchersUse = Annotated[Principal, Depends(require(Scope.VOUCHERS_USE))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
# A quote tells a till what a basket earns and a shop page what it could pay: either kind of key may ask.
QuotesRead = Annotated[Principal, Depends(require(Scope.PURCHASES_WRITE, Scope.MEMBERS_READ))]
