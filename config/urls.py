from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from api.views import healthz
from workspaces.reauth import reauthenticate

handler404 = "api.views.page_not_found"

admin.site.site_header = "Coffer administration"
admin.site.site_title = "Coffer admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/reauthenticate/", reauthenticate, name="reauthenticate"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("api.urls")),
    path("healthz", healthz, name="healthz"),
    path("w/<slug:slug>/tokens/access-keys/", include("access.urls")),
    path("w/<slug:slug>/tokens/import/", include("imports.urls")),
    path("w/<slug:slug>/tokens/", include("tokens.urls")),
    path("w/<slug:slug>/", include("notifications.urls")),
    path("", include("workspaces.urls")),
]
