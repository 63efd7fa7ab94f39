"""Single sign-on for people: one OpenID Connect provider through django-allauth.

allauth runs the flow (authorization code with PKCE, the ID token checked against the
provider's keys); this adapter holds Coffer's rules for the first sign-in of a provider account:

- It joins an existing Coffer account only through an address the provider marks
  `email_verified=true`, and only when COFFER_OIDC_SSO_LINK_BY_EMAIL says the provider is
  trusted to vouch for addresses (allauth's email authentication; it connects the provider
  account, so later sign-ins no longer depend on the address). Any other match is refused with
  a page that says why: a provider account must never take over an account it does not own.
- It creates a new account only for a verified address with a pending invitation (the person
  then accepts it on the invitation page), or when open sign-up (COFFER_OPEN_SIGNUP) is on.

Two-factor: a provider sign-in is one factor, whatever the provider did. An account with an
authenticator app still gives its code after the provider (allauth's login stages), so the
workspace "require two-factor" rule and sudo mode read the same records as for a password.
"""

from __future__ import annotations

from allauth.account.models import EmailAddress
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter, _build_apps_from_settings
from allauth.socialaccount.models import SocialLogin
from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import render

from accounts.models import Invitation


def verified_emails(sociallogin: SocialLogin) -> list[str]:
    """The addresses the provider says it verified (email_verified=true)."""
    return [address.email for address in sociallogin.email_addresses if address.verified]


def _refuse(request: HttpRequest, reason: str) -> ImmediateHttpResponse:
    return ImmediateHttpResponse(
        render(request, "account/sso_refused.html", {"reason": reason}, status=403)
    )


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request: HttpRequest | None, provider=None, client_id=None) -> list:
        """The provider comes from settings only (the admin's Social applications page is
        removed: it would keep the client secret in the database), so allauth's look-up of
        database apps, a query on every sign-in page, is skipped. (allauth's own helper that
        reads the settings; the version is pinned below 66 in pyproject.toml.)"""
        apps = _build_apps_from_settings(provider=provider, client_id=client_id)
        return [app for provider_apps in apps.values() for app in provider_apps]

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Runs after allauth looked the provider account up (by its own link, then, if trusted,
        by verified address). Not found, yet its address belongs to an account: refuse."""
        super().pre_social_login(request, sociallogin)
        if sociallogin.is_existing:
            return
        addresses = [address.email for address in sociallogin.email_addresses]
        if addresses and EmailAddress.objects.filter(email__iexact=addresses[0]).exists():
            raise _refuse(
                request,
                "A Coffer account already uses this email address, and single sign-on may only "
                "join an existing account when the provider has verified the address and this "
                "Coffer trusts it to (an administrator's setting). Sign in with your username and "
                "password instead, or ask an administrator.",
            )

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        """A new account needs a verified address: with a pending invitation for it, or with
        open sign-up. Otherwise allauth shows "Sign-up is closed"."""
        emails = verified_emails(sociallogin)
        if not emails:
            if sociallogin.email_addresses or settings.COFFER_OPEN_SIGNUP:
                raise _refuse(
                    request,
                    "Your identity provider did not confirm that your email address is verified, "
                    "so Coffer cannot create an account for it. Ask an administrator.",
                )
            return False
        if settings.COFFER_OPEN_SIGNUP:
            return True
        return any(Invitation.objects.pending().filter(email__iexact=e).exists() for e in emails)

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form=None):
        # allauth records the provider's (verified) address itself (accounts/signals.py must not).
        assert sociallogin.user is not None  # nosec: allauth made it
        sociallogin.user._signing_up_with_allauth = True
        return super().save_user(request, sociallogin, form)
