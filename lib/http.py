"""The typed request for Coffer's views, as django-htmx's example app types `request.htmx`, and
the client's address as every rate limit reads it.

Django's HttpRequest knows nothing of what middleware adds to it. The signed-in request, with
the user and the membership that the workspace access helper sets, is
workspaces.http.AuthenticatedHttpRequest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """Any request once django_htmx.middleware.HtmxMiddleware has run."""

    htmx: HtmxDetails


def client_ip_address(request: HttpRequest) -> str | None:
    """The client's address for login throttling.

    Behind a trusted reverse proxy (COFFER_BEHIND_PROXY) it is the last X-Forwarded-For entry,
    the one the proxy itself appended; earlier entries are whatever the client claimed.
    """
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return request.META.get("REMOTE_ADDR")
