"""Typed requests for Coffer's views, as django-htmx's example app types `request.htmx`.

Django's HttpRequest knows nothing of what middleware and our access helper add to it. A view
behind `@login_required` annotates its request as AuthenticatedHttpRequest: `request.user` is a
signed-in User, `request.htmx` comes from django-htmx's middleware, and `request.membership` is
set by workspaces.access.get_workspace_for (read it only after calling that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django_htmx.middleware import HtmxDetails

    from workspaces.models import Membership


class HtmxHttpRequest(HttpRequest):
    """Any request once django_htmx.middleware.HtmxMiddleware has run."""

    htmx: HtmxDetails


class AuthenticatedHttpRequest(HtmxHttpRequest):
    """A request from a signed-in user (a view behind `@login_required`)."""

    user: User
    membership: Membership
