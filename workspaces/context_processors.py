from __future__ import annotations

from django.http import HttpRequest

from workspaces.models import Workspace


def navigation(request: HttpRequest) -> dict:
    """The workspaces the signed-in user may switch to, and their role in the current one."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "user_workspaces": Workspace.objects.for_user(user).only("name", "slug"),
        "membership": membership,
        "workspace": membership.workspace if membership else None,
    }
