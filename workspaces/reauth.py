"""Sudo mode: sensitive actions ask for the password (or a two-factor code) again unless it
was given recently. ONE mechanism for every sensitive action, Coffer's and allauth's alike.

As GitHub does it. The moment is kept where django-allauth keeps it: its authentication records
in the session (`account_authentication_methods`). Only records marked `reauthenticated` count,
as in allauth: a sign-in that passed every step (the `user_logged_in` signal), the password
confirmed at /accounts/reauthenticate/ (this module's page, which also answers allauth's
`account_reauthenticate`) or an authenticator code confirmed at /accounts/2fa/reauthenticate/
(allauth's) each append one; a view marked `@recent_auth_required` runs only within
COFFER_REAUTH_MINUTES (15 by default) of the newest, and otherwise sends the user to confirm and
come back (`?next=`). htmx requests get an HX-Redirect to the same page. allauth's Change email
page is wrapped in the decorator (config/urls.py), and so are the admin's changes
(config/admin_site.py). allauth's two-factor settings (set up, turn off, new recovery codes) use
its `reauthentication_required` with ACCOUNT_REAUTHENTICATION_TIMEOUT set to the same window,
and read the same records, so a user confirms once for both.

A sign-in that skipped a step never counts: for an account with two-factor, a session in which
no authenticator code was ever given (an `mfa` record) gets no record from signing in, its
password alone does not confirm (the page sends it to the code page), and a workspace that
requires two-factor asks it for a code (workspaces/access.py). allauth records the password step
of a sign-in before asking for the code, without the mark: a half-finished sign-in opens nothing.

Wrong passwords go through `authenticate()` with the request, so django-axes counts them like
failed sign-ins and locks the pair out the same way (wrong codes too: accounts/forms.py).

Mark every sensitive view with the decorator: tests/test_reauth.py finds the marked views
through the URL resolver and checks each one refuses without a recent password, and checks that
every other URL was reviewed as granting nothing.
"""

from __future__ import annotations

import functools
import time
from urllib.parse import urlencode

from allauth.account.internal.flows.login import (
    AUTHENTICATION_METHODS_SESSION_KEY,
    get_authentication_records,
    record_authentication,
)
from django import forms
from django.conf import settings
from django.contrib.auth import authenticate, user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django_htmx.http import HttpResponseClientRedirect

from lib.http import HtmxHttpRequest
from lib.views import signed_in_view

# allauth's session key for its authentication records (each a dict with "at", seconds since
# the epoch); tests age them to leave the window.
SESSION_KEY = AUTHENTICATION_METHODS_SESSION_KEY


def mark_authenticated(request: HttpRequest, user=None, method: str = "password") -> None:
    """Record that the user just proved who they are (opens the window)."""
    record_authentication(request, user or request.user, method=method, reauthenticated=True)


def saw_second_factor(request: HttpRequest, user) -> bool:
    """Whether an authenticator code of `user` was given in this session (signing in, setting
    one up, or confirming at the code page)."""
    records = get_authentication_records(request, user)
    return any(isinstance(r, dict) and r.get("method") == "mfa" for r in records)


def signed_in_with_sso(request: HttpRequest, user) -> bool:
    """Whether this session signed `user` in through the single sign-on provider (allauth
    records a `socialaccount` step for it; a password sign-in has none)."""
    records = get_authentication_records(request, user)
    return any(isinstance(r, dict) and r.get("method") == "socialaccount" for r in records)


def passed_every_step(request: HttpRequest, user) -> bool:
    """Whether this session proved every factor `user` has."""
    from allauth.mfa.utils import is_mfa_enabled

    return not is_mfa_enabled(user) or saw_second_factor(request, user)


def mark_second_factor_set_up(request: HttpRequest, user) -> None:
    """Record that `user` just gave a code of the authenticator being set up: this session has
    seen the second factor (accounts/forms.py, when the set-up code is right)."""
    record_authentication(request, user, method="mfa", type="totp", set_up=True)


@receiver(user_logged_in, dispatch_uid="coffer-reauth-sign-in")
def _signed_in(sender, request: HttpRequest | None, user, **kwargs) -> None:
    # Any login() sends this signal, allauth's sign-in (after its code step) and any other; one
    # that skipped the second factor opens no window.
    if request is not None and hasattr(request, "session") and passed_every_step(request, user):
        mark_authenticated(request, user, method="password")


def window_seconds() -> int:
    return 60 * settings.COFFER_REAUTH_MINUTES


def has_recent_auth(request: HttpRequest) -> bool:
    """Whether the user proved who they are (signing in, a password, a code) within the window."""
    records = get_authentication_records(request, request.user)
    moments = [
        r["at"]
        for r in records
        if isinstance(r, dict) and r.get("reauthenticated") is True and _is_number(r.get("at"))
    ]
    return bool(moments) and 0 <= time.time() - max(moments) < window_seconds()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def reauth_url(next_path: str) -> str:
    return f"{reverse('reauthenticate')}?{urlencode({'next': next_path})}"


def recent_auth_required(view):
    """Run `view` only if the user gave their password within COFFER_REAUTH_MINUTES; otherwise
    send them to confirm it (an HX-Redirect for htmx) and back to this URL. Put it below
    @signed_in_view: anonymous users are sent to sign in first."""

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
@signed_in_view("GET", "POST")
def reauthenticate(request: HttpRequest) -> HttpResponse:
    next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    if not passed_every_step(request, request.user):
        # This session never saw the second factor: the password alone does not confirm.
        return redirect(f"{reverse('mfa_reauthenticate')}?{urlencode({'next': next_url})}")
    form = ReauthenticateForm(request.POST if request.method == "POST" else None, request=request)
    if request.method == "POST" and form.is_valid():
        mark_authenticated(request)
        return redirect(next_url)
    context = {
        "form": form,
        "next": next_url,
        "minutes": settings.COFFER_REAUTH_MINUTES,
        "has_two_factor": _has_two_factor(request.user),
        # An account made through single sign-on has no password: it confirms by signing in
        # with the provider again (a fresh sign-in restarts the window; prompt=login asks the
        # provider to check who it is rather than answer from its own session).
        "has_password": _has_password(request.user),
    }
    return render(request, "registration/reauthenticate.html", context)


def _has_password(user) -> bool:
    return user.has_usable_password()


def _has_two_factor(user) -> bool:
    from allauth.mfa.utils import is_mfa_enabled

    return is_mfa_enabled(user)
