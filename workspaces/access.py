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
    request: AuthenticatedHttpRequest,
    slug: str,
    role: Role = Role.VIEWER,
    *,
    allow_without_two_factor: bool = False,
) -> Workspace:
    """Return the workspace `slug` if the user belongs to it with at least `role`.

    A workspace that requires two-factor authentication sends a member without it to set it up
    (TwoFactorRequired); one that requires single sign-on sends a member whose session did not
    sign in through it to do so (SSORequired). Only leaving the workspace is allowed without.

    The membership is attached as `request.membership` so templates can ask what the user may do.
    """
    membership = (
        Membership.objects.select_related("workspace")
        .filter(workspace__slug=slug, user_id=request.user.pk)
        .first()
    )
    if membership is None:
        raise Http404("No such workspace.")
    if membership.workspace.require_two_factor and not allow_without_two_factor:
        require_two_factor(request, membership.workspace.name)
    if membership.workspace.require_sso and not allow_without_two_factor:
        require_sso(request, membership)
    if not membership.can(role):
        raise PermissionDenied(f"This needs the {Role(role).label} role or higher.")
    request.membership = membership
    return membership.workspace


class TwoFactorRequired(Exception):
    """The workspace requires two-factor authentication and the user has not set it up, or
    (`code_needed`) has it but this session never gave a code: the middleware
    (accounts/middleware.py) sends them to the set-up page, or the code page."""

    def __init__(self, workspace_name: str = "", *, code_needed: bool = False) -> None:
        super().__init__(workspace_name)
        self.workspace_name = workspace_name
        self.code_needed = code_needed


def require_two_factor(request: AuthenticatedHttpRequest, workspace_name: str) -> None:
    """Two-factor set up, and used in this session: a sign-in that skipped the code step (none
    remains possible; this keeps the rule if one is ever added) does not count."""
    from allauth.mfa.utils import is_mfa_enabled

    from workspaces.reauth import saw_second_factor

    if not is_mfa_enabled(request.user):
        raise TwoFactorRequired(workspace_name)
    if not saw_second_factor(request, request.user):
        raise TwoFactorRequired(workspace_name, code_needed=True)


class SSORequired(Exception):
    """The workspace requires single sign-on and this session signed in another way: the
    middleware (accounts/middleware.py) shows the page that asks to sign in with it."""

    def __init__(self, workspace_name: str = "") -> None:
        super().__init__(workspace_name)
        self.workspace_name = workspace_name


def require_sso(request: AuthenticatedHttpRequest, membership: Membership) -> None:
    """A session signed in through single sign-on; or break-glass: an owner whose session
    proved a password and a two-factor code (so a broken identity provider cannot lock the
    workspace out, and a stolen password alone does not open it)."""
    from allauth.mfa.utils import is_mfa_enabled

    from workspaces.reauth import saw_second_factor, signed_in_with_sso

    if signed_in_with_sso(request, request.user):
        return
    if (
        membership.role == Role.OWNER
        and is_mfa_enabled(request.user)
        and saw_second_factor(request, request.user)
    ):
        return
    raise SSORequired(membership.workspace.name)


def get_object_in[M: Model](
    workspace: Workspace, model: type[M] | QuerySet[M], pk: int | str | UUID, **filters: Any
) -> M:
    """Fetch one object of `model` (a model, or a queryset of one) that belongs to `workspace`,
    or 404."""
    return get_object_or_404(model, workspace=workspace, pk=pk, **filters)
