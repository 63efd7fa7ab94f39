from __future__ import annotations

from django.urls import path

from api import oidc, views

app_name = "api"

urlpatterns = [
    path("resolve", views.resolve, name="resolve"),
    path("values", views.values, name="values"),
    path("auth/oidc", oidc.exchange, name="oidc_exchange"),
    path("openapi.json", views.openapi, name="openapi"),
]
