"""Workspace pages: home, create workspace, Products & Apps, Environments, Members."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from lib.htmx import modal_success, render_modal
from lib.views import signed_in_view
from workspaces.access import get_object_in, get_workspace_for
from workspaces.forms import (
    AppForm,
    CatalogItemForm,
    EnvironmentForm,
    MemberRoleForm,
    ProductForm,
    WorkspaceForm,
)
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import (
    App,
    Environment,
    Membership,
    Product,
    Role,
    Workspace,
    WorkspaceCatalogItem,
)
from workspaces.reauth import recent_auth_required

type CatalogKind = tuple[type[WorkspaceCatalogItem], type[CatalogItemForm], str]

# The three kinds of catalog item share one set of views: (model, form, page that lists them).
CATALOG: dict[str, CatalogKind] = {
    "products": (Product, ProductForm, "products"),
    "apps": (App, AppForm, "products"),
    "environments": (Environment, EnvironmentForm, "environments"),
}


@signed_in_view("GET")
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    workspace = Workspace.objects.for_user(request.user).first()
    if workspace is not None:
        return redirect("tokens:list", workspace.slug)
    return render(request, "workspaces/home.html")


@signed_in_view("GET", "POST", fragment=True)
def workspace_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST if request.method == "POST" else None)
    if (
        request.method == "POST"
        and form.is_valid()
        and (workspace := form.create(owner=request.user))
    ):
        # A new workspace changes the whole shell (switcher, sidebar): go there.
        return modal_success(
            request,
            message=form.created_message(workspace),
            event="workspaceCreated",
            redirect_to=reverse("tokens:list", args=[workspace.slug]),
            reload=True,
        )
    return render_modal(
        request,
        "modal_form.html",
        {
            "form": form,
            "title": "Create workspace",
            "intro": "A workspace holds tokens and the products, apps and environments they serve."
            " You will be its owner.",
            "submit_label": "Create workspace",
            "cancel_url": reverse("home"),
        },
    )


@signed_in_view("GET", fragment=True)
def products(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug)
    context = {
        "nav": "products",
        "products": workspace.products.with_token_counts(),
        "apps": workspace.apps.with_token_counts(),
    }
    template = "workspaces/products.html#lists" if request.htmx else "workspaces/products.html"
    return render(request, template, context)


@signed_in_view("GET", fragment=True)
def environments(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug)
    context = {
        "nav": "environments",
        "environments": workspace.environments.with_token_counts(),
    }
    template = (
        "workspaces/environments.html#lists" if request.htmx else "workspaces/environments.html"
    )
    return render(request, template, context)


def _catalog(kind: str) -> CatalogKind:
    if kind not in CATALOG:
        raise Http404("No such list.")
    return CATALOG[kind]


@signed_in_view("GET", "POST", fragment=True)
def catalog_item_form(
    request: AuthenticatedHttpRequest, slug: str, kind: str, pk: int | None = None
) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    model, form_class, page = _catalog(kind)
    item = get_object_in(workspace, model, pk) if pk else None
    noun = str(model._meta.verbose_name)
    form = form_class(
        request.POST if request.method == "POST" else None, instance=item, workspace=workspace
    )
    if request.method == "POST" and form.is_valid() and (saved := form.save(by=request.user)):
        verb = "saved" if item else "added"
        return modal_success(
            request,
            message=f"{noun.capitalize()} “{saved.name}” {verb}.",
            event="catalogChanged",
            redirect_to=reverse(page, args=[slug]),
        )
    return render_modal(
        request,
        "modal_form.html",
        {
            "form": form,
            "title": f"Edit {noun} “{item.name}”" if item else f"Add {noun}",
            "submit_label": "Save" if item else f"Add {noun}",
            "cancel_url": reverse(page, args=[slug]),
            "nav": page,
        },
    )


@signed_in_view("GET", "POST", fragment=True)
def catalog_item_delete(
    request: AuthenticatedHttpRequest, slug: str, kind: str, pk: int
) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    model, _form_class, page = _catalog(kind)
    item = get_object_in(workspace, model, pk)
    noun = str(model._meta.verbose_name)
    blocker = item.deletion_blocker()
    if request.method == "POST" and blocker is None:
        item.delete_audited(by=request.user)
        return modal_success(
            request,
            message=f"{noun.capitalize()} “{item.name}” deleted.",
            event="catalogChanged",
            redirect_to=reverse(page, args=[slug]),
        )
    return render_modal(
        request,
        "modal_form.html",
        {
            "title": f"Delete {noun} “{item.name}”?",
            "intro": blocker or f"The {noun} “{item.name}” ({item.slug}) will be deleted.",
            "submit_label": f"Delete {noun}",
            "submit_class": "btn-danger",
            "submit_disabled": bool(blocker),
            "cancel_url": reverse(page, args=[slug]),
            "nav": page,
        },
    )


@signed_in_view("GET", fragment=True)
def members(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug)
    context = {
        "nav": "members",
        "members": workspace.memberships.select_related("user").order_by("user__username"),
        "invitations": (
            workspace.invitations.pending().select_related("invited_by")
            if request.membership.can_manage_workspace
            else []
        ),
    }
    template = "workspaces/members.html#lists" if request.htmx else "workspaces/members.html"
    return render(request, template, context)


def _membership_in(workspace: Workspace, pk: int) -> Membership:
    return get_object_or_404(Membership.objects.select_related("user"), workspace=workspace, pk=pk)


@signed_in_view("GET", "POST", fragment=True)
@recent_auth_required
def member_edit(request: AuthenticatedHttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    membership = _membership_in(workspace, pk)
    form = MemberRoleForm(request.POST if request.method == "POST" else None, membership=membership)
    if request.method == "POST" and form.is_valid() and form.save(by=request.user):
        return modal_success(
            request,
            message=f"{membership.user.get_username()} is now {membership.get_role_display()}.",
            event="membersChanged",
            redirect_to=reverse("members", args=[slug]),
            # Changing one's own role changes what the whole page offers.
            reload=membership.user_id == request.user.pk,
        )
    return render_modal(
        request,
        "modal_form.html",
        {
            "form": form,
            "title": f"Change role of {membership.user.get_username()}",
            "submit_label": "Save role",
            "cancel_url": reverse("members", args=[slug]),
            "nav": "members",
        },
    )


@signed_in_view("GET", "POST", fragment=True)
@recent_auth_required
def member_remove(request: AuthenticatedHttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    membership = _membership_in(workspace, pk)
    name = membership.user.get_username()
    blocker = membership.removal_blocker() if request.method == "GET" else None
    if request.method == "POST":
        try:
            membership.remove(by=request.user)  # checks the last-owner rule under lock
        except ValidationError as error:
            blocker = " ".join(error.messages)
        else:
            leaving = membership.user_id == request.user.pk
            return modal_success(
                request,
                message=f"{name} removed from {workspace.name}.",
                event="membersChanged",
                redirect_to=reverse("home") if leaving else reverse("members", args=[slug]),
                reload=leaving,
            )
    return render_modal(
        request,
        "modal_form.html",
        {
            "title": f"Remove {name}?",
            "intro": blocker or f"{name} will lose access to {workspace.name} at once.",
            "submit_label": "Remove member",
            "submit_class": "btn-danger",
            "submit_disabled": bool(blocker),
            "cancel_url": reverse("members", args=[slug]),
            "nav": "members",
        },
    )
