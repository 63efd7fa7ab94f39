"""Forms for sign-in, sign-up from an invitation, two-factor codes and invitations."""

from __future__ import annotations

from typing import Any

from allauth.account.forms import LoginForm as AllauthLoginForm
from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.mfa.base.forms import AuthenticateForm as AllauthAuthenticateForm
from allauth.mfa.base.forms import ReauthenticateForm as AllauthReauthenticateForm
from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest

from workspaces.models import Role


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
