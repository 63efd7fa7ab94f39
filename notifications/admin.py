"""Django admin for webhooks and their deliveries: read-only, for looking into a delivery
problem. Webhooks are added, changed and rotated on the Webhooks page (the signing secret is
shown there once); here the secret appears only as its prefix, never its ciphertext."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from lib.admin import on_own_admin_pages
from notifications.models import Webhook, WebhookAttempt, WebhookDelivery


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewed, never added or changed here. Deleted only as part of deleting what owns it (a
    workspace), which the admin must not refuse because of these rows."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if on_own_admin_pages(self, request):
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyAdmin):
    list_display = ["url", "workspace", "active", "secret_prefix", "created_at"]
    list_filter = ["active", "workspace"]
    search_fields = ["url", "description", "workspace__slug", "workspace__name"]
    list_select_related = ["workspace"]
    fields = readonly_fields = (
        "workspace",
        "url",
        "description",
        "events",
        "active",
        "paused_reason",
        "secret_prefix",
        "created_at",
        "created_by",
    )


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = readonly_fields = (
        "attempted_at",
        "status_code",
        "duration_ms",
        "error",
        "response_excerpt",
    )
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["event_type", "webhook", "status", "attempt_count", "created_at"]
    list_filter = ["status", "event_type"]
    search_fields = ["webhook__url", "event_id"]
    list_select_related = ["webhook"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "webhook",
        "event_id",
        "event_type",
        "status",
        "attempt_count",
        "first_attempt_at",
        "next_attempt_at",
        "created_at",
        "redelivery_of",
        "body",
    )
    inlines = [WebhookAttemptInline]
