"""What every service's OpenAPI says beyond what FastAPI derives from the routes: the key each operation
needs (security requirement, ``x-required-scopes`` and a "Scope:" line read from its ``shared.http.auth``
dependency, so the docs cannot drift from what is enforced) and the errors the runtime answers for any route
(401/403 from the key check, 413 from the body limit), with the problem+json schema they share.

It also serves the pages that show the document: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc). Both libraries
are vendored at build time (``deploy/local/vendor_assets.py``, run by ``make install`` and the image build:
pinned npm tarballs checked by sha256) into ``static/vendor/`` and served at ``/docs/assets/``; Swagger UI is
started by ``static/docs.js``, ReDoc by its ``<redoc>`` element. The pages load nothing from anywhere else and
run no inline script, and their Content-Security-Policy says so to the browser: operators paste admin keys
into "Authorize". Without the vendored files a page answers 503, saying what to run.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, get_args

from fastapi import APIRouter, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from shared.errors import Forbidden, PayloadTooLarge, ServiceUnavailable, Unauthorized
from shared.http.assets import asset_response
from shared.http.auth import Scope
from shared.http.problems import Problem, merge_responses, problem_responses

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API key as `Authorization: Bearer <key>` (`loyalty keys create`). A key "
                              "bound to stores (`--store`, one lent to a till or a shop) writes only for its "
                              "stores, reads no e-mail or phone and no voucher code but those of the "
                              "redemptions it asked for; each operation says what it may do there."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "The same key as `X-API-Key: <key>`."},
}
PUBLIC = "Scope: none (no API key needed)."

# The tags an operation may carry (exactly one each), in the order /docs lists them; a service's
# ServiceSpec.openapi_tags may describe them in its own words.
TAGS = {
    "members": "Enrolment, profiles and balances",
    "checkout": "Paying with points at a till or in a shop: quote the basket, hold points, post the purchase "
                "with `points_paid`, capture the hold (or void it)",
    "purchases": "Purchases and refunds: points earned and taken back",
    "ledger": "Every change of a balance; adjustments and transfers",
    "rules": "Program settings and earning rules",
    "rewards": "The catalog: cost, stock, validity, tier gates, per-member limits",
    "redemptions": "Spending points on a reward: requested, then confirmed or rejected",
    "vouchers": "Codes of confirmed redemptions, checked and used at a till",
    "tiers": "The tier program, members' tiers, progress and history",
    "segments": "Customer segments: RFM scores, value classes, lifecycle, CLV",
    "analytics": "Program-wide figures: members by tier and segment, Pareto share, points liability",
    "operations": "Health, readiness, metrics, the event contract (AsyncAPI) and jobs run on demand",
}


def required_scopes(dependant: Dependant, openapi_extra: dict[str, Any] | None) -> tuple[list[str], bool]:
    """The scopes asked for by the route's ``shared.http.auth.require(...)`` dependencies, however deep, and
    whether any one of them is enough (one ``require`` of several scopes) rather than all; a route that checks
    its key itself says which in ``openapi_extra={"x-required-scopes": [...]}``."""
    declared = (openapi_extra or {}).get("x-required-scopes")
    if declared:
        return list(declared), False
    scopes: list[str] = []
    any_of = False
    pending: list[Dependant] = [dependant]
    while pending:
        dependant = pending.pop()
        call = dependant.call
        if call is not None and getattr(call, "__qualname__", "").startswith("require.<locals>."):
            asked = inspect.getclosurevars(call).nonlocals.get("scopes", ())
            any_of = any_of or len(asked) > 1
            scopes.extend(scope.value for scope in asked if isinstance(scope, Scope) and scope.value not in scopes)
        pending.extend(dependant.dependencies)
    return scopes, any_of


def scope_line(scopes: list[str], any_of: bool = False) -> str:
    if not scopes:
        return PUBLIC
    named = (" or " if any_of else " and ").join(f"`{scope}`" for scope in scopes)
    return f"Scope: {named}" + ("." if scopes == [Scope.ADMIN.value] else " (an `admin` key may do everything).")


def security(scopes: list[str], any_of: bool = False) -> list[dict[str, list[str]]]:
    """The operation's security requirements: one object per scheme with every scope (all needed), or, when
    one scope of several is enough, one object per scheme and scope (OpenAPI reads the list as "any of")."""
    if any_of:
        return [{name: [scope]} for scope in scopes for name in SECURITY_SCHEMES]
    return [{name: scopes} for name in SECURITY_SCHEMES] if scopes else []


def problem_components() -> dict[str, Any]:
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = schema.pop("$defs", {})
    components["Problem"] = schema
    return components


def _tags(schema: dict[str, Any]) -> list[dict[str, str]]:
    """Every tag the operations use, described, in the order of ``TAGS``."""
    described = {tag["name"]: tag for tag in schema.get("tags", [])}
    used = {tag for item in schema.get("paths", {}).values() for op in item.values() for tag in op.get("tags", [])}
    order = [*TAGS, *sorted(used - set(TAGS))]
    return [described.get(name) or {"name": name, "description": TAGS.get(name, "")} for name in order if name in used]


def _models(annotation: Any, seen: set[type[BaseModel]]) -> None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return
        seen.add(annotation)
        for field in annotation.model_fields.values():
            _models(field.annotation, seen)
    for arg in get_args(annotation):
        _models(arg, seen)


def restore_examples(schema: dict[str, Any], routes: list[Any]) -> None:
    """Puts the models' examples back as written: FastAPI encodes the document without None values, which
    would strip ``"phone": null`` from an example and leave it invalid against its own schema."""
    seen: set[type[BaseModel]] = set()
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        _models(route.response_model, seen)
        if route.body_field is not None:
            _models(route.body_field.field_info.annotation, seen)
        for response in route.responses.values():
            _models(response.get("model"), seen)
    components = schema.get("components", {}).get("schemas", {})
    for model in seen:
        extra = model.model_config.get("json_schema_extra")
        if not isinstance(extra, dict) or "examples" not in extra:
            continue
        for name in (model.__name__, f"{model.__name__}-Input", f"{model.__name__}-Output"):
            if name in components:
                components[name]["examples"] = extra["examples"]


def complete_openapi(schema: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Adds to FastAPI's document what the routes' dependencies and the runtime imply (see the module)."""
    restore_examples(schema, routes)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(problem_components())
    components["securitySchemes"] = SECURITY_SCHEMES
    for route in iter_route_contexts(routes):  # included routers too, with their prefixes and dependencies
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        scopes, any_of = required_scopes(route.dependant, route.openapi_extra)
        for method in sorted(route.methods or ()):
            operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            line = scope_line(scopes, any_of)
            operation["description"] = f"{operation.get('description', '').rstrip()}\n\n{line}".lstrip()
            operation["x-required-scopes"] = scopes
            if any_of:
                operation["x-any-of-scopes"] = True
            for parameter in operation.get("parameters", []):
                # Swagger UI fills "Try it out" from a parameter's own example, not from its schema's.
                examples = parameter.get("schema", {}).get("examples")
                if examples and "example" not in parameter and "examples" not in parameter:
                    parameter["example"] = examples[0]
            operation["security"] = security(scopes, any_of)
            responses = operation.setdefault("responses", {})
            if scopes:
                merge_responses(responses, problem_responses(Unauthorized, Forbidden))
            if "requestBody" in operation:
                merge_responses(responses, problem_responses(PayloadTooLarge))
    schema["tags"] = _tags(schema)
    return schema


# --- the pages ----------------------------------------------------------------------------------------

STATIC = Path(__file__).parent / "static"
VENDOR = STATIC / "vendor"  # gitignored: filled by deploy/local/vendor_assets.py
ASSETS = {  # what /docs/assets/ serves, by name; nothing else is reachable there
    "docs.js": STATIC / "docs.js",
    "swagger-ui-bundle.js": VENDOR / "swagger-ui-bundle.js",
    "swagger-ui.css": VENDOR / "swagger-ui.css",
    "redoc.standalone.js": VENDOR / "redoc.standalone.js",
}
# What the pages may load, and from where: only this service. Each source is there for what the comment says.
BASE_POLICY = {
    "default-src": "'none'",
    "script-src": "'self'",  # the vendored bundles (and docs.js): no inline script, no eval
    "style-src": "'self'",  # the vendored stylesheet; styles set from the scripts go through the CSSOM, allowed
    "img-src": "'self' data:",  # the icons swagger-ui.css carries as data: URIs
    "connect-src": "'self'",  # the OpenAPI document and "Try it out", on this service only
    "base-uri": "'none'",  # no <base> could point the pages' relative URLs elsewhere
    "form-action": "'none'",  # Swagger UI's forms are handled by its script, never submitted
    "frame-ancestors": "'none'",  # not in a frame of another site (clickjacking the Authorize dialog)
}
EMPTY_STYLE = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"  # the hash of "" (an empty <style>)
REDOC_POLICY = {
    **BASE_POLICY,
    # styled-components adds empty <style> elements and fills them through the CSSOM: the hash of the empty
    # string lets exactly those in, without 'unsafe-inline'.
    "style-src": f"'self' {EMPTY_STYLE}",
    "font-src": "data:",  # the tree-view icon font ReDoc's styles carry as a data: URI
}
# ReDoc also meets the policy twice, by design, and works on: it probes Function() for a search worker
# (refused: it searches on the page) and shows the Redocly logo from Redocly's CDN (refused: no logo).


def content_security_policy(policy: dict[str, str]) -> str:
    return "; ".join(f"{directive} {sources}" for directive, sources in policy.items())


# The URLs in the pages are relative (docs/assets/x from /docs and /redoc alike), so they hold behind a proxy
# that serves the service under a prefix. The empty icon spares a request for /favicon.ico.
HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
"""


@dataclass(frozen=True)
class DocsPage:
    library: str
    needs: tuple[str, ...]  # names in ASSETS that must be vendored
    policy: dict[str, str]
    body: str  # the page after HEAD, with {title} and {openapi_url}


SWAGGER_UI = DocsPage("Swagger UI", ("swagger-ui-bundle.js", "swagger-ui.css"), BASE_POLICY, """\
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/docs.js"></script>
</body>
</html>
""")
REDOC = DocsPage("ReDoc", ("redoc.standalone.js",), REDOC_POLICY, """\
<title>{title} - ReDoc</title>
</head>
<body>
<redoc spec-url="{openapi_url}" disable-telemetry="true"></redoc>
<script type="module" src="docs/assets/redoc.standalone.js"></script>
</body>
</html>
""")

pages = APIRouter(include_in_schema=False)


def render(request: Request, page: DocsPage) -> HTMLResponse:
    """The page, or a 503 saying what to run where its library is not vendored."""
    missing = [name for name in page.needs if not ASSETS[name].exists()]
    if missing:
        raise ServiceUnavailable(f"{page.library} is not installed here ({', '.join(missing)} missing under "
                                 f"shared/http/static/vendor/): run `make install` (deploy/local/vendor_assets.py).")
    app: FastAPI = request.app
    body = page.body.format(title=escape(app.title), openapi_url=escape((app.openapi_url or "").lstrip("/")))
    return HTMLResponse(HEAD + body, headers={
        "Content-Security-Policy": content_security_policy(page.policy),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    })


@pages.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return render(request, SWAGGER_UI)


@pages.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return render(request, REDOC)


@pages.get("/docs/assets/{name}")
async def docs_asset(name: str) -> FileResponse:
    """The pages' scripts and stylesheet; public, like the pages and the document they show."""
    return asset_response(ASSETS, name, "docs")


def install_api_docs(app: FastAPI) -> None:
    """Replaces ``app.openapi`` with one that completes each document FastAPI builds (it builds one again
    when routes are added), and serves /docs and /redoc (the app must be made without FastAPI's own:
    ``docs_url=None, redoc_url=None``)."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("install_api_docs serves /docs and /redoc: create the app with docs_url=None, redoc_url=None")
    app.include_router(pages)
    completed: list[int] = []

    def openapi() -> dict[str, Any]:
        schema = FastAPI.openapi(app)
        if completed != [id(schema)]:
            complete_openapi(schema, app.routes)
            completed[:] = [id(schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
