"""Two-factor and single sign-on middleware: sends a member of a workspace that requires
two-factor authentication to set it up, or to give a code if this session never did; shows a
member of a workspace that requires single sign-on, in a session that signed in another way, the
page that asks them to; and answers a two-factor secret the master keys cannot open with a clear
page."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from keys.crypto import AccountSecretError
from workspaces.access import SSORequired, TwoFactorRequired

logger = logging.getLogger("coffer.crypto")


class WorkspaceTwoFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, SSORequired):
            return self._sso_required(request, exception)
        if not isinstance(exception, TwoFactorRequired):
            return None
        text = f"{exception.workspace_name} requires two-factor authentication. " + (
            "Enter a code from your authenticator app to continue."
            if exception.code_needed
            else "Set up an authenticator app to continue."
        )
        # Several requests of one page (a redraw and its redirect) may each land here before
        # the set-up page shows the message: say it once.
        queued = messages.get_messages(request)
        already = any(message.message == text for message in queued)
        queued.used = False  # type: ignore[union-attr]  # looking is not showing
        if not already:
            messages.warning(request, text)
        page = "mfa_reauthenticate" if exception.code_needed else "mfa_activate_totp"
        url = f"{reverse(page)}?{urlencode({'next': request.get_full_path()})}"
        if getattr(request, "htmx", False):
            return HttpResponseClientRedirect(url)
        return redirect(url)

    def _sso_required(self, request: HttpRequest, exception: SSORequired) -> HttpResponse:
        if getattr(request, "htmx", False):
            # A fragment cannot hold the page: the browser loads it as a whole.
            return HttpResponseClientRedirect(request.get_full_path())
        context = {"workspace_name": exception.workspace_name, "next": request.get_full_path()}
        return render(request, "account/sso_required.html", context, status=403)


class TwoFactorSecretErrorMiddleware:
    """A person's two-factor secret that the server's master keys cannot open (a key left out
    of the ring after a restore, say), on any page allauth reads it: a styled 503 page saying
    so and one log line naming the master key, not a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, AccountSecretError):
            return None
        logger.error("%s %s refused: %s", request.method, request.path, exception)
        response = HttpResponse(
            render_to_string("accounts/two_factor_secret_error.html"), status=503
        )
        response["Cache-Control"] = "no-store"
        return response
