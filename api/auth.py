"""How an API request is authenticated: `Authorization: Bearer cfr_...`, and nothing else.

`api_view("POST")` wraps every authenticated endpoint. In order, it:

1. reads the bearer key: a missing or malformed key, or a bad checksum, gets the 401 at once,
   without a single query;
2. refuses a key whose prefix (its identifier, `cfr_` and six characters) has failed
   authentication too often this minute (429; with the counters in the database, the count
   is read in the key's lookup, one statement);
3. gives an unknown, expired or revoked key the same 401 with the same body after one lookup
   by hash, and a key used from outside its allowed networks a 403. Each counts as a failure
   of the presented key's prefix and of the client's address; an address past the limit
   gets 429 instead for its failing keys. An address's failures never refuse a valid key:
   many CI runners may share one egress address;
4. counts the request against the key's rate limit (429 with Retry-After past it): on
   PostgreSQL with the counters in the database, in the key's lookup itself (one statement
   for the lookup, its prefix's failures and its request);
5. calls the view with the key; any `ApiError` becomes its JSON answer, a database or counter
   store failure a 503. Every answer is JSON `{"error": "..."}` with `Cache-Control: no-store`.

Session cookies are never looked at (`request.user` is not read here), which is why these views,
and only these, are exempt from CSRF checks: a cross-site request can carry a cookie, never the
key.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from access import keys
from access.models import AccessKey
from api import ratelimit
from identities.models import CREDENTIAL_PREFIX, WorkloadCredential
from lib.http import client_ip_address

logger = logging.getLogger("coffer.api")

UNAUTHORIZED = (
    "A valid access key is required (Authorization: Bearer cfr_...); this one is missing, "
    "malformed, unknown, expired or revoked."
)
UNAVAILABLE = "Coffer cannot answer right now; nothing was resolved. Try again shortly."
RETRY_AFTER_UNAVAILABLE = 30


# What authenticates an API request: an access key, or a workload identity's short-lived
# credential (identities/), which answers the same questions (context, address, use, audit).
Credential = AccessKey | WorkloadCredential


class ApiHttpRequest(HttpRequest):
    """A request to an `api_view` endpoint: `authenticate` sets `client_address`, the client's
    address as `client_address(request)` found it (None when it is not an IP address)."""

    client_address: str | None


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> HttpResponse:
        return error_response(self.status, self.message, self.headers)


def unauthorized() -> ApiError:
    """The one refusal for every key that does not work, whatever the reason."""
    return ApiError(401, UNAUTHORIZED, {"WWW-Authenticate": 'Bearer realm="coffer"'})


def readable_json(payload: dict, status: int = 200) -> HttpResponse:
    """JSON for machines that also reads well in a CI log: indented, one field a line, ending
    with a newline, and (for refusals and reports) the `message` a person reads first."""
    body = json.dumps(payload, indent=2) + "\n"
    return HttpResponse(body, status=status, content_type="application/json")


def error_response(status: int, message: str, headers: dict | None = None) -> HttpResponse:
    """A refusal: `{"message": ..., "error": ...}`, the same sentence twice: `message` for
    people, `error` for the clients that read it (the coffer client does)."""
    response = readable_json({"message": message, "error": message}, status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


def client_address(request: HttpRequest) -> str | None:
    """The client's address, found exactly as for login throttling (COFFER_BEHIND_PROXY:
    the address the proxy appended), normalised; None when it is not an IP address."""
    try:
        return str(ipaddress.ip_address((client_ip_address(request) or "").strip()))
    except ValueError:
        return None


def bearer_key(request: HttpRequest) -> str | None:
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    return key.strip() if scheme.lower() == "bearer" else None


def too_many(message: str, decision: ratelimit.Decision) -> ApiError:
    seconds = decision.retry_after
    return ApiError(
        429, f"{message}; retry after {seconds} seconds.", {"Retry-After": str(seconds)}
    )


def failure_buckets(subject: str, address: str | None) -> tuple[str, str]:
    """The two counters a failed authentication hits: one for what was presented (an access
    key's prefix, a workload identity), one for the client's address. Past the limit, the first
    refuses every try of that subject; the second only turns the address's failures into 429s,
    so a runner sharing its egress address with a failing one keeps working."""
    return f"authfail-{subject}", f"authfail:{address or 'unknown'}"


def credential_store(presented: str) -> Any:
    """Where a well-formed bearer credential is looked up (its prefix says which kind), or None
    when its format or checksum says it is none (no query at all)."""
    if keys.is_well_formed(presented):
        return AccessKey.objects
    if keys.is_well_formed(presented, CREDENTIAL_PREFIX):
        return WorkloadCredential.objects
    return None


def authenticate(request: ApiHttpRequest) -> Credential:
    """The request's usable access key or credential, or ApiError (401, 403 or 429)."""
    presented = bearer_key(request) or ""
    if (store := credential_store(presented)) is None:
        raise unauthorized()
    address = client_address(request)
    # Failures count twice: against the key's prefix (someone trying keys that look like one
    # key) and against the client's address. A prefix past the limit is refused before its
    # lookup; an address past it only turns its failures into 429s, so the valid keys of a
    # CI runner that shares its egress address with a failing one keep working.
    by_prefix, by_address = failure_buckets(f"key:{keys.identifier(presented)}", address)
    failure_limit = settings.COFFER_API_AUTH_FAILURE_LIMIT
    hits: int | None = None
    counted = None
    if pending := ratelimit.pending_count(by_prefix, failure_limit):
        # The counters are in the database: the prefix's failures come with the key's
        # lookup, in one round trip, and refuse it just the same; on PostgreSQL the key's own
        # request is counted in that round trip too.
        if store is AccessKey.objects:
            limit = settings.COFFER_API_RATE_LIMIT
            counted = ratelimit.key_hit(keys.hash_key(presented), limit)
        if counted is not None:
            key, (count, hits) = store.authenticate_reading(
                presented,
                f"ARRAY[{pending.sql}, {counted.scalar}]",
                pending.params,
                prefix=counted.prefix,
                prefix_params=counted.params,
            )
        else:
            key, count = store.authenticate_reading(presented, pending.sql, pending.params)
        refusal = pending.refusal(count)
    else:
        refusal = ratelimit.exceeded(by_prefix, failure_limit)
        key = None if refusal else store.authenticate(presented)
    if refusal:
        raise too_many("Too many failed authentications with this access key", refusal)
    if key is None or not key.allows_address(address):
        ratelimit.hit(by_prefix, failure_limit)
        decision = ratelimit.hit(by_address, failure_limit)
        if not decision.allowed:
            raise too_many("Too many failed authentications from this address", decision)
        if key is None:
            raise unauthorized()
        raise ApiError(
            403, f"This access key may not be used from your address ({address or 'unknown'})."
        )
    if counted is not None and hits is not None:
        decision = counted.decision(hits)
    else:
        decision = ratelimit.hit(key.rate_limit_bucket, settings.COFFER_API_RATE_LIMIT)
    if not decision.allowed:
        raise too_many("Too many requests with this access key", decision)
    request.client_address = address
    return key


def api_view(*methods: str) -> Callable:
    """An authenticated API endpoint: `view(request, key)`; see the module docstring."""

    def decorator(view: Callable[[ApiHttpRequest, Credential], HttpResponse]) -> Callable:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: ApiHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return no_store(answer(request, methods, view, *args, **kwargs))

        return wrapper

    return decorator


def public_view(*methods: str) -> Callable:
    """An endpoint without authentication (health, schema): the same JSON 405 and no-store."""

    def decorator(view: Callable[[HttpRequest], HttpResponse]) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                allowed = ", ".join(methods)
                return no_store(error_response(405, f"Use {allowed}.", {"Allow": allowed}))
            return no_store(view(request, *args, **kwargs))

        return wrapper

    return decorator


def answer(
    request: ApiHttpRequest,
    methods: tuple[str, ...],
    view: Callable[[ApiHttpRequest, Credential], HttpResponse],
    *args: Any,
    **kwargs: Any,
) -> HttpResponse:
    if request.method not in methods:
        allowed = ", ".join(methods)
        return error_response(405, f"Use {allowed}.", {"Allow": allowed})
    return guarded(request, lambda: view(request, authenticate(request), *args, **kwargs))


def guarded(request: HttpRequest, call: Callable[[], Any]) -> Any:
    """`call()`, with an `ApiError` turned into its JSON answer and a database or counter store
    failure into a 503 (logged without SQL). api/feed.py calls it again after a long-poll's
    wait, with the key already authenticated."""
    try:
        return call()
    except ApiError as error:
        return error.response()
    except (DatabaseError, ratelimit.RateLimitUnavailable) as error:
        # The driver's first line only: no SQL, so no parameters reach the log.
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        logger.error(
            "API %s %s answered 503: %s: %s",
            request.method,
            request.path,
            type(error).__name__,
            reason,
        )
        return error_response(503, UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
