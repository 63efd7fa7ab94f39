from __future__ import annotations

from allauth.account import views as account_views
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path

from accounts.views import account
from api.views import healthz
from workspaces.reauth import reauthenticate, recent_auth_required

handler404 = "api.views.page_not_found"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Sudo mode has one page (workspaces/reauth.py); it also answers allauth's own
    # "account_reauthenticate", so two-factor settings and access keys ask the same way.
    path("accounts/reauthenticate/", reauthenticate, name="reauthenticate"),
    path("accounts/reauthenticate/", reauthenticate, name="account_reauthenticate"),
    # The short names the rest of Coffer (and Django's conventions) use for allauth's pages.
    path("accounts/login/", account_views.login, name="login"),
    path("accounts/logout/", account_views.logout, name="logout"),
    path("accounts/password/change/", account_views.password_change, name="password_change"),
    path("accounts/password/reset/", account_views.password_reset, name="password_reset"),
    # Changing the email needs sudo mode: the address receives the password reset links.
    path(
        "accounts/email/",
        login_required(recent_auth_required(account_views.email)),
        name="account_email",
    ),
    # allauth's two-factor overview is the Account page (password, email and two-factor).
    path("accounts/2fa/", account, name="mfa_index"),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("api.urls")),
    path("healthz", healthz, name="healthz"),
    path("", include("accounts.urls")),
    path("w/<slug:slug>/tokens/access-keys/", include("access.urls")),
    path("w/<slug:slug>/tokens/workload-identities/", include("identities.urls")),
    path("w/<slug:slug>/tokens/import/", include("imports.urls")),
    path("w/<slug:slug>/tokens/activity/", include("audit.urls")),
    path("w/<slug:slug>/tokens/", include("tokens.urls")),
    path("w/<slug:slug>/", include("notifications.urls")),
    path("", include("workspaces.urls")),
]
