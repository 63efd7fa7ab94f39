"""Helpers for every app's Django admin."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.http import HttpRequest


def staff_user(request: HttpRequest) -> User:
    """Who is making an admin change: every admin page is for a signed-in staff member only
    (AdminSite.admin_view sends anyone else to the login page), so never AnonymousUser."""
    return cast("User", request.user)


def on_own_admin_pages(model_admin: admin.ModelAdmin, request) -> bool:
    """Whether `request` is for this model's own admin pages, not a cascade from another's."""
    url_name = getattr(request.resolver_match, "url_name", "") or ""
    return url_name.startswith(f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_")
