"""The Workload identities tab of the Tokens page: the table, Add workload identity, Delete.

Everyone in the workspace sees the table; only owners add and delete, and adding asks for the
password again unless it was given recently (sudo mode, workspaces/reauth.py). Nothing secret
is ever shown here: credentials exist only in the exchange's answer (api/oidc.py).
"""

from __future__ import annotations

import contextlib

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from identities.forms import DeleteIdentityForm, WorkloadIdentityForm, preset_initial
from identities.models import PRESETS, WorkloadIdentity
from lib.htmx import modal_success, render_modal, wants_fragment
from lib.views import signed_in_view
from workspaces.access import get_object_in, get_workspace_for
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import Role, Workspace
from workspaces.reauth import recent_auth_required

CHANGED = "identitiesChanged"


def get_identity_for(workspace: Workspace, pk: int) -> WorkloadIdentity:
    """A workload identity of `workspace` (404 otherwise)."""
    return get_object_in(
        workspace, WorkloadIdentity.objects.select_related("environment", "product", "app"), pk
    )


def list_url(workspace: Workspace) -> str:
    return reverse("identities:list", args=[workspace.slug])


@signed_in_view("GET", fragment=True)
def identity_list(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug)
    context = {
        "nav": "access",
        "tab": "identities",
        "identities": list(WorkloadIdentity.objects.for_workspace(workspace).for_table()),
        "can_manage": request.membership.can(Role.OWNER),
        "owners": [] if request.membership.can(Role.OWNER) else workspace.owner_names(),
        "table_url": list_url(workspace),
        "exchange_url": request.build_absolute_uri(reverse("api:oidc_exchange")),
    }
    page = "identities/identities.html"
    return render(request, f"{page}#table" if wants_fragment(request) else page, context)


@signed_in_view("GET", "POST", fragment=True)
@recent_auth_required
def identity_create(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    initial = preset_initial(request.GET.get("preset", ""))
    form = WorkloadIdentityForm(
        request.POST if request.method == "POST" else None, workspace=workspace, initial=initial
    )
    if request.method == "POST" and form.is_valid() and (identity := form.save(by=request.user)):
        return modal_success(
            request,
            message=f"Workload identity {identity.name} added. Jobs sign in as "
            f"{identity.reference}.",
            event=CHANGED,
            redirect_to=list_url(workspace),
        )
    return render_modal(
        request,
        "identities/identity_form.html",
        {"nav": "access", "form": form, "presets": PRESETS, "cancel_url": list_url(workspace)},
    )


@signed_in_view("GET", "POST", fragment=True)
def identity_delete(request: AuthenticatedHttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    identity = get_identity_for(workspace, pk)
    form = DeleteIdentityForm(
        request.POST if request.method == "POST" else None, name=identity.name
    )
    if request.method == "POST" and form.is_valid():
        with contextlib.suppress(ValidationError):  # deleted meanwhile: the outcome holds
            identity.delete_identity(by=request.user)
        return modal_success(
            request,
            message=f"Workload identity {identity.name} deleted; its credentials no longer work.",
            event=CHANGED,
            redirect_to=list_url(workspace),
        )
    return render_modal(
        request,
        "identities/confirm_delete.html",
        {"nav": "access", "identity": identity, "form": form, "cancel_url": list_url(workspace)},
    )
