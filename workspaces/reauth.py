"""Sudo mode: sensitive actions ask for the password again unless it was given recently.

As GitHub does it: signing in (the `user_logged_in` signal) and confirming the password at
/accounts/reauthenticate/ record the moment in the session; a view marked
`@recent_auth_required` runs only within COFFER_REAUTH_MINUTES (15 by default) of it, and
otherwise sends the user to confirm their password and come back (`?next=`). htmx requests get
an HX-Redirect to the same page. Wrong passwords go through `authenticate()` with the request,
so django-axes counts them like failed sign-ins and locks the pair out the same way.

Mark every sensitive view with the decorator (creating access keys today; role changes, member
removal, workspace deletion, two-factor settings later): tests/test_reauth.py finds the marked
views through the URL resolver and checks each one refuses without a recent password.
"""

from __future__ import annotations

import functools
import time
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib.auth import authenticate, user_logged_in
from django.contrib.auth.decorators import login_required
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from workspaces.http import HtmxHttpRequest

SESSION_KEY = "_coffer_authenticated_at"  # seconds since the epoch, when the password was given


def mark_authenticated(request: HttpRequest) -> None:
    request.session[SESSION_KEY] = int(time.time())


@receiver(user_logged_in, dispatch_uid="coffer-reauth-sign-in")
def _signed_in(sender, request: HttpRequest | None, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        mark_authenticated(request)


def window_seconds() -> int:
    return 60 * settings.COFFER_REAUTH_MINUTES


def has_recent_auth(request: HttpRequest) -> bool:
    """Whether the user gave their password (signing in or confirming it) within the window."""
    given = request.session.get(SESSION_KEY)
    if not isinstance(given, int) or isinstance(given, bool):
        return False
    return 0 <= time.time() - given < window_seconds()


def reauth_url(next_path: str) -> str:
    return f"{reverse('reauthenticate')}?{urlencode({'next': next_path})}"


def recent_auth_required(view):
    """Run `view` only if the user gave their password within COFFER_REAUTH_MINUTES; otherwise
    send them to confirm it (an HX-Redirect for htmx) and back to this URL. Put it below
    @login_required: anonymous users are sent to sign in first."""

    @functools.wraps(view)
    def wrapper(request: HtmxHttpRequest, *args, **kwargs) -> HttpResponse:
        if has_recent_auth(request):
            return view(request, *args, **kwargs)
        url = reauth_url(request.get_full_path())
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)

    wrapper.requires_recent_auth = True  # type: ignore[attr-defined]  # found by tests/test_reauth.py
    return wrapper


def safe_next(request: HttpRequest, candidate: str | None) -> str:
    """`candidate` if it is a path on this site (as the sign-in view allows), else home."""
    if (
        candidate
        and candidate.startswith("/")
        and not candidate.startswith(("//", "/\\"))
        and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    ):
        return candidate
    return reverse(settings.LOGIN_REDIRECT_URL)


class ReauthenticateForm(forms.Form):
    password = forms.CharField(
        label="Password",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )

    def __init__(self, *args, request: HttpRequest, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.request = request

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        user = self.request.user
        # Through authenticate() with the request: django-axes counts a wrong password as a
        # failed sign-in of this username from this address, and refuses a locked-out pair.
        confirmed = authenticate(self.request, username=user.get_username(), password=password)
        if confirmed is None or confirmed.pk != user.pk:
            raise forms.ValidationError("That is not your password. Please try again.")
        return password


@sensitive_post_parameters("password")
@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def reauthenticate(request: HttpRequest) -> HttpResponse:
    next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    form = ReauthenticateForm(request.POST if request.method == "POST" else None, request=request)
    if request.method == "POST" and form.is_valid():
        mark_authenticated(request)
        return redirect(next_url)
    context = {"form": form, "next": next_url, "minutes": settings.COFFER_REAUTH_MINUTES}
    return render(request, "registration/reauthenticate.html", context)
