"""The Django admin, signed into the one way: allauth's sign-in with its second factor.

Django's own admin sign-in form checks the password only, so a staff account with two-factor
would get in (and into every workspace page) without its code. Here /admin/login/ sends the
browser to allauth's sign-in and back (`?next=`), as allauth documents (`secure_admin_login`);
the admin's "Change password" is allauth's page (which asks for the current password and mails
the notice); and every change made in the admin (a POST: a membership, a user's flags or
password) needs sudo mode (workspaces/reauth.py), like the same changes on Coffer's pages.
"""

from __future__ import annotations

import functools

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from workspaces.reauth import recent_auth_required


def _changes_need_recent_auth(view):
    sudo_view = recent_auth_required(view)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return view(request, *args, **kwargs)
        return sudo_view(request, *args, **kwargs)

    return wrapper


class CofferAdminSite(admin.AdminSite):
    site_header = "Coffer administration"
    site_title = "Coffer admin"

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        return secure_admin_login(super().login)(request, extra_context)

    def password_change(  # type: ignore[override]  # a redirect, not its form
        self, request: HttpRequest, extra_context=None
    ) -> HttpResponse:
        return redirect("password_change")

    def admin_view(self, view, cacheable: bool = False):
        if view == self.logout:  # signing out (a POST) never waits for a password
            return super().admin_view(view, cacheable)
        return super().admin_view(_changes_need_recent_auth(view), cacheable)
