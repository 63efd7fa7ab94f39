from __future__ import annotations

from django.urls import path

from tokens import bulk, compare, config_check, history, views

app_name = "tokens"

urlpatterns = [
    path("", views.token_list, name="list"),
    path("compare/", compare.compare, name="compare"),
    path("check/", config_check.config_check, name="check"),
    path("new/", views.token_create, name="create"),
    path("new/key-hint/", views.key_hint, name="key_hint"),
    path("bulk/", bulk.bulk_action, name="bulk"),
    path("<uuid:pk>/edit/", views.token_edit, name="edit"),
    path("<uuid:pk>/revoke/", views.token_revoke, name="revoke"),
    path("<uuid:pk>/delete/", views.token_delete, name="delete"),
    path("<uuid:pk>/", history.token_detail, name="detail"),
    path("<uuid:pk>/restore/", history.version_restore, name="restore"),
    path("<uuid:pk>/destroy-version/", history.version_destroy, name="destroy_version"),
]
