"""Errors as RFC 9457 problem+json, the only error format any service answers with.

Use cases raise ``shared.errors.LoyaltyError`` subclasses; one set of handlers renders them. Infrastructure
failures (the database away) become 503 so that a client retries, never a 500 with a stack trace.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db.failures import DATABASE_ERRORS, Failure, classify, describe
from shared.errors import LoyaltyError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """The problem+json body every error carries."""

    type: str = Field(examples=["/problems/member-not-found"])
    title: str
    status: int
    detail: str
    errors: list[ValidationIssue] | None = None


def problem_response(
    status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


# Where the OpenAPI of every service keeps the Problem schema (shared.http.apidocs puts it there).
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"


def problem_example(err: type[LoyaltyError]) -> dict[str, Any]:
    body: dict[str, Any] = {"type": f"/problems/{err.slug}", "title": err.title, "status": err.status,
                            "detail": err.example}
    if err.slug == "validation-error":
        body["errors"] = [{"loc": ["body", "member_id"], "msg": "Field required"}]
    return body


def problem_responses(*errors: type[LoyaltyError]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for an endpoint, so the errors it can return show in the OpenAPI: one response per
    status, its problem+json schema and an example of each slug it can carry."""
    by_status: dict[int, dict[str, type[LoyaltyError]]] = {}
    for err in errors:
        by_status.setdefault(err.status, {})[err.slug] = err
    return {
        status: {
            "description": ", ".join(f"`{slug}`" for slug in sorted(slugs)),
            "content": {PROBLEM_JSON: {
                "schema": {"$ref": PROBLEM_SCHEMA_REF},
                "examples": {slug: {"summary": err.title, "value": problem_example(err)}
                             for slug, err in sorted(slugs.items())},
            }},
        }
        for status, slugs in by_status.items()
    }


def merge_responses(into: dict[Any, dict[str, Any]], more: dict[int | str, dict[str, Any]]) -> None:
    """Adds ``more`` (from ``problem_responses``) to an operation's OpenAPI responses, joining the
    examples of a status both name."""
    for status, response in more.items():
        existing = into.get(str(status))
        if existing is None:
            into[str(status)] = response
            continue
        examples = existing.setdefault("content", {}).setdefault(PROBLEM_JSON, {}).setdefault("examples", {})
        added = response["content"][PROBLEM_JSON]["examples"]
        examples.update(added)
        existing["content"][PROBLEM_JSON].setdefault("schema", {"$ref": PROBLEM_SCHEMA_REF})
        existing["description"] = ", ".join(f"`{slug}`" for slug in sorted(examples))


async def _loyalty_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LoyaltyError)
    headers = {"WWW-Authenticate": "Bearer", **exc.headers} if exc.status == 401 else exc.headers
    return problem_response(exc.status, exc.slug, exc.title, exc.detail, headers=headers or None, **exc.extra)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    issues = []
    for err in exc.errors():
        loc = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
        if err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            loc.append(str(err.get("ctx", {}).get("discriminator", "")).strip("'"))  # name the tag field
        issues.append({"loc": loc, "msg": err.get("msg", "")})
    first = issues[0] if issues else {"loc": [], "msg": "invalid"}
    detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return problem_response(422, "validation-error", "Request is not valid", detail, errors=issues)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # a body FastAPI could not even decode: as invalid as malformed JSON
        return problem_response(422, "validation-error", "Request is not valid", f"body: {exc.detail}",
                                errors=[{"loc": ["body"], "msg": str(exc.detail)}])
    slugs = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large", 401: "unauthorized"}
    slug = slugs.get(exc.status_code, "http-error")
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, slug, str(exc.detail), str(exc.detail), headers=headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """What the database said, as the client should read it (``shared.db.failures``). Logged without the
    statement's parameters or the server's message, which may quote personal data."""
    failure = classify(exc)
    where = f"{request.method} {request.url.path}"
    if failure is Failure.UNAVAILABLE:
        log.warning("database unavailable during %s: %s", where, describe(exc))
        return problem_response(503, "service-unavailable", "Service unavailable",
                                "The database is not answering; retry later.", headers={"Retry-After": "1"})
    if failure is Failure.CONTENDED:
        log.info("concurrent write during %s: %s", where, describe(exc))
        return problem_response(503, "service-unavailable", "Service unavailable",
                                "A concurrent change got in the way; retry.", headers={"Retry-After": "1"})
    if failure is Failure.REFUSED:
        return problem_response(422, "validation-error", "Request is not valid",
                                "A value in the request cannot be stored (a number out of range, or text the "
                                "database refuses).")
    log.error("database error during %s: %s\n%s", where, describe(exc),
              "".join(traceback.format_tb(exc.__traceback__)))
    return problem_response(500, "internal-error", "Internal error", "An unexpected error occurred.")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error during %s %s", request.method, request.url.path)
    return problem_response(500, "internal-error", "Internal error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LoyaltyError, _loyalty_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Registered by class (not only under Exception, whose handler Starlette runs after logging a stack trace)
    # so that an outage or a refused value is answered quietly.
    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, _database_error)
    app.add_exception_handler(Exception, _unexpected)
