"""The one way views reach workspace objects.

Outsiders get a 404 (they must not learn that a workspace exists); members whose role is too
low for the action get a 403.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import Membership, Role, Workspace


def get_workspace_for(
    request: AuthenticatedHttpRequest, slug: str, role: Role = Role.VIEWER
) -> Workspace:
    """Return the workspace `slug` if the user belongs to it with at least `role`.

    The membership is attached as `request.membership` so templates can ask what the user may do.
    """
    membership = (
        Membership.objects.select_related("workspace")
        .filter(workspace__slug=slug, user_id=request.user.pk)
        .first()
    )
    if membership is None:
        raise Http404("No such workspace.")
    if not membership.can(role):
        raise PermissionDenied(f"This needs the {Role(role).label} role or higher.")
    request.membership = membership
    return membership.workspace


def get_object_in[M: Model](
    workspace: Workspace, model: type[M] | QuerySet[M], pk: int | str | UUID, **filters: Any
) -> M:
    """Fetch one object of `model` (a model, or a queryset of one) that belongs to `workspace`,
    or 404."""
    return get_object_or_404(model, workspace=workspace, pk=pk, **filters)
