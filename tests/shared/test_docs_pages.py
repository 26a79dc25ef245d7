"""/docs and /redoc of every service: pages that load only the service's own files (the vendored, pinned
Swagger UI and ReDoc, and docs.js), under a Content-Security-Policy that allows nothing else; a 503 saying
what to run where the libraries are not vendored. The browser's view: tests/system/test_docs_pages.py."""

from __future__ import annotations

import importlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from shared.http import apidocs
from tests.support import ROOT, SERVICES, settings_for, vendor_assets

PAGES = ("/docs", "/redoc")
SOURCES = re.compile(r'(?:src|href|spec-url|data-openapi-url)="([^"]*)"')
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


@pytest.fixture(params=SERVICES)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """The service's app (no lifespan: the pages need no database) over httpx, with no key."""
    app: FastAPI = importlib.import_module(f"services.{request.param}.app").create_app(settings_for(request.param))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


def policy(response: httpx.Response) -> dict[str, list[str]]:
    directives = [part.split() for part in response.headers["content-security-policy"].split(";")]
    return {name: sources for name, *sources in directives}


def test_the_vendored_files_are_the_pinned_ones() -> None:
    """What `make install` put in place is what the pinned tarballs (sha256 checked) hold."""
    module = vendor_assets()
    docs = [asset for asset in module.ASSETS if asset.package in ("swagger-ui-dist", "redoc")]
    assert {asset.package for asset in docs} == {"swagger-ui-dist", "redoc"}
    for asset in docs:
        assert re.fullmatch(r"\d+\.\d+\.\d+", asset.version), asset  # an exact version, not a range
        assert module.in_place(asset), f"{asset.spec} is not vendored as pinned: run `make install`"
    vendored = {ROOT / target for asset in docs for target in asset.files.values()}
    assert {path for name, path in apidocs.ASSETS.items() if name != "docs.js"} <= vendored


@pytest.mark.parametrize("path", PAGES)
async def test_the_pages_load_only_the_services_own_files(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "<script>" not in response.text and "style=" not in response.text  # nothing inline
    sources = SOURCES.findall(response.text)
    assert sources, response.text
    for source in sources:
        assert "//" not in source and not source.startswith("/"), source  # relative, to this service
    assets = [source for source in sources if source.startswith("docs/assets/")]
    assert assets
    for source in assets:
        asset = await client.get(f"/{source}")
        assert asset.status_code == 200, source
        assert asset.headers["content-type"].startswith(CONTENT_TYPES[Path(source).suffix]), source
        assert asset.headers["x-content-type-options"] == "nosniff"
    openapi = [source for source in sources if source.endswith(".json")]
    assert openapi == ["openapi.json"]
    assert (await client.get("/openapi.json")).status_code == 200


@pytest.mark.parametrize("path", PAGES)
async def test_the_pages_policy_allows_the_service_alone(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    directives = policy(response)
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]  # no inline script, no eval, no other host
    assert directives["connect-src"] == ["'self'"]
    assert directives["img-src"] == ["'self'", "data:"]
    assert directives["frame-ancestors"] == ["'none'"] and directives["base-uri"] == ["'none'"]
    assert directives["form-action"] == ["'none'"]
    sources = [source for values in directives.values() for source in values]
    assert not [s for s in sources if "://" in s or s == "*" or "unsafe" in s or s in ("http:", "https:")], sources
    if path == "/docs":
        assert directives["style-src"] == ["'self'"]
        assert set(directives) == set(apidocs.BASE_POLICY)
    else:  # ReDoc's empty <style> elements, filled through the CSSOM, and its data: icon font
        assert directives["style-src"] == ["'self'", apidocs.EMPTY_STYLE]
        assert directives["font-src"] == ["data:"]


async def test_the_docs_script_starts_swagger_ui_from_the_page(client: httpx.AsyncClient) -> None:
    script = (await client.get("/docs/assets/docs.js")).text
    assert "SwaggerUIBundle(" in script and "dataset.openapiUrl" in script and "validatorUrl: null" in script
    assert "://" not in script


async def test_only_the_named_assets_are_served(client: httpx.AsyncClient) -> None:
    for name in ("swagger-ui-LICENSE", "..%2Fapidocs.py", "index.html", "oauth2-redirect.html"):
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 404, name
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/docs/oauth2-redirect")).status_code == 404


async def test_the_pages_are_not_operations(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]


@pytest.mark.parametrize(("path", "library", "name"), [("/docs", "Swagger UI", "swagger-ui-bundle.js"),
                                                       ("/redoc", "ReDoc", "redoc.standalone.js")])
async def test_without_the_vendored_files_a_page_says_what_to_run(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, path: str, library: str, name: str
) -> None:
    monkeypatch.setitem(apidocs.ASSETS, name, tmp_path / name)
    response = await client.get(path)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/service-unavailable"
    assert library in problem["detail"] and "make install" in problem["detail"]
    asset = await client.get(f"/docs/assets/{name}")
    assert asset.status_code == 404 and "make install" in asset.json()["detail"]


def test_the_docs_need_an_app_without_fastapis_own() -> None:
    with pytest.raises(ValueError, match="docs_url=None"):
        apidocs.install_api_docs(FastAPI())
