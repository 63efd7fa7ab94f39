"""The Tokens page: the table, its create/edit modal, revoke and delete dialogs (the Activity tab
lives in the audit app).

Every view works as a plain page (no JavaScript: POST, redirect, a message shown as a toast) and
as an htmx fragment; the server picks which. Token pages are never cached (`never_cache`): they
are the only place a value is ever typed.
"""

from __future__ import annotations

import contextlib
import uuid

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters

from keys.crypto import CryptoError
from lib.htmx import modal_success, render_modal, wants_fragment
from lib.http import HtmxHttpRequest
from lib.views import answers_crypto_errors, signed_in_view
from tokens.forms import DeleteTokenForm, TokenForm
from tokens.models import Token, key_grammar_error
from tokens.table import TokenFilterForm, list_url, sort_links, table_rows, table_tokens
from tokens.usage import shows_usage
from workspaces.access import get_object_in, get_workspace_for
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import Role, Workspace

BREAKS_SERVICES = (
    "Revoking or deleting a token will immediately break any services currently using it."
)


def get_token_for(workspace: Workspace, pk: uuid.UUID) -> Token:
    """A token of `workspace` (404 otherwise); fetch the workspace with get_workspace_for."""
    return get_object_in(workspace, Token, pk)


def token_url(workspace: Workspace, token: Token) -> str:
    """The token's own page (its History, usage and Activity, and its actions)."""
    return reverse("tokens:detail", args=[workspace.slug, token.pk])


def opened_on_token_page(request: HtmxHttpRequest) -> bool:
    """`?back=token`: the Edit, Revoke or Delete dialog was opened on the token's own page (the
    form posts back to its own URL, so the answer holds for the POST too)."""
    return request.GET.get("back") == "token"


def back_url(
    request: HtmxHttpRequest, workspace: Workspace, token: Token, *, highlight: bool = False
) -> str:
    """Where a dialog's Cancel, and a plain POST's redirect, go back to: the token's page when
    the dialog was opened there, otherwise the Tokens list (with the changed row highlighted)."""
    if opened_on_token_page(request):
        return token_url(workspace, token)
    return list_url(workspace, {"highlight": token.pk} if highlight else None)


@signed_in_view("GET", fragment=True)
@shows_usage
def token_list(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug)
    filters = TokenFilterForm(request.GET, workspace=workspace)
    now = timezone.now()
    tokens = table_tokens(filters.apply(Token.objects.for_workspace(workspace), now))
    page = Paginator(tokens, filters.page_size).get_page(request.GET.get("page"))
    highlight = request.GET.get("highlight", "")
    # The template walks the page's rows: its tokens, each made a TokenRow once.
    environment_ids = [env.pk for env in filters.environments]
    rows = table_rows(page.object_list, workspace, now, highlight, environment_ids=environment_ids)
    page.object_list = rows

    def page_url(number: int) -> str:
        return list_url(workspace, {**filters.values, **({"page": number} if number > 1 else {})})

    context = {
        "nav": "tokens",
        "tab": "tokens",
        "now": now,
        "filters": filters,
        "page": page,
        "can_manage": request.membership.can_manage_tokens,
        "table_url": page_url(page.number),
        "clear_url": list_url(workspace),
        "prev_url": page_url(page.previous_page_number()) if page.has_previous() else "",
        "next_url": page_url(page.next_page_number()) if page.has_next() else "",
        "sort_links": sort_links(workspace, filters),
        # Nothing listed: say so differently when revoked tokens are only hidden (one query,
        # on an empty page only).
        "revoked_hidden": not page.paginator.count
        and filters.hides_revoked
        and not filters.is_filtered
        and Token.objects.for_workspace(workspace).revoked().exists(),
        "show_revoked_url": list_url(workspace, {"revoked": 1}),
    }
    template = "tokens/tokens.html#table" if wants_fragment(request) else "tokens/tokens.html"
    return render(request, template, context)


# --- create and edit --------------------------------------------------------------------


def render_token_form(
    request: HtmxHttpRequest, workspace: Workspace, form: TokenForm, cancel_url: str = ""
) -> HttpResponse:
    return render_modal(
        request,
        "tokens/token_form.html",
        {
            "nav": "tokens",
            "form": form,
            "token": form.token,
            "cancel_url": cancel_url or list_url(workspace),
        },
    )


@sensitive_post_parameters("value")
@signed_in_view("GET", "POST", fragment=True)
@answers_crypto_errors(CryptoError)
def token_create(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.EDITOR)
    posted = request.method == "POST"
    # ?from=<token>: "Add for another environment" of that token's row.
    source = (
        get_token_for(workspace, parse_token_id(request.GET["from"]))
        if "from" in request.GET
        else None
    )
    form = TokenForm(
        request.POST if posted else None,
        request.FILES if posted else None,
        workspace=workspace,
        source=source,
        preselect=request.GET.get("environment", ""),
    )
    if request.method == "POST" and form.is_valid() and (token := form.save(by=request.user)):
        return modal_success(
            request,
            message=f"Token {token.key} created. Reference it as {token.reference}.",
            event="tokensChanged",
            redirect_to=list_url(workspace, {"highlight": token.pk}),
            id=str(token.pk),
        )
    return render_token_form(request, workspace, form)


def parse_token_id(text: str) -> uuid.UUID:
    """A token id from a query string; 404 for anything else (a forged or truncated link)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise Http404("No such token.") from None


@signed_in_view("GET")
def key_hint(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """Where the key typed in the Create Token modal is already valid: its environments and
    scope, never anything of a value. An empty answer when it is nowhere (or not a key)."""
    workspace = get_workspace_for(request, slug, Role.EDITOR)
    key = request.GET.get("key", "").strip()
    where = [] if key_grammar_error(key) else list(Token.objects.valid_with_key(workspace, key))
    return render(request, "tokens/token_form.html#key_hint", {"key": key, "where": where})


@sensitive_post_parameters("value")
@signed_in_view("GET", "POST", fragment=True)
@answers_crypto_errors(CryptoError)
def token_edit(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.EDITOR)
    token = get_token_for(workspace, pk)
    if token.is_revoked:
        return refuse_revoked(request, workspace, token)
    old_key = token.key
    posted = request.method == "POST"
    form = TokenForm(
        request.POST if posted else None,
        request.FILES if posted else None,
        workspace=workspace,
        token=token,
    )
    if request.method == "POST" and form.is_valid() and form.save(by=request.user):
        if not form.changed:
            message = f"Nothing changed in {token.key}."
        elif token.key != old_key:
            message = (
                f"Token {old_key} renamed to {token.key}: "
                f"update any $Secret{{{old_key}}} references."
            )
        else:
            message = f"Token {token.key} saved."
        return modal_success(
            request,
            message=message,
            event="tokensChanged",
            redirect_to=back_url(request, workspace, token, highlight=True),
            id=str(token.pk),
        )
    return render_token_form(request, workspace, form, back_url(request, workspace, token))


def refuse_revoked(request: HtmxHttpRequest, workspace: Workspace, token: Token) -> HttpResponse:
    """Revoked is final. htmx gets the explanation in the modal (it swaps only 2xx responses)."""
    return render_modal(
        request,
        "tokens/confirm.html",
        {
            "nav": "tokens",
            "token": token,
            "title": f"{token.key} is revoked",
            "refusal": "Revoked tokens cannot be edited. Create a new token instead; you can "
            "still delete this one.",
            "cancel_url": back_url(request, workspace, token),
        },
        status=200 if request.htmx else 409,
    )


# --- revoke and delete ------------------------------------------------------------------


@signed_in_view("GET", "POST", fragment=True)
@shows_usage
def token_revoke(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.EDITOR)
    token = get_token_for(workspace, pk)
    label = token.label
    error = ""
    if request.method == "POST":
        try:
            token.revoke(by=request.user)
        except ValidationError as refused:
            error = " ".join(refused.messages)
        else:
            return modal_success(
                request,
                message=f"Token {label} revoked. Services using it can no longer resolve it.",
                event="tokensChanged",
                redirect_to=back_url(request, workspace, token, highlight=True),
                id=str(token.pk),
            )
    return render_modal(
        request,
        "tokens/confirm.html",
        {
            "nav": "tokens",
            "token": token,
            "action": "revoke",
            "recent_use": token.recent_use(),
            "title": f"Revoke {label}?",
            "warning": BREAKS_SERVICES,
            "now": timezone.now(),
            "error": error or ("This token is already revoked." if token.is_revoked else ""),
            "submit_label": "Revoke token",
            "cancel_url": back_url(request, workspace, token),
        },
        status=409 if error and not request.htmx else 200,
    )


@signed_in_view("GET", "POST", fragment=True)
@shows_usage
def token_delete(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.EDITOR)
    token = get_token_for(workspace, pk)
    label = token.label
    form = DeleteTokenForm(request.POST if request.method == "POST" else None, token=token)
    if request.method == "POST" and form.is_valid():
        # Deleted meanwhile by someone else? The outcome the user asked for holds either way.
        with contextlib.suppress(ValidationError):
            token.delete_token(by=request.user)
        # From the token's own page, which is gone now, htmx goes to the list (the toast comes
        # from the message there); from the list, the table redraws itself.
        return modal_success(
            request,
            message=f"Token {label} deleted for good.",
            event="tokensChanged",
            redirect_to=list_url(workspace),
            reload=opened_on_token_page(request),
        )
    return render_modal(
        request,
        "tokens/confirm.html",
        {
            "nav": "tokens",
            "token": token,
            "action": "delete",
            "recent_use": token.recent_use(),
            "form": form,
            "title": f"Delete {label}?",
            "warning": BREAKS_SERVICES,
            "now": timezone.now(),
            "submit_label": "Delete token",
            "cancel_url": back_url(request, workspace, token),
        },
    )
