from __future__ import annotations

from django.http import HttpRequest

from workspaces.middleware import LAST_WORKSPACE_COOKIE
from workspaces.models import Membership, Workspace


def navigation(request: HttpRequest) -> dict:
    """The workspaces the signed-in user may switch to, and their role in the current one. A
    page outside any workspace (Account, two-factor) shows the last one opened, so the
    workspace's navigation stays."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    last = request.COOKIES.get(LAST_WORKSPACE_COOKIE)
    if membership is None and last:  # only a workspace the user belongs to, whatever it says
        membership = (
            Membership.objects.select_related("workspace")
            .filter(workspace__slug=last, user_id=user.pk)
            .first()
        )
    return {
        "user_workspaces": Workspace.objects.for_user(user).only("name", "slug"),
        "membership": membership,
        "workspace": membership.workspace if membership else None,
    }
