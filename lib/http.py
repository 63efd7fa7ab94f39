"""The typed request for Coffer's views, as django-htmx's example app types `request.htmx`.

Django's HttpRequest knows nothing of what middleware adds to it. The signed-in request, with
the user and the membership that the workspace access helper sets, is
workspaces.http.AuthenticatedHttpRequest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """Any request once django_htmx.middleware.HtmxMiddleware has run."""

    htmx: HtmxDetails
