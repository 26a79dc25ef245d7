"""Keys lent to the tills of store-12, written to a keys file, and the headers that present them."""

from __future__ import annotations

from pathlib import Path

from shared.http.auth import KeyRecord, Scope, hash_key, write_keys_file

TILL_KEY = "till-12-key-4c8e1b7a"  # store-bound: store-12 only
OTHER_TILL_KEY = "till-12b-key-9d2f6a3c"  # another till of store-12, same scopes
SECOND_ADMIN_KEY = "second-admin-key-1a5d7e"  # a key of the whole program, as an operator's
ENROLLING_TILL_KEY = "till-12e-key-3b7c9f1d"  # a till of store-12 that also enrolls members
TILL = {"Authorization": f"Bearer {TILL_KEY}"}
OTHER_TILL = {"Authorization": f"Bearer {OTHER_TILL_KEY}"}
SECOND_ADMIN = {"Authorization": f"Bearer {SECOND_ADMIN_KEY}"}
ENROLLING_TILL = {"Authorization": f"Bearer {ENROLLING_TILL_KEY}"}
TILL_SCOPES = [Scope.PURCHASES_WRITE, Scope.MEMBERS_READ, Scope.VOUCHERS_USE, Scope.REDEMPTIONS_WRITE]


def write_till_keys(path: Path) -> Path:
    write_keys_file(path, [
        KeyRecord(name="pos-store-12", key_sha256=hash_key(TILL_KEY), scopes=TILL_SCOPES, stores=["store-12"]),
        KeyRecord(name="pos-store-12-b", key_sha256=hash_key(OTHER_TILL_KEY), scopes=TILL_SCOPES,
                  stores=["store-12"]),
        KeyRecord(name="ops-2", key_sha256=hash_key(SECOND_ADMIN_KEY), scopes=[Scope.ADMIN]),
        KeyRecord(name="pos-store-12-e", key_sha256=hash_key(ENROLLING_TILL_KEY),
                  scopes=[Scope.MEMBERS_WRITE, Scope.MEMBERS_READ], stores=["store-12"]),
    ])
    return path
