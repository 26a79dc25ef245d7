"""Each service's /docs (Swagger UI) and /redoc (ReDoc) in a real browser that cannot reach anything but the
service: Debian's headless Chromium (driven by Playwright) with every host but 127.0.0.1 unresolvable and a
dead proxy for anything else. The pages must show the service's operations from the vendored libraries, the
key pasted into "Authorize" must work for "Try it out", and the Content-Security-Policy must hold: nothing
refused that the page needed, no request for another host. The screenshot of points' page is kept as a CI
artifact: .artifacts/docs.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, Request, Route

from tests.support import ADMIN_KEY, SERVICES
from tests.system.browser import ARTIFACTS, launch
from tests.system.harness import System

pytestmark = pytest.mark.system

OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--proxy-server=127.0.0.1:9")
# Every report of the policy, kept in the page (an init script is not subject to the page's policy).
VIOLATIONS_JS = """document.addEventListener('securitypolicyviolation', event => {
  (window.__violations = window.__violations || []).push(
    {directive: event.violatedDirective, blocked: event.blockedURI, source: event.sourceFile});
});"""
OPERATIONS_JS = """() => [...document.querySelectorAll('.opblock')].map(op => [
  op.querySelector('.opblock-summary-method').textContent,
  op.querySelector('.opblock-summary-path').dataset.path,
  op.querySelector('.opblock-summary-description').textContent])"""


@pytest.fixture
def browser(playwright: Playwright, chromium: str, tmp_path: Path) -> Iterator[BrowserContext]:
    context = launch(playwright, chromium, tmp_path / "profile", args=OFFLINE,
                     viewport={"width": 1280, "height": 900})
    context.add_init_script(VIOLATIONS_JS)
    yield context
    context.close()


def documented(url: str) -> list[list[str]]:
    schema = httpx.get(f"{url}/openapi.json").json()
    return sorted([method.upper(), path, operation["summary"]]
                  for path, item in schema["paths"].items() for method, operation in item.items())


def watch(page: Page) -> tuple[list[str], list[str]]:
    """Every URL the page asks for, and the console's reports of the policy."""
    requested: list[str] = []
    refused: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
            else None)
    return requested, refused


def try_metrics_with_the_key(page: Page) -> str:
    """Pastes the admin key into "Authorize", then runs GET /metrics (it needs the key); its live status."""
    page.click("button.authorize")
    container = page.locator(".modal-ux .auth-container").first
    container.locator("input").first.fill(ADMIN_KEY)
    container.locator("button.authorize").click()
    page.locator(".modal-ux button.btn-done").first.click()
    operation = page.locator(".opblock:has(.opblock-summary-path[data-path='/metrics'])")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    return status.inner_text().strip()


def test_docs_shows_every_operation_from_the_service_alone(system: System, browser: BrowserContext) -> None:
    for service in SERVICES:
        url = system[service].url
        left: list[str] = []

        def local_only(route: Route, request: Request, url: str = url, left: list[str] = left) -> None:
            if request.url.startswith(f"{url}/"):
                route.continue_()
            else:
                left.append(request.url)
                route.abort()

        page = browser.new_page()
        page.route("**/*", local_only)
        requested, refused = watch(page)
        response = page.goto(f"{url}/docs")
        assert response is not None and response.status == 200
        page.wait_for_selector(".opblock")
        assert sorted(page.evaluate(OPERATIONS_JS)) == documented(url), service
        if service == "points":
            assert try_metrics_with_the_key(page) == "200"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=True)

        assert page.evaluate("() => window.__violations || []") == [], service
        assert refused == [], service
        assert left == [], service
        assert all(request.startswith(f"{url}/") for request in requested), requested
        assert f"{url}/docs/assets/swagger-ui-bundle.js" in requested and f"{url}/openapi.json" in requested
        page.close()


# ReDoc 3 meets the policy twice by design (shared.http.apidocs): its probe of Function() for a search
# worker and the Redocly logo from Redocly's CDN; both refused, the page works without them.
REDOC_REFUSED = [{"directive": "img-src", "blocked": "https://cdn.redoc.ly/redoc/logo-mini-full.svg"},
                 {"directive": "script-src", "blocked": "eval"}]


def test_redoc_shows_the_operations_and_fetches_nothing_elsewhere(system: System, browser: BrowserContext) -> None:
    url = system["points"].url
    page = browser.new_page()  # no page.route here: Playwright's interception stalls ReDoc 3 in Chromium
    requested, _ = watch(page)
    failed: dict[str, str] = {}
    page.on("requestfailed", lambda request: failed.update({request.url: request.failure or ""}))
    response = page.goto(f"{url}/redoc")
    assert response is not None and response.status == 200
    page.wait_for_selector("text=Download OpenAPI description")
    page.wait_for_load_state("networkidle")

    text = page.inner_text("body")
    schema = httpx.get(f"{url}/openapi.json").json()
    assert schema["info"]["title"] in text
    assert all(tag["name"] in text for tag in schema["tags"])
    assert "/v1/purchases" in text
    violations = page.evaluate("() => window.__violations || []")
    assert sorted((v["directive"], v["blocked"]) for v in violations) == sorted(
        (v["directive"], v["blocked"]) for v in REDOC_REFUSED), violations
    elsewhere = [request for request in requested if not request.startswith((f"{url}/", f"blob:{url}/"))]
    assert all(failed.get(request) == "csp" for request in elsewhere), (elsewhere, failed)  # none left the page
    page.close()
