"""Project-wide middleware.

`NoStoreWhenSignedInMiddleware`: every response to a signed-in user (pages, htmx fragments,
redirects, error pages, the admin) says `Cache-Control: no-store`, so no browser or proxy cache
keeps a copy of a workspace's keys, members or audit trail after sign-out. Anonymous responses
(the sign-in page) and static files are left alone.

`DatabaseUnavailableMiddleware`: when the database cannot be reached (server down, network gone,
connections exhausted), a request gets a calm 503 page that says to try again shortly, never a
traceback or a generic 500. The page is rendered without the request context, because the
context processors (user, workspaces) would query the very database that is down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers

logger = logging.getLogger("coffer.availability")

RETRY_AFTER_SECONDS = 30


def database_unavailable_response() -> HttpResponse:
    response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """Turn a database connection failure during a view into a 503 "try again" page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        # The driver's first line only ("connection refused", "too many clients"): no traceback,
        # no SQL, so no query parameters reach the log.
        reason = (str(exception).strip().splitlines() or [""])[0][:200]
        logger.error(
            "Database unavailable during %s %s: %s: %s. Answered 503.",
            request.method,
            request.path,
            type(exception).__name__,
            reason,
        )
        return database_unavailable_response()


class NoStoreWhenSignedInMiddleware:
    """`Cache-Control: no-store` (Django's never-cache headers) on every signed-in response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "no-store" not in response.get("Cache-Control", "") and signed_in(request):
            add_never_cache_headers(response)
        return response


def signed_in(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    try:
        return bool(user and user.is_authenticated)
    except DatabaseError:  # the session could not be read: the 503 page already says no-store
        return False
