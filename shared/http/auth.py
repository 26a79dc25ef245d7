"""API keys: the bootstrap admin key, a keys file re-read when it changes, scopes.

Keys are stored as SHA-256 hex digests and compared in constant time. The keys file is looked at again at
most every ``RELOAD_SECONDS``, so a revoked key stops working within seconds without a restart.
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

from shared.errors import Forbidden, Unauthorized

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


class KeyRecord(BaseModel):
    """One entry of the keys file (``LOYALTY_API_KEYS_FILE``)."""

    name: str = Field(min_length=1, max_length=64)
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope]


_KEYS_FILE = TypeAdapter(list[KeyRecord])


@dataclass(frozen=True)
class Principal:
    """Who made a request: the key's name is recorded as the actor of what it changes."""

    name: str
    scopes: frozenset[str]

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


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


class KeyStore:
    def __init__(self, bootstrap_admin_key: str | None, keys_file: Path | None) -> None:
        self._bootstrap = hash_key(bootstrap_admin_key) if bootstrap_admin_key else None
        self._file = keys_file
        self._file_stamp: tuple[float, int] | None = None
        self._file_keys: list[KeyRecord] = []
        self._checked_at = 0.0
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
        if stamp == self._file_stamp:
            return
        try:
            self._file_keys = read_keys_file(self._file) if stamp else []
            self._file_stamp = stamp
            log.info("loaded %d API keys from %s", len(self._file_keys), self._file)
        except (OSError, ValueError) as exc:
            # Keep the keys we had: a half-edited file must not lock every client out.
            log.error("keys file %s not loaded: %s", self._file, exc)

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
                found = Principal(record.name, frozenset(record.scopes))
        return found


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


def require(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that admits keys holding ``scope`` (or ``admin``) and returns the caller."""

    async def dependency(request: Request) -> Principal:
        key = presented_key(request)
        if key is None:
            raise Unauthorized("Send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'.")
        store: KeyStore = request.app.state.keys
        principal = store.authenticate(key)
        if principal is None:
            raise Unauthorized("The API key is not known or was revoked.")
        if not principal.allows(scope):
            raise Forbidden(f"This operation needs the '{scope}' scope.")
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope.value.replace(':', '_')}"
    return dependency


# The caller of an endpoint, admitted with the scope in the name (or ``admin``).
MembersRead = Annotated[Principal, Depends(require(Scope.MEMBERS_READ))]
MembersWrite = Annotated[Principal, Depends(require(Scope.MEMBERS_WRITE))]
PurchasesWrite = Annotated[Principal, Depends(require(Scope.PURCHASES_WRITE))]
RedemptionsWrite = Annotated[Principal, Depends(require(Scope.REDEMPTIONS_WRITE))]
VouchersUse = Annotated[Principal, Depends(require(Scope.VOUCHERS_USE))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
