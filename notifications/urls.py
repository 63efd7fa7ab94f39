from __future__ import annotations

from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("webhooks/", views.webhook_list, name="webhooks"),
    path("webhooks/new/", views.webhook_create, name="webhook_create"),
    path("webhooks/<uuid:pk>/", views.webhook_deliveries, name="deliveries"),
    path("webhooks/<uuid:pk>/edit/", views.webhook_edit, name="webhook_edit"),
    path("webhooks/<uuid:pk>/rotate-secret/", views.webhook_rotate, name="webhook_rotate"),
    path("webhooks/<uuid:pk>/delete/", views.webhook_delete, name="webhook_delete"),
    path("webhooks/<uuid:pk>/test/", views.webhook_test, name="webhook_test"),
    path(
        "webhooks/<uuid:pk>/deliveries/<uuid:delivery>/redeliver/",
        views.redeliver,
        name="redeliver",
    ),
    path("reminders/", views.reminders, name="reminders"),
    path("reminders/workspace/", views.workspace_reminders, name="workspace_reminders"),
]
