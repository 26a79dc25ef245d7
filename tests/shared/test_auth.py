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


def test_a_broken_keys_file_fails_closed_until_it_is_good_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A file that cannot be read may have revoked any of its keys: none works, the bootstrap key still does,
    and it is logged as an error; a good file brings its keys back."""
    monkeypatch.setattr(auth, "RELOAD_SECONDS", 0.0)
    path = tmp_path / "keys.json"
    write_keys_file(path, [KeyRecord(name="a", key_sha256=hash_key("key-a"), scopes=[Scope.ADMIN])])
    store = KeyStore("boot-secret", path)
    assert store.authenticate("key-a") is not None
    path.write_text("[{not json")
    os.utime(path, (time.time() + 5, time.time() + 5))
    with caplog.at_level("ERROR", logger="shared.http.auth"):
        assert store.authenticate("key-a") is None
    assert store.authenticate("boot-secret") is not None
    assert any("cannot be read" in r.getMessage() for r in caplog.records)
    path.chmod(0o000)  # unreadable as well as unparsable: still closed (root reads anyway; then it is parsed)
    assert store.authenticate("key-a") is None
    path.chmod(0o600)
    write_keys_file(path, [KeyRecord(name="a", key_sha256=hash_key("key-a"), scopes=[Scope.ADMIN])])
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert store.authenticate("key-a") is not None


def test_a_store_bound_key_acts_only_for_its_stores(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_keys_file(path, [
        KeyRecord(name="till-12", key_sha256=hash_key("till"), scopes=[Scope.PURCHASES_WRITE], stores=["store-12"]),
        KeyRecord(name="web", key_sha256=hash_key("web"), scopes=[Scope.PURCHASES_WRITE]),
    ])
    store = KeyStore(None, path)
    till, web = store.authenticate("till"), store.authenticate("web")
    assert till is not None and web is not None
    assert till.store_bound and till.acts_for("store-12")
    assert not till.acts_for("store-13") and not till.acts_for(None) and not till.reads_contacts
    assert not web.store_bound and web.acts_for(None) and web.acts_for("store-13") and web.reads_contacts


def test_unknown_keys_from_one_address_are_braked_while_known_keys_are_not(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_keys_file(path, [KeyRecord(name="web", key_sha256=hash_key("web"), scopes=[Scope.MEMBERS_READ])])
    store = KeyStore(None, path)
    answers: list[tuple[str, str | None]] = []
    for attempt in range(store.guesses.limit + 5):
        try:
            store.admit(f"guess-{attempt}", "10.0.0.9")
        except auth.RateLimited as exc:
            answers.append(("429", exc.headers["Retry-After"]))
        except auth.Unauthorized:
            answers.append(("401", None))
    assert [status for status, _ in answers] == ["401"] * store.guesses.limit + ["429"] * 5
    assert all(0 < int(wait) <= 60 for status, wait in answers if status == "429" and wait)
    assert store.admit("web", "10.0.0.9").name == "web"  # the guesser's address, a good key
    with pytest.raises(auth.Unauthorized):
        store.admit("guess", "10.0.0.10")  # another address is not braked


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


async def test_repeated_unknown_keys_get_429_while_a_good_key_gets_200(empty_db: object) -> None:
    await empty_db("points")  # type: ignore[operator]
    async with service_client("points") as (_, client):
        answers = [await client.get("/v1/program", headers={"Authorization": f"Bearer guess-{n}"})
                   for n in range(30)]
        assert [a.status_code for a in answers[:20]] == [401] * 20
        limited = answers[-1]
        assert limited.status_code == 429 and limited.json()["type"] == "/problems/rate-limited"
        assert 0 < int(limited.headers["retry-after"]) <= 60
        assert limited.headers["content-type"].startswith("application/problem+json")
        assert (await client.get("/v1/program")).status_code == 200  # the admin key, from the same address
