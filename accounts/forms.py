"""Forms for sign-in, sign-up from an invitation, two-factor codes and invitations."""

from __future__ import annotations

from typing import Any

from allauth.account.forms import LoginForm as AllauthLoginForm
from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.mfa.base.forms import AuthenticateForm as AllauthAuthenticateForm
from allauth.mfa.base.forms import ReauthenticateForm as AllauthReauthenticateForm
from allauth.mfa.totp.forms import ActivateTOTPForm as AllauthActivateTOTPForm
from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from keys import crypto
from workspaces.models import Role, Workspace


class LoginForm(AllauthLoginForm):
    """allauth's sign-in form with the field named `username`, as Django's was.

    Password managers, django-axes (which counts failures per username and address) and every
    script that signs in keep working with the same field names.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields.pop("login")
        field.widget.attrs.pop("placeholder", None)
        field.widget.attrs["autofocus"] = True
        self.fields["password"].help_text = ""  # the page links "Forgot your password?"
        self.fields["username"] = field
        self.order_fields(["username", "password"])

    def clean_username(self) -> str:
        return self.cleaned_data["username"].strip()

    def clean(self) -> dict[str, Any]:
        if "username" in self.cleaned_data:
            self.cleaned_data["login"] = self.cleaned_data["username"]
        return super().clean()


class SignupForm(AllauthSignupForm):
    """Username, email, password twice. From an invitation the email is the invited one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.pop("placeholder", None)


def _axes_credentials(user) -> dict[str, str]:
    return {"username": user.get_username()}


class _ThrottledCodeMixin:
    """A wrong two-factor code counts as a failed sign-in for django-axes, like a wrong
    password: five in a row lock the username from that address (the 429 "Sign-in paused" page),
    and a locked pair cannot try codes either."""

    user: Any

    def clean_code(self) -> str:
        from allauth.core import context

        request: HttpRequest = context.request
        credentials = _axes_credentials(self.user)
        if not AxesProxyHandler.is_allowed(request, credentials):
            request.axes_locked_out = True  # type: ignore[attr-defined]
            request.axes_credentials = credentials  # type: ignore[attr-defined]
            raise forms.ValidationError("Too many failed sign-ins. Wait and try again.")
        try:
            return super().clean_code()  # type: ignore[misc]
        except forms.ValidationError:
            user_login_failed.send(sender=type(self), credentials=credentials, request=request)
            raise


class AuthenticateForm(_ThrottledCodeMixin, AllauthAuthenticateForm):
    pass


class ReauthenticateForm(_ThrottledCodeMixin, AllauthReauthenticateForm):
    pass


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=254)
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace

    def clean_email(self) -> str:
        """Refuse what the owner can already see: a member's address (listed on Members) or a
        pending invitation. Whether an account exists elsewhere is never told."""
        email = self.cleaned_data["email"].strip()
        if self.workspace.memberships.filter(user__email__iexact=email).exists():
            raise forms.ValidationError(
                f"A member of {self.workspace.name} already uses this address."
            )
        if self.workspace.invitations.pending().filter(email__iexact=email).exists():
            raise forms.ValidationError(
                "This address has a pending invitation. Resend it from the list instead."
            )
        return email


class InvitationSignupForm(forms.Form):
    """A new account from an invitation: the email is the invited address, not asked again."""

    username = forms.CharField(
        label="Username",
        max_length=150,
        help_text="Letters, digits and @ . + - _ only. You sign in with it.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="Password (again)",
        strip=False,
        max_length=4096,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_username(self) -> str:
        User = get_user_model()
        username = self.cleaned_data["username"].strip()
        User.username_validator(username)
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("That username is taken. Choose another.")
        return username

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ. Type the same one twice.")
        elif first and cleaned.get("username"):
            User = get_user_model()
            try:
                password_validation.validate_password(first, User(username=cleaned["username"]))
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned

    def save(self, *, email: str):
        """Create the account (with the invited email as its address for password resets)."""
        User = get_user_model()
        try:
            with transaction.atomic():
                user = User.objects.create_user(
                    username=self.cleaned_data["username"],
                    email=email,
                    password=self.cleaned_data["password1"],
                )
        except IntegrityError:
            raise ValidationError("That username was taken meanwhile. Choose another.") from None
        return user  # accounts/signals.py puts the address in allauth's book


class TwoFactorRequirementForm(forms.Form):
    require_two_factor = forms.BooleanField(
        label="Require two-factor authentication",
        required=False,
        help_text="Members without it are sent to set up an authenticator app first.",
    )


class SSORequirementForm(forms.Form):
    require_sso = forms.BooleanField(
        label="Require single sign-on",
        required=False,
        help_text="Members who signed in with a password are asked to sign in with single "
        "sign-on. Owners may still enter with a password and two-factor (break-glass).",
    )

    def __init__(self, *args: Any, sso_available: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sso_available = sso_available

    def clean_require_sso(self) -> bool:
        required = self.cleaned_data["require_sso"]
        if required and not self.sso_available:
            raise forms.ValidationError(
                "No single sign-on provider is set up on this Coffer: an administrator adds one "
                "first (COFFER_OIDC_SSO_SERVER_URL)."
            )
        return required


PENDING_TOTP_SESSION = "_coffer_pending_totp"


class ActivateTOTPForm(AllauthActivateTOTPForm):
    """allauth keeps the secret being set up in the session in the clear until it is confirmed;
    here it is kept sealed (keys/crypto.py), as the stored one is, so a database copy taken
    during set-up reveals it no more than one taken after."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from allauth.core import context
        from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, generate_totp_secret

        super().__init__(*args, **kwargs)
        session = context.request.session
        session.pop(SECRET_SESSION_KEY, None)  # allauth's clear copy never reaches the store
        sealed = session.get(PENDING_TOTP_SESSION) if self.is_bound else None
        try:
            self.secret = crypto.decrypt_account_secret(sealed) if sealed else ""
        except crypto.CryptoError:
            self.secret = ""
        if not self.secret:
            self.secret = generate_totp_secret()
            session[PENDING_TOTP_SESSION] = crypto.encrypt_account_secret(self.secret)

    def clean_code(self) -> str:
        from allauth.core import context

        from workspaces.reauth import mark_second_factor_set_up

        code = super().clean_code()
        context.request.session.pop(PENDING_TOTP_SESSION, None)  # confirmed: stored from now on
        mark_second_factor_set_up(context.request, self.user)
        return code
