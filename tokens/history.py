"""A token's own page (its actions, its History, where it is used, its Activity) and the
History's Restore and Destroy dialogs.

The page is where a token is acted on: Edit, Revoke and Delete open the Tokens page's own
dialogs in the modal (with `?back=token`, so Cancel and the plain-POST redirect come back here);
after an edit or a revoke the page redraws itself (`tokensChanged`), after a delete htmx goes to
the Tokens list.

History lists the versions of the value (`TokenVersion`), never a value. Restore makes an old
version's value current again as a new version (`token.restore_version`); Destroy erases one
old version for good (`token.destroy_version`). Viewers see everything; editors and owners also
restore and destroy. Like the Tokens page, everything works as a plain page (POST, redirect, a
toast) and as htmx (the dialog in the modal, then the page's History redraws itself).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from audit.wording import CatalogNames
from keys.crypto import CryptoError
from lib.htmx import modal_success, render_modal, wants_fragment
from lib.views import answers_crypto_errors, signed_in_view
from tokens.forms import VersionChoiceForm
from tokens.models import (
    Token,
    TokenVersion,
    TokenVersionQuerySet,
    free_environments,
    version_number,
)
from tokens.usage import shows_usage
from tokens.views import get_token_for, token_url
from workspaces.access import get_workspace_for
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import Role, Workspace

EVENTS_SHOWN = 20  # the newest; "All activity for this token" opens the rest
CONTEXTS_SHOWN = 100  # on the token's page (the dialogs: RECENT_CONTEXTS_SHOWN)
HISTORY_CHANGED = "tokenHistoryChanged"


def versions_of(token: Token) -> TokenVersionQuerySet:
    """The History rows: every version kept, newest first, with who set or destroyed it (the
    ciphertext is never needed to list them)."""
    return (
        token.versions.defer("ciphertext").select_related("set_by", "destroyed_by").newest_first()
    )


def old_versions(token: Token) -> list[TokenVersion]:
    """The versions Restore and Destroy may choose: kept, not destroyed, not the current one."""
    return list(versions_of(token).sealed().exclude(version=token.value_version))


@signed_in_view("GET", fragment=True)
@shows_usage
def token_detail(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    workspace = get_workspace_for(request, slug)
    token = (
        Token.objects.with_relations().defer("ciphertext").get(pk=get_token_for(workspace, pk).pk)
    )
    events = list(AuditEvent.objects.filter(token=token).newest_first()[:EVENTS_SHOWN])
    activity_url = reverse("audit:activity", args=[workspace.slug])
    can_manage = request.membership.can_manage_tokens
    context = {
        "nav": "tokens",
        "token": token,
        "versions": list(versions_of(token)),
        "usages": list(token.usages.latest_first()[:CONTEXTS_SHOWN]),
        "events": events,
        "events_shown": EVENTS_SHOWN,
        "names": CatalogNames.of(workspace) if events else CatalogNames(),
        "activity_url": activity_url,
        "token_activity_url": f"{activity_url}?{urlencode({'token': token.key})}",
        "can_manage": can_manage,
        "can_add_environment": can_manage and can_add_environment(workspace, token),
        "actions": action_urls(workspace, token),
        "detail_url": token_url(workspace, token),
        "list_url": reverse("tokens:list", args=[workspace.slug]),
        "now": timezone.now(),
    }
    page = "tokens/token_detail.html"
    return render(request, f"{page}#token" if wants_fragment(request) else page, context)


def can_add_environment(workspace: Workspace, token: Token) -> bool:
    """The Tokens table's rule for "Add for another environment": the token is not revoked and
    an environment of the workspace is still free for its key and scope (one query)."""
    if token.is_revoked:
        return False
    free = free_environments(
        workspace, token.key, products=token.products.all(), apps=token.apps.all()
    )
    return free.exists()


def action_urls(workspace: Workspace, token: Token) -> dict[str, str]:
    """The Tokens page's dialogs, opened from the token's page (they come back to it), and
    "Add for another environment": the Create Token dialog filled in from this token."""
    urls = {
        name: reverse(f"tokens:{name}", args=[workspace.slug, token.pk]) + "?back=token"
        for name in ("edit", "revoke", "delete")
    }
    urls["add"] = f"{reverse('tokens:create', args=[workspace.slug])}?from={token.pk}"
    return urls


# --- Restore and Destroy ----------------------------------------------------------------------


@dataclass(frozen=True)
class VersionAction:
    """What differs between the Restore and the Destroy dialog."""

    name: str  # "restore" or "destroy"
    title: str
    submit_label: str
    explanation: str

    def perform(self, token: Token, version: int, request: AuthenticatedHttpRequest) -> str:
        """Do it (raising ValidationError when a rule refuses) and say what was done."""
        if self.name == "restore":
            new = token.restore_version(version, by=request.user)
            return (
                f"Version {version_number(version)} of {token.key} restored as version "
                f"{version_number(new)}: every resolve now gets that value."
            )
        token.destroy_version(version, by=request.user)
        return f"Version {version_number(version)} of {token.key} destroyed for good."


RESTORE = VersionAction(
    "restore",
    "Restore a version of {key}",
    "Restore version",
    "The chosen version's value becomes current again, as a new version: every resolve gets "
    "it from now on, and the Period restarts today. The current value stays in History.",
)
DESTROY = VersionAction(
    "destroy",
    "Destroy a version of {key}",
    "Destroy version",
    "The chosen version's encrypted value is erased for good; it can never be restored. "
    "History keeps a line saying it existed and who destroyed it.",
)


def version_dialog(
    request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID, action: VersionAction
) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.EDITOR)
    token = get_token_for(workspace, pk)
    versions = old_versions(token)
    form = VersionChoiceForm(
        request.POST if request.method == "POST" else None,
        versions=versions,
        initial_version=request.GET.get("version", ""),
    )
    refusal = ""
    if action is RESTORE and token.is_revoked:
        refusal = "Revoked tokens cannot be restored: revoking is final. Its History is kept."
    elif not versions:
        refusal = f"{token.key} has no older version to {action.name}."
    if request.method == "POST" and not refusal and form.is_valid():
        try:
            message = action.perform(token, form.cleaned_data["version"], request)
        except ValidationError as refused:
            form.add_error("version", refused)
        else:
            return modal_success(
                request,
                message=message,
                event=HISTORY_CHANGED,
                redirect_to=token_url(workspace, token),
                id=str(token.pk),
            )
    return render_modal(
        request,
        "tokens/version_confirm.html",
        {
            "nav": "tokens",
            "token": token,
            "action": action,
            "title": action.title.format(key=token.key),
            "form": form,
            "refusal": refusal,
            "now": timezone.now(),
            "cancel_url": token_url(workspace, token),
        },
    )


@signed_in_view("GET", "POST", fragment=True)
@answers_crypto_errors(CryptoError)
def version_restore(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    return version_dialog(request, slug, pk, RESTORE)


@signed_in_view("GET", "POST", fragment=True)
def version_destroy(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    return version_dialog(request, slug, pk, DESTROY)
