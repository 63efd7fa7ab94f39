from __future__ import annotations

from django.urls import path

from identities import views

app_name = "identities"

urlpatterns = [
    path("", views.identity_list, name="list"),
    path("new/", views.identity_create, name="create"),
    path("<int:pk>/delete/", views.identity_delete, name="delete"),
]
