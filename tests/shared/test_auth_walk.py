"""Every operation of every service, read from its OpenAPI, refuses a missing key (401) and a key without
its scope (403); only the health endpoints and the event contract are open."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from shared.http.auth import KeyRecord, hash_key, write_keys_file
from tests.support import SERVICES, service_client

OPEN = {"/healthz", "/readyz", "/asyncapi.json"}


@pytest.mark.parametrize("service", SERVICES)
async def test_every_operation_needs_a_key_with_its_scope(
    service: str, empty_db: Callable[[str], Awaitable[str]], tmp_path: Path
) -> None:
    await empty_db(service)
    keys = tmp_path / "keys.json"
    write_keys_file(keys, [KeyRecord(name="nothing", key_sha256=hash_key("no-scope-key"), scopes=[])])
    async with service_client(service, api_keys_file=keys) as (app, client):
        operations = [(method.upper(), path) for path, item in app.openapi()["paths"].items()
                      for method in item if path not in OPEN]
        assert len(operations) >= 3
        for method, path in operations:
            url = re.sub(r"\{[^}]+\}", "x-1", path)
            anonymous = await client.request(method, url, headers={"Authorization": ""}, json={})
            assert anonymous.status_code == 401, (method, path, anonymous.status_code)
            assert anonymous.json()["type"] == "/problems/unauthorized"
            unscoped = await client.request(method, url, headers={"Authorization": "Bearer no-scope-key"}, json={})
            assert unscoped.status_code == 403, (method, path, unscoped.status_code)
            assert unscoped.json()["type"] == "/problems/forbidden"
