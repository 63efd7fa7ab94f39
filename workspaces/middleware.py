"""The last workspace opened, remembered in a cookie (its slug, nothing secret), so the pages
outside any workspace (Account, two-factor) keep that workspace's navigation: see
workspaces/context_processors.py. A cookie rather than the session: remembering it writes
nothing to the database."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

LAST_WORKSPACE_COOKIE = "coffer_workspace"
ONE_YEAR = 365 * 24 * 3600


class LastWorkspaceMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        membership = getattr(request, "membership", None)
        if membership is not None and response.status_code < 400:
            slug = membership.workspace.slug
            if request.COOKIES.get(LAST_WORKSPACE_COOKIE) != slug:
                response.set_cookie(
                    LAST_WORKSPACE_COOKIE,
                    slug,
                    max_age=ONE_YEAR,
                    secure=settings.SESSION_COOKIE_SECURE,
                    httponly=True,
                    samesite="Lax",
                )
        return response
