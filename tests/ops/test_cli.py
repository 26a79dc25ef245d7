"""`loyalty keys`: a key is printed once, stored hashed, listed by name, revoked."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import app
from shared.http.auth import KeyStore, read_keys_file


def test_create_list_revoke(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "pos-12", "-s", "purchases:write", "-s", "members:read",
                                  "--file", str(path)])
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    assert key.startswith("lk_") and key not in path.read_text()
    assert read_keys_file(path)[0].name == "pos-12"
    principal = KeyStore(None, path).authenticate(key)
    assert principal is not None and principal.scopes == {"purchases:write", "members:read"}
    listed = runner.invoke(app, ["keys", "list", "--file", str(path)])
    assert "pos-12" in listed.output and key not in listed.output
    assert runner.invoke(app, ["keys", "revoke", "pos-12", "--file", str(path)]).exit_code == 0
    assert KeyStore(None, path).authenticate(key) is None


def test_a_key_bound_to_stores(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "pos-12", "-s", "purchases:write", "--store", "store-12",
                                  "--store", "store-12b", "--file", str(path)])
    assert created.exit_code == 0, created.output
    assert read_keys_file(path)[0].stores == ["store-12", "store-12b"]
    principal = KeyStore(None, path).authenticate(created.output.strip())
    assert principal is not None and principal.stores == {"store-12", "store-12b"} and not principal.reads_contacts
    assert runner.invoke(app, ["keys", "create", "hq", "-s", "admin", "--file", str(path)]).exit_code == 0
    assert read_keys_file(path)[1].stores is None
    listed = runner.invoke(app, ["keys", "list", "--file", str(path)]).output.splitlines()
    assert listed == ["pos-12\tpurchases:write\tstore-12,store-12b", "hq\tadmin\t*"]
    bad = runner.invoke(app, ["keys", "create", "pos-x", "-s", "purchases:write", "--store", "no spaces",
                              "--file", str(path)])
    assert bad.exit_code != 0 and "not a valid key" in bad.output and len(read_keys_file(path)) == 2



async def test_expire_points_job_from_the_command_line(
    empty_db: Callable[[str], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POINTS_DATABASE_URL", await empty_db("points"))
    result = await asyncio.to_thread(CliRunner().invoke, app, ["jobs", "expire-points"])
    assert result.exit_code == 0, result.output
    assert "settled 0 members" in result.output
