"""The errors a use case raises: each an RFC 9457 problem (status, slug, title) with an example of its detail
for the OpenAPI. The generic ones live here; each service declares its own in ``services/<name>/errors.py``.
``shared.http.problems`` renders them as problem+json.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LoyaltyError(Exception):
    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"
    example: ClassVar[str] = "The request is not valid."  # a `detail` as clients meet it (the OpenAPI's example)

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}  # of the HTTP answer (Retry-After...)
        self.extra = extra  # more members of the problem+json body


def error_type(name: str, status: int, slug: str, title: str, example: str) -> type[LoyaltyError]:
    """A ``LoyaltyError`` subclass in one line."""
    return type(name, (LoyaltyError,), {"status": status, "slug": slug, "title": title, "example": example})


NotFound = error_type("NotFound", 404, "not-found", "Not found", "No purchase 'store-12:r-000999'.")
IdempotencyConflict = error_type(
    "IdempotencyConflict", 409, "idempotency-conflict", "Id already used with a different body",
    "'store-12:r-000123' was already used with a different body.")
InvalidRequest = error_type("InvalidRequest", 422, "validation-error", "Request is not valid",
                            "body.member_id: Field required")
Conflict = error_type("Conflict", 409, "conflict", "Conflict with the current state",
                      "Redemption 'web:r-4711' is pending; only a confirmed one can be cancelled.")
Unauthorized = error_type("Unauthorized", 401, "unauthorized", "Missing or unknown API key",
                          "Send an API key as 'Authorization: Bearer <key>' or 'X-API-Key'.")
Forbidden = error_type("Forbidden", 403, "forbidden", "API key lacks the needed scope",
                       "This operation needs the 'purchases:write' scope.")
ServiceUnavailable = error_type("ServiceUnavailable", 503, "service-unavailable", "Service unavailable",
                                "The database is not answering; retry later.")
PayloadTooLarge = error_type("PayloadTooLarge", 413, "payload-too-large", "Request body too large",
                             "Request bodies are limited to 4194304 bytes.")

RateLimited = error_type("RateLimited", 429, "rate-limited", "Too many unknown API keys",
                         "Too many requests with unknown API keys from this address; retry in 60 seconds.")

# What any authenticated endpoint can answer besides its own errors.
AUTH_ERRORS: tuple[type[LoyaltyError], ...] = (Unauthorized, Forbidden, RateLimited, InvalidRequest)
# ... and what one that works on the database can answer too: 503 while it does not answer.
COMMON_ERRORS: tuple[type[LoyaltyError], ...] = (*AUTH_ERRORS, ServiceUnavailable)
