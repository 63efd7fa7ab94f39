"""The Access keys tab of the Tokens page: the table, Create access key, Revoke and Delete.

Everyone in the workspace sees the table; only owners create, revoke and delete, and creating
asks for the password again unless it was given recently (sudo mode, workspaces/reauth.py).
The whole key is rendered exactly once, in the response to the create POST (in the modal with
htmx, as a page without JavaScript); every other page shows its identifier only. Every view
works as a plain page and as an htmx fragment, and none is ever cached.
"""

from __future__ import annotations

import contextlib

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from access.forms import AccessKeyForm, DeleteAccessKeyForm
from access.models import AccessKey
from lib.htmx import modal_success, render_modal, wants_fragment
from lib.views import signed_in_view
from tokens.usage import shows_usage
from workspaces.access import get_object_in, get_workspace_for
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import Role, Workspace
from workspaces.reauth import recent_auth_required

BREAKS_CLIENTS = (
    "Revoking or deleting an access key immediately stops every job and app using it from "
    "resolving anything."
)
CHANGED = "accessKeysChanged"


def get_access_key_for(workspace: Workspace, pk: int) -> AccessKey:
    """An access key of `workspace` (404 otherwise); fetch the workspace with get_workspace_for."""
    return get_object_in(
        workspace, AccessKey.objects.select_related("environment", "product", "app"), pk
    )


def list_url(workspace: Workspace) -> str:
    return reverse("access:list", args=[workspace.slug])


@signed_in_view("GET", fragment=True)
@shows_usage
def access_key_list(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug)
    context = {
        "nav": "access",
        "tab": "access_keys",
        "access_keys": list(AccessKey.objects.for_workspace(workspace).for_table()),
        "can_manage": request.membership.can(Role.OWNER),
        "owners": [] if request.membership.can(Role.OWNER) else workspace.owner_names(),
        "table_url": list_url(workspace),
    }
    page = "access/access_keys.html"
    return render(request, f"{page}#table" if wants_fragment(request) else page, context)


@signed_in_view("GET", "POST", fragment=True)
@recent_auth_required
def access_key_create(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    form = AccessKeyForm(request.POST if request.method == "POST" else None, workspace=workspace)
    if request.method == "POST" and form.is_valid() and (made := form.save(by=request.user)):
        access_key, key = made
        context = {
            "nav": "access",
            "access_key": access_key,
            "key": key,
            "resolve_url": request.build_absolute_uri(reverse("api:resolve")),
            "done_url": list_url(workspace),
        }
        return render_modal(request, "access/created.html", context)
    return render_modal(
        request,
        "access/access_key_form.html",
        {"nav": "access", "form": form, "cancel_url": list_url(workspace)},
    )


@signed_in_view("GET", "POST", fragment=True)
@shows_usage
def access_key_revoke(request: AuthenticatedHttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    access_key = get_access_key_for(workspace, pk)
    error = "This access key is already revoked." if access_key.is_revoked else ""
    if request.method == "POST":
        try:
            access_key.revoke(by=request.user)
        except ValidationError as refused:
            error = " ".join(refused.messages)
        else:
            return modal_success(
                request,
                message=f"Access key {access_key.name} revoked. Requests with it are refused.",
                event=CHANGED,
                redirect_to=list_url(workspace),
            )
    return render_modal(
        request,
        "access/confirm.html",
        {
            "nav": "access",
            "access_key": access_key,
            "action": "revoke",
            "title": f"Revoke {access_key.name}?",
            "warning": BREAKS_CLIENTS,
            "error": error,
            "submit_label": "Revoke access key",
            "cancel_url": list_url(workspace),
        },
        status=409 if error and request.method == "POST" and not request.htmx else 200,
    )


@signed_in_view("GET", "POST", fragment=True)
@shows_usage
def access_key_delete(request: AuthenticatedHttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    access_key = get_access_key_for(workspace, pk)
    form = DeleteAccessKeyForm(
        request.POST if request.method == "POST" else None, name=access_key.name
    )
    if request.method == "POST" and form.is_valid():
        # Deleted meanwhile by someone else? The outcome the owner asked for holds either way.
        with contextlib.suppress(ValidationError):
            access_key.delete_key(by=request.user)
        return modal_success(
            request,
            message=f"Access key {access_key.name} deleted for good.",
            event=CHANGED,
            redirect_to=list_url(workspace),
        )
    return render_modal(
        request,
        "access/confirm.html",
        {
            "nav": "access",
            "access_key": access_key,
            "action": "delete",
            "form": form,
            "title": f"Delete {access_key.name}?",
            "warning": BREAKS_CLIENTS,
            "submit_label": "Delete access key",
            "cancel_url": list_url(workspace),
        },
    )
