"""Invitations (invite, resend, revoke, accept), leaving a workspace, requiring two-factor, and
the Account page. Sign-in, sign-up, password reset and two-factor set-up are allauth's views."""

from __future__ import annotations

from typing import Any

from allauth.mfa.models import Authenticator
from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods

from accounts.forms import (
    InvitationForm,
    InvitationSignupForm,
    SSORequirementForm,
    TwoFactorRequirementForm,
)
from accounts.mail import send_invitation
from accounts.models import Invitation
from lib.htmx import modal_success, render_modal
from lib.views import signed_in_view
from workspaces.access import get_workspace_for
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import Role, Workspace
from workspaces.reauth import recent_auth_required


def sso_available(request: HttpRequest) -> bool:
    from allauth.socialaccount.adapter import get_adapter

    return bool(get_adapter(request).list_providers(request))


SIGN_IN_BACKEND = "allauth.account.auth_backends.AuthenticationBackend"


def _invitation_in(workspace: Workspace, pk: int) -> Invitation:
    return get_object_or_404(Invitation, workspace=workspace, pk=pk)


def _link_shown_once(request, invitation: Invitation, key: str, *, resent: bool) -> HttpResponse:
    """The only response that holds the link (it is also mailed)."""
    link = request.build_absolute_uri(reverse("invitation_open", args=[key]))
    mailed = send_invitation(invitation, link)
    return render_modal(
        request,
        "accounts/invitation_sent.html",
        {
            "invitation": invitation,
            "link": link,
            "resent": resent,
            "mailed": mailed,
            "done_url": reverse("members", args=[invitation.workspace.slug]),
            "nav": "members",
        },
    )


@sensitive_variables("key", "link")
@signed_in_view("GET", "POST", fragment=True)
@recent_auth_required
def invitation_create(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    form = InvitationForm(request.POST if request.method == "POST" else None, workspace=workspace)
    if request.method == "POST" and form.is_valid():
        invitation, key = Invitation.create(
            workspace,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            by=request.user,
        )
        return _link_shown_once(request, invitation, key, resent=False)
    return render_modal(
        request,
        "modal_form.html",
        {
            "form": form,
            "title": "Invite member",
            "intro": f"Coffer mails a link to join {workspace.name}. It works once, for 7 days; "
            "the person creates an account or signs in, and joins with the role you choose. "
            "Viewers read; editors also manage tokens; owners also manage the workspace.",
            "submit_label": "Send invitation",
            "cancel_url": reverse("members", args=[slug]),
            "nav": "members",
        },
    )


@sensitive_variables("key", "link")
@signed_in_view("GET", "POST", fragment=True)
@recent_auth_required
def invitation_resend(request: AuthenticatedHttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    invitation = _invitation_in(workspace, pk)
    blocker = None
    if request.method == "POST":
        try:
            key = invitation.resend(by=request.user)
        except ValidationError as error:
            blocker = " ".join(error.messages)
        else:
            return _link_shown_once(request, invitation, key, resent=True)
    elif invitation.accepted_at or invitation.revoked_at:
        blocker = invitation.unusable_reason()
    return render_modal(
        request,
        "modal_form.html",
        {
            "title": f"Resend the invitation to {invitation.email}?",
            "intro": blocker
            or "A new link is mailed, valid for 7 days; the link sent before stops working.",
            "submit_label": "Resend invitation",
            "submit_disabled": bool(blocker),
            "cancel_url": reverse("members", args=[slug]),
            "nav": "members",
        },
    )


@signed_in_view("GET", "POST", fragment=True)
def invitation_revoke(request: AuthenticatedHttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    invitation = _invitation_in(workspace, pk)
    blocker = None
    if request.method == "POST":
        try:
            invitation.revoke(by=request.user)
        except ValidationError as error:
            blocker = " ".join(error.messages)
        else:
            return modal_success(
                request,
                message=f"Invitation to {invitation.email} revoked.",
                event="membersChanged",
                redirect_to=reverse("members", args=[slug]),
            )
    return render_modal(
        request,
        "modal_form.html",
        {
            "title": f"Revoke the invitation to {invitation.email}?",
            "intro": blocker or "The link stops working at once.",
            "submit_label": "Revoke invitation",
            "submit_class": "btn-danger",
            "submit_disabled": bool(blocker),
            "cancel_url": reverse("members", args=[slug]),
            "nav": "members",
        },
    )


def _unusable(request: HttpRequest, reason: str, status: int = 200) -> HttpResponse:
    return render(request, "accounts/invitation_unusable.html", {"reason": reason}, status=status)


# The session keeps the hash of the opened link's key, never the key: session rows are stored
# readable by whoever reads the database, and the key would let them join.
INVITATION_SESSION = "_coffer_invitation"


@sensitive_variables("key")
@never_cache
@require_http_methods(["GET"])
def invitation_open(request: HttpRequest, key: str) -> HttpResponse:
    """The link in the mail. The browser moves on to a URL without the key (as allauth's
    password reset does), so it stays out of later pages, the Referer header and the sign-in
    page's `next`; the session remembers which invitation by the key's hash."""
    invitation = Invitation.find(key)
    if invitation is None:
        # 200, not 404: Django logs every 4xx with its path, and a mistyped or replaced link's
        # path is most of a key.
        return _unusable(
            request,
            "This invitation link is not valid. Check that you copied the whole link, or ask an "
            "owner of the workspace for a new invitation.",
        )
    request.session[INVITATION_SESSION] = invitation.key_hash
    return redirect("invitation_accept")


@sensitive_post_parameters("password1", "password2")
@never_cache
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest) -> HttpResponse:
    """Anyone holding the link may use it once: a person without an account creates one here;
    a signed-in person accepts. Nothing here tells whether an account exists for an email."""
    invitation = Invitation.find_by_hash(request.session.get(INVITATION_SESSION, ""))
    if invitation is None:
        return _unusable(
            request, "Open the invitation link from your mail to join a workspace.", 404
        )
    if reason := invitation.unusable_reason():
        request.session.pop(INVITATION_SESSION, None)
        return _unusable(request, f"{reason} Ask an owner of the workspace for a new one.")
    workspace = invitation.workspace
    context: dict = {"invitation": invitation, "workspace_invited": workspace}
    if request.user.is_authenticated:
        if request.method == "POST":
            try:
                invitation.accept(request.user)
            except ValidationError as error:
                return _unusable(request, " ".join(error.messages))
            return _joined(request, invitation)
        return render(request, "accounts/invitation_accept.html", context)
    form = InvitationSignupForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                user = form.save(email=invitation.email)
                invitation.accept(user)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            login(request, user, backend=SIGN_IN_BACKEND)
            return _joined(request, invitation)
    context["form"] = form
    context["login_url"] = f"{reverse('login')}?next={reverse('invitation_accept')}"
    return render(request, "accounts/invitation_accept.html", context)


def _joined(request: HttpRequest, invitation: Invitation) -> HttpResponse:
    request.session.pop(INVITATION_SESSION, None)
    messages.success(
        request,
        f"Welcome to {invitation.workspace.name}. You joined as {invitation.get_role_display()}.",
    )
    return redirect("tokens:list", invitation.workspace.slug)


@signed_in_view("GET", "POST", fragment=True)
def workspace_leave(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug, allow_without_two_factor=True)
    membership = request.membership
    blocker = membership.removal_blocker() if request.method == "GET" else None
    if request.method == "POST":
        try:
            membership.leave()
        except ValidationError as error:
            blocker = " ".join(error.messages)
        else:
            return modal_success(
                request,
                message=f"You left {workspace.name}.",
                event="membersChanged",
                redirect_to=reverse("home"),
                reload=True,
            )
    return render_modal(
        request,
        "modal_form.html",
        {
            "title": f"Leave {workspace.name}?",
            "intro": blocker
            or f"You lose access to {workspace.name} at once. To come back you need a new "
            "invitation from an owner.",
            "submit_label": "Leave workspace",
            "submit_class": "btn-danger",
            "submit_disabled": bool(blocker),
            "cancel_url": reverse("members", args=[slug]),
            "nav": "members",
        },
    )


def _workspace_requirement(
    request: AuthenticatedHttpRequest,
    slug: str,
    form_class: type[Form],
    form_options: dict[str, Any] | None = None,
    **texts: str,
) -> HttpResponse:
    """The owner's switch for one workspace-wide sign-in requirement (two-factor, single
    sign-on): the form's one field names the Workspace field, `texts` the modal's words."""
    workspace = get_workspace_for(request, slug, Role.OWNER)
    (field,) = form_class.base_fields
    form = form_class(
        request.POST if request.method == "POST" else None,
        initial={field: getattr(workspace, field)},
        **(form_options or {}),
    )
    if request.method == "POST" and form.is_valid():
        required = form.cleaned_data[field]
        workspace.set_requirement(field, required, by=request.user)
        state = "now requires" if required else "no longer requires"
        return modal_success(
            request,
            message=f"{workspace.name} {state} {texts['requirement']}.",
            # Not membersChanged: the whole page reloads (the owner may be sent to set it up
            # themselves), and a list refresh racing it would be sent there too.
            event="workspaceChanged",
            redirect_to=reverse("members", args=[slug]),
            reload=True,
        )
    context = {
        "form": form,
        "title": texts["title"],
        "intro": texts["intro"].format(workspace=workspace.name),
        "submit_label": "Save",
        "cancel_url": reverse("members", args=[slug]),
        "nav": "members",
    }
    return render_modal(request, "modal_form.html", context)


@signed_in_view("GET", "POST", fragment=True)
@recent_auth_required
def workspace_two_factor(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    return _workspace_requirement(
        request,
        slug,
        TwoFactorRequirementForm,
        requirement="two-factor authentication",
        title="Two-factor authentication",
        intro="When required, members without two-factor authentication are sent to set it up "
        "before they can open any page of {workspace}. Access keys keep working.",
    )


@signed_in_view("GET", "POST", fragment=True)
@recent_auth_required
def workspace_sso(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    return _workspace_requirement(
        request,
        slug,
        SSORequirementForm,
        form_options={"sso_available": sso_available(request)},
        requirement="single sign-on",
        title="Single sign-on",
        intro="When required, members who signed in with a password are asked to sign in with "
        "single sign-on before they can open any page of {workspace}. Owners may still enter "
        "with their password and two-factor code, so a broken identity provider cannot lock "
        "the workspace out. Access keys keep working.",
    )


@signed_in_view("GET")
def account(request: AuthenticatedHttpRequest) -> HttpResponse:
    authenticators = {a.type: a for a in Authenticator.objects.filter(user=request.user)}
    context = {
        "totp": authenticators.get(Authenticator.Type.TOTP),
        "recovery_codes": authenticators.get(Authenticator.Type.RECOVERY_CODES),
    }
    return render(request, "accounts/account.html", context)
