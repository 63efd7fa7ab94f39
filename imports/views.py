"""The Import pages: a .env file in (pasted or uploaded), its preview, then the import.

Step one stores the file encrypted as a PendingImport and redirects to its preview; the preview
lists each line's fate (new, already exists and where, invalid and why) without a single value,
and its form chooses what every token gets: a key "exists" only where a token of it would meet
the imported one (the environments and scope chosen; checked again as they change). Plain
pages and plain POSTs: they work without JavaScript.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from imports.forms import ImportOptionsForm, ImportSourceForm
from imports.importer import ImportGone, Target, preview, run_import
from imports.models import PENDING_IMPORT_MINUTES, PendingImport
from imports.parsing import IMPORT_MAX_BYTES
from keys.crypto import CryptoError
from lib.views import answers_crypto_errors, signed_in_view
from tokens.table import list_url
from tokens.uploads import CappedUploadHandler
from workspaces.access import get_object_in, get_workspace_for
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import Role, Workspace

TOO_BIG = (
    "That is too much to import at once: an import takes at most 1 MiB "
    f"({IMPORT_MAX_BYTES:,} bytes). Split the file into smaller ones. Nothing was imported."
)


def get_pending_for(
    request: AuthenticatedHttpRequest, workspace: Workspace, pk: uuid.UUID
) -> PendingImport | None:
    """A pending import of `workspace` made by this user and not yet expired, or None (another
    member's looks exactly like one that does not exist)."""
    try:
        return get_object_in(workspace, PendingImport.objects.fresh().made_by(request.user), pk)
    except Http404:
        return None


def render_gone(
    request: AuthenticatedHttpRequest, workspace: Workspace, pk: uuid.UUID
) -> HttpResponse:
    """The preview a user comes back to (Back after importing, a second click on Import, a tab
    left open past its expiry): a page saying what became of it, not a bare 404. Still a 404,
    for an id of another workspace or another member looks exactly the same."""
    mine = PendingImport.objects.made_by(request.user)
    expired = mine.stale().filter(workspace=workspace, pk=pk).exists()
    context = {
        "nav": "tokens",
        "expired": expired,
        "minutes": PENDING_IMPORT_MINUTES,
        "start_url": reverse("imports:start", args=[workspace.slug]),
        "tokens_url": list_url(workspace),
    }
    return render(request, "imports/import_gone.html", context, status=404)


def render_start(
    request: AuthenticatedHttpRequest,
    workspace: Workspace,
    form: ImportSourceForm,
    status: int = 200,
) -> HttpResponse:
    context = {"nav": "tokens", "form": form, "cancel_url": list_url(workspace)}
    return render(request, "imports/import_start.html", context, status=status)


@csrf_exempt  # checked by import_start_checked, once the upload limit is set
@never_cache
def import_start(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """A .env file may be larger than a token value: this view alone keeps up to 1 MiB of an
    upload (in memory, as every upload here). The limit must be set before anything reads the
    body, hence the CSRF check after it. Pasted text past Django's own body limit gets the same
    clear message as a file past ours, and changes nothing."""
    handler = CappedUploadHandler(request)
    handler.limit = IMPORT_MAX_BYTES
    request.upload_handlers = [handler]
    if request.method == "POST" and request.user.is_authenticated:
        try:
            request.POST  # noqa: B018 (parse now, to answer a too large body ourselves)
        except RequestDataTooBig:
            workspace = get_workspace_for(request, slug, Role.EDITOR)
            form = ImportSourceForm()
            form.body_error = TOO_BIG  # type: ignore[attr-defined]
            return render_start(request, workspace, form, status=413)
    return import_start_checked(request, slug)


@sensitive_post_parameters("text")
@csrf_protect
@signed_in_view("GET", "POST")
@answers_crypto_errors(CryptoError)
def import_start_checked(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.EDITOR)
    posted = request.method == "POST"
    form = ImportSourceForm(request.POST if posted else None, request.FILES if posted else None)
    if posted and form.is_valid():
        pending = PendingImport.seal(workspace, form.source_text, by=request.user)
        return redirect("imports:preview", slug=workspace.slug, pk=pending.pk)
    return render_start(request, workspace, form)


@signed_in_view("GET", "POST")
@answers_crypto_errors(CryptoError)
def import_preview(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.EDITOR)
    pending = get_pending_for(request, workspace, pk)
    if pending is None:
        return render_gone(request, workspace, pk)
    if request.method == "POST" and "cancel" in request.POST:
        pending.delete()
        messages.info(request, "Import cancelled: nothing was imported.")
        return redirect(list_url(workspace))
    form = ImportOptionsForm(
        request.POST if request.method == "POST" else None, workspace=workspace
    )
    # "Check against these choices" (or htmx, as the options change): the preview again for
    # the environments and scope chosen, nothing imported.
    checking = "check" in request.POST
    if request.method == "POST" and not checking and form.is_valid():
        try:
            outcome = run_import(pending, form, by=request.user)
        except ImportGone:
            return render_gone(request, workspace, pk)
        messages.success(request, outcome.message)
        return redirect(list_url(workspace))
    target = Target.of(form)
    context = {
        "nav": "tokens",
        "form": form,
        "preview": preview(pending, target=target),
        "target": target,
        "pending": pending,
        "minutes": PENDING_IMPORT_MINUTES,
        "start_url": reverse("imports:start", args=[workspace.slug]),
        "cancel_url": list_url(workspace),
    }
    return render(request, "imports/import_preview.html", context)
