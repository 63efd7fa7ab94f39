from __future__ import annotations

from django.urls import path

from access import views

app_name = "access"

urlpatterns = [
    path("", views.access_key_list, name="list"),
    path("new/", views.access_key_create, name="create"),
    path("<int:pk>/revoke/", views.access_key_revoke, name="revoke"),
    path("<int:pk>/delete/", views.access_key_delete, name="delete"),
]
