"""The signed-in request of Coffer's workspace views.

A view behind `@signed_in_view` annotates its request as AuthenticatedHttpRequest: `request.user`
is a signed-in User, `request.htmx` comes from django-htmx's middleware, and `request.membership`
is set by workspaces.access.get_workspace_for (read it only after calling that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lib.http import HtmxHttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from workspaces.models import Membership


class AuthenticatedHttpRequest(HtmxHttpRequest):
    """A request from a signed-in user (a view behind `@signed_in_view`)."""

    user: User
    membership: Membership
