"""Responses shared by every list + modal page, and when to answer with a fragment.

A modal form posts back to its own URL. With htmx, success is a 204 whose HX-Trigger closes the
modal, tells the list to refresh itself and shows a toast; without JavaScript it is a redirect
with a Django message, shown as a toast on the next page. When the action changes more than the
list (a new workspace, leaving one, changing one's own role) htmx is told to load `redirect_to`
instead, and the toast comes from the message on that page.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from lib.http import HtmxHttpRequest


def modal_success(
    request: HtmxHttpRequest,
    *,
    message: str,
    event: str,
    redirect_to: str,
    reload: bool = False,
    **detail: object,
) -> HttpResponse:
    """Finish a successful modal action: toast `message` and fire `event` for the list.

    `reload=True` sends htmx to `redirect_to` (HX-Redirect) instead of refreshing the list: the
    list's event is not fired then (the page is being left, and a region that refreshed itself
    meanwhile might ask for what was just deleted).
    """
    if not request.htmx:
        messages.success(request, message)
        return redirect(redirect_to)
    # 204 either way: htmx swaps nothing, it only reads the headers.
    response = (
        HttpResponseClientRedirect(redirect_to, status=204) if reload else HttpResponse(status=204)
    )
    if not reload:
        trigger_client_event(response, event, detail or {})
    trigger_client_event(response, "closeModal", {})
    if reload:
        messages.success(request, message)
    else:
        trigger_client_event(response, "showToast", {"message": message, "level": "success"})
    return response


def render_modal(
    request: HtmxHttpRequest, template: str, context: dict, status: int = 200
) -> HttpResponse:
    """Render a modal form: just its `modal` partial for htmx, the whole page otherwise."""
    name = f"{template}#modal" if request.htmx else template
    return render(request, name, context, status=status)


def wants_fragment(request: HtmxHttpRequest) -> bool:
    """htmx swaps a fragment, except when it restores history: then it needs the whole page."""
    return bool(request.htmx) and not request.htmx.history_restore_request
