"""What every service's OpenAPI says beyond what FastAPI derives from the routes: the key each operation
needs (security requirement, ``x-required-scopes`` and a "Scope:" line read from its ``shared.http.auth``
dependency, so the docs cannot drift from what is enforced) and the errors the runtime answers for any route
(401/403 from the key check, 413 from the body limit), with the problem+json schema they share.
"""

from __future__ import annotations

import inspect
from typing import Any, get_args

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from shared.errors import Forbidden, PayloadTooLarge, Unauthorized
from shared.http.auth import Scope
from shared.http.problems import Problem, merge_responses, problem_responses

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API key as `Authorization: Bearer <key>` (`loyalty keys create`)."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "The same key as `X-API-Key: <key>`."},
}
PUBLIC = "Scope: none (no API key needed)."

# The tags an operation may carry (exactly one each), in the order /docs lists them; a service's
# ServiceSpec.openapi_tags may describe them in its own words.
TAGS = {
    "members": "Enrolment, profiles and balances",
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


def required_scopes(dependant: Dependant, openapi_extra: dict[str, Any] | None) -> list[str]:
    """The scopes asked for by the route's ``shared.http.auth.require(scope)`` dependencies, however deep; a route
    that checks its key itself says which in ``openapi_extra={"x-required-scopes": [...]}``."""
    declared = (openapi_extra or {}).get("x-required-scopes")
    if declared:
        return list(declared)
    scopes: list[str] = []
    pending: list[Dependant] = [dependant]
    while pending:
        dependant = pending.pop()
        call = dependant.call
        if call is not None and getattr(call, "__qualname__", "").startswith("require.<locals>."):
            scope = inspect.getclosurevars(call).nonlocals.get("scope")
            if isinstance(scope, Scope) and scope.value not in scopes:
                scopes.append(scope.value)
        pending.extend(dependant.dependencies)
    return scopes


def scope_line(scopes: list[str]) -> str:
    if not scopes:
        return PUBLIC
    named = " and ".join(f"`{scope}`" for scope in scopes)
    return f"Scope: {named}" + ("." if scopes == [Scope.ADMIN.value] else " (an `admin` key may do everything).")


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
        scopes = required_scopes(route.dependant, route.openapi_extra)
        for method in sorted(route.methods or ()):
            operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            operation["description"] = f"{operation.get('description', '').rstrip()}\n\n{scope_line(scopes)}".lstrip()
            operation["x-required-scopes"] = scopes
            for parameter in operation.get("parameters", []):
                # Swagger UI fills "Try it out" from a parameter's own example, not from its schema's.
                examples = parameter.get("schema", {}).get("examples")
                if examples and "example" not in parameter and "examples" not in parameter:
                    parameter["example"] = examples[0]
            operation["security"] = [{name: scopes} for name in SECURITY_SCHEMES] if scopes else []
            responses = operation.setdefault("responses", {})
            if scopes:
                merge_responses(responses, problem_responses(Unauthorized, Forbidden))
            if "requestBody" in operation:
                merge_responses(responses, problem_responses(PayloadTooLarge))
    schema["tags"] = _tags(schema)
    return schema


def install_api_docs(app: FastAPI) -> None:
    """Replaces ``app.openapi`` with one that completes each document FastAPI builds (it builds one again
    when routes are added)."""
    completed: list[int] = []

    def openapi() -> dict[str, Any]:
        schema = FastAPI.openapi(app)
        if completed != [id(schema)]:
            complete_openapi(schema, app.routes)
            completed[:] = [id(schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
