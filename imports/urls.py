from __future__ import annotations

from django.urls import path

from imports import views

app_name = "imports"

urlpatterns = [
    path("", views.import_start, name="start"),
    path("<uuid:pk>/", views.import_preview, name="preview"),
]
