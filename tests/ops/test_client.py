"""The operator client: where the key comes from, how API problems read, what is retried."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ops.client import Api, ApiError, Endpoints, KeyMissing, describe_problem, resolve_key


def test_the_key_given_wins_over_the_key_file(tmp_path: Path) -> None:
    stored = tmp_path / "admin-key"
    stored.write_text("from-file\n")
    assert resolve_key("given", stored) == "given"
    assert resolve_key(None, stored) == "from-file"
    with pytest.raises(KeyMissing, match="LOYALTY_ADMIN_KEY"):
        resolve_key(None, tmp_path / "none")


def test_a_problem_reads_as_call_status_slug_detail_and_each_error() -> None:
    text = describe_problem("PUT", "/v1/tiers", 422, {
        "type": "/problems/validation-error", "title": "Request is not valid", "detail": "tiers: bad",
        "errors": [{"loc": ["body", "tiers", 0, "threshold"], "msg": "the first threshold must be 0"}]})
    assert text.splitlines() == ["PUT /v1/tiers: 422 validation-error: tiers: bad",
                                 "  body.tiers.0.threshold: the first threshold must be 0"]


def serving(*statuses: int) -> tuple[httpx.MockTransport, list[int]]:
    """A stand-in server answering the given statuses in turn (a problem body for errors)."""
    calls: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        status = statuses[min(len(calls), len(statuses) - 1)]
        calls.append(status)
        if status >= 400:
            return httpx.Response(status, json={"type": f"/problems/s{status}", "detail": "no"})
        return httpx.Response(status, json={"ok": True})

    return httpx.MockTransport(answer), calls


async def test_unavailable_is_retried_until_it_answers() -> None:
    transport, calls = serving(503, 502, 200)
    async with Api(Endpoints(), "k", backoff=0, transport=transport) as api:
        assert await api.get("points", "/v1/program") == {"ok": True}
    assert calls == [503, 502, 200]


async def test_a_client_error_is_not_retried_and_carries_the_problem() -> None:
    transport, calls = serving(409)
    async with Api(Endpoints(), "k", backoff=0, transport=transport) as api:
        with pytest.raises(ApiError) as caught:
            await api.send("rewards", "PUT", "/v1/rewards/x", {})
    assert calls == [409]
    assert (caught.value.status, str(caught.value)) == (409, "PUT /v1/rewards/x: 409 s409: no")


async def test_retries_end() -> None:
    transport, calls = serving(503)
    async with Api(Endpoints(), "k", retries=2, backoff=0, transport=transport) as api:
        with pytest.raises(ApiError):
            await api.get("tiers", "/v1/tiers")
    assert len(calls) == 3
