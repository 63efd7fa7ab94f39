from __future__ import annotations

from django.urls import path

from api import feed, oidc, value, views

app_name = "api"

urlpatterns = [
    path("resolve", views.resolve, name="resolve"),
    path("values", feed.values, name="values"),
    path("values/<str:name>", value.value, name="value"),
    path("auth/oidc", oidc.exchange, name="oidc_exchange"),
    path("openapi.json", views.openapi, name="openapi"),
]
