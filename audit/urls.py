from __future__ import annotations

from django.urls import path

from audit import views

app_name = "audit"

# Mounted at w/<slug>/tokens/activity/ (config/urls.py): the address Activity always had.
urlpatterns = [
    path("", views.activity, name="activity"),
    path("export/", views.activity_export, name="export"),
]
