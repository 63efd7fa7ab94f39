"""Coffer's adapters for django-allauth: who may sign up, our messages, encrypted 2FA secrets.

allauth does sign-in, sign-up, password reset and two-factor (TOTP and recovery codes); these
adapters are the few places where Coffer's rules differ from its defaults.
"""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from django.conf import settings
from django.http import HttpRequest

from tokens import crypto


class AccountAdapter(DefaultAccountAdapter):
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        # The wording Django's own sign-in form used, which people (and tests) know.
        "username_password_mismatch": (
            "Please enter a correct username and password. Note that both fields may be "
            "case-sensitive."
        ),
        "email_taken": "Choose another email address.",
        "username_taken": "Choose another username.",
    }

    # Signing in and out show the page they lead to; a toast saying so is noise.
    SILENT_MESSAGES = frozenset(
        {"account/messages/logged_in.txt", "account/messages/logged_out.txt"}
    )

    def add_message(self, request, level, message_template=None, *args, **kwargs) -> None:
        if message_template in self.SILENT_MESSAGES:
            return
        super().add_message(request, level, message_template, *args, **kwargs)

    def save_user(self, request, user, form, commit=True):
        # allauth records the new account's address itself (accounts/signals.py must not).
        user._signing_up_with_allauth = True
        return super().save_user(request, user, form, commit=commit)

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        """allauth's open sign-up page is off unless COFFER_OPEN_SIGNUP is on; invitations have
        their own sign-up (accounts/views.py)."""
        return settings.COFFER_OPEN_SIGNUP


class MFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and recovery-code seeds are stored encrypted (tokens/crypto.py)."""

    def encrypt(self, text: str) -> str:
        return crypto.encrypt_account_secret(text)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt_account_secret(encrypted_text)
