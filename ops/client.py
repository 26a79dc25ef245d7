"""The operator commands' HTTP client: the three services' URLs, the admin key, retries, problem+json errors."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URLS = {"points": "http://127.0.0.1:8001", "rewards": "http://127.0.0.1:8002",
                "tiers": "http://127.0.0.1:8003"}
KEY_FILE = Path(".data/admin-key")
RETRY_STATUSES = frozenset({502, 503, 504})


class ApiError(Exception):
    """A 4xx/5xx answer, carrying the problem+json body so the operator sees the API's own words."""

    def __init__(self, method: str, path: str, status: int, problem: dict[str, Any]) -> None:
        self.method, self.path, self.status, self.problem = method, path, status, problem
        super().__init__(describe_problem(method, path, status, problem))


class KeyMissing(Exception):
    pass


def describe_problem(method: str, path: str, status: int, problem: Mapping[str, Any]) -> str:
    slug = str(problem.get("type", "")).rsplit("/", 1)[-1] or "error"
    lines = [f"{method} {path}: {status} {slug}: {problem.get('detail') or problem.get('title') or ''}".rstrip()]
    for err in problem.get("errors") or ():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        lines.append(f"  {loc}: {err.get('msg', '')}")
    return "\n".join(lines)


def resolve_key(key: str | None, key_file: Path = KEY_FILE) -> str:
    """--key or LOYALTY_ADMIN_KEY (typer passes either as ``key``), else the key `make run` keeps on disk."""
    if key:
        return key
    if key_file.exists():
        return key_file.read_text().strip()
    raise KeyMissing(f"no admin key: give --key, set LOYALTY_ADMIN_KEY or run from where {key_file} exists")


@dataclass(frozen=True)
class Endpoints:
    points: str = DEFAULT_URLS["points"]
    rewards: str = DEFAULT_URLS["rewards"]
    tiers: str = DEFAULT_URLS["tiers"]

    def base(self, service: str) -> str:
        url: str = getattr(self, service)
        return url.rstrip("/")


class Api:
    """One async client for the three services. Connection errors and 502/503/504 are retried with
    exponential backoff: a service restarting or a database failing over should not stop an import midway;
    every write the commands make is idempotent, so a retry of a request that did land is harmless. Six retries
    from 0.25 s doubling wait about 16 s in all: a restart, not an outage."""

    def __init__(self, endpoints: Endpoints, key: str, *, retries: int = 6, backoff: float = 0.25,
                 timeout: float = 60.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.endpoints = endpoints
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport,
                                       headers={"Authorization": f"Bearer {key}"})

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def request(self, service: str, method: str, path: str, *, json: Any = None,
                      params: Mapping[str, Any] | None = None, ok_statuses: frozenset[int] = frozenset()
                      ) -> httpx.Response:
        url = self.endpoints.base(service) + path
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.request(method, url, json=json, params=params)
            except (httpx.TransportError, httpx.TimeoutException):
                if attempt == self.retries:
                    raise
            else:
                if response.status_code not in RETRY_STATUSES or attempt == self.retries:
                    break
            await asyncio.sleep(self.backoff * 2 ** attempt)
        if response.status_code >= 400 and response.status_code not in ok_statuses:
            raise ApiError(method, path, response.status_code, _problem(response))
        return response

    async def get(self, service: str, path: str, **params: Any) -> Any:
        return (await self.request(service, "GET", path, params=params or None)).json()

    async def send(self, service: str, method: str, path: str, body: Any = None) -> Any:
        response = await self.request(service, method, path, json=body)
        return response.json() if response.content else None

    async def pages(self, service: str, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a cursor-paginated list."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.get(service, path, limit=500, **params, **({"cursor": cursor} if cursor else {}))
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:500]}
    return body if isinstance(body, dict) else {"detail": str(body)[:500]}
