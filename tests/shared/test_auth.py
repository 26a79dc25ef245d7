"""API keys: bootstrap key, keys file with scopes, reload on change, 401/403 problem answers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from shared.http import auth
from shared.http.auth import KeyRecord, KeyStore, Scope, hash_key, write_keys_file
from tests.support import service_client


def test_keys_file_keys_have_their_scopes_and_bootstrap_is_admin(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_keys_file(path, [KeyRecord(name="pos-1", key_sha256=hash_key("pos-secret"),
                                     scopes=[Scope.PURCHASES_WRITE])])
    store = KeyStore("boot-secret", path)
    pos = store.authenticate("pos-secret")
    assert pos is not None and pos.name == "pos-1"
    assert pos.allows(Scope.PURCHASES_WRITE) and not pos.allows(Scope.MEMBERS_READ)
    boot = store.authenticate("boot-secret")
    assert boot is not None and boot.allows(Scope.VOUCHERS_USE)
    assert store.authenticate("guess") is None


def test_removed_key_stops_working_without_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "RELOAD_SECONDS", 0.0)
    path = tmp_path / "keys.json"
    write_keys_file(path, [KeyRecord(name="a", key_sha256=hash_key("key-a"), scopes=[Scope.ADMIN])])
    store = KeyStore(None, path)
    assert store.authenticate("key-a") is not None
    write_keys_file(path, [])
    os.utime(path, (time.time() + 5, time.time() + 5))  # a new mtime even on coarse clocks
    assert store.authenticate("key-a") is None


def test_broken_keys_file_keeps_the_previous_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "RELOAD_SECONDS", 0.0)
    path = tmp_path / "keys.json"
    write_keys_file(path, [KeyRecord(name="a", key_sha256=hash_key("key-a"), scopes=[Scope.ADMIN])])
    store = KeyStore(None, path)
    path.write_text("[{not json")
    assert store.authenticate("key-a") is not None


async def test_missing_unknown_and_unscoped_keys_are_refused(empty_db: object, tmp_path: Path) -> None:
    await empty_db("points")  # type: ignore[operator]
    path = tmp_path / "keys.json"
    write_keys_file(path, [KeyRecord(name="shop-web", key_sha256=hash_key("web-key"),
                                     scopes=[Scope.MEMBERS_READ])])
    async with service_client("points", api_keys_file=path) as (_, client):
        none = await client.get("/v1/program", headers={"Authorization": ""})
        assert none.status_code == 401
        assert none.headers["content-type"].startswith("application/problem+json")
        assert none.json()["type"] == "/problems/unauthorized"
        unknown = await client.get("/v1/program", headers={"Authorization": "Bearer nope"})
        assert unknown.status_code == 401
        readable = await client.get("/v1/program", headers={"X-API-Key": "web-key"})
        assert readable.status_code == 200
        forbidden = await client.put("/v1/program", headers={"Authorization": "Bearer web-key"},
                                     json={"currency": "USD", "points_per_unit": "1", "expiry_days": 30,
                                           "pending_days": 0})
        assert forbidden.status_code == 403 and forbidden.json()["type"] == "/problems/forbidden"
