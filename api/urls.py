from __future__ import annotations

from django.urls import path

from api import views

app_name = "api"

urlpatterns = [
    path("resolve", views.resolve, name="resolve"),
    path("values", views.values, name="values"),
    path("openapi.json", views.openapi, name="openapi"),
]
