from __future__ import annotations

from django.conf import settings
from django.urls import path

from api import feed, oidc, value, views

app_name = "api"

urlpatterns = [
    path("resolve", views.resolve, name="resolve"),
    # Under ASGI the feed's view is async, so a long poll waits without a thread; under WSGI
    # it is the same view without the wait, run without an event loop per request.
    path(
        "values",
        feed.values if settings.COFFER_WEB_SERVER == "asgi" else feed.values_now,
        name="values",
    ),
    path("values/<str:name>", value.value, name="value"),
    path("auth/oidc", oidc.exchange, name="oidc_exchange"),
    path("openapi.json", views.openapi, name="openapi"),
]
