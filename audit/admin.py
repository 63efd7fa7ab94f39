"""The audit trail in the Django admin: read-only, each event as its sentence."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent
from audit.wording import sentence
from lib.admin import on_own_admin_pages


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: nobody adds, edits or deletes audit events here."""

    list_display = ["created_at", "action", "workspace", "token_key", "actor_label", "changed"]
    list_filter = ["action", "workspace"]
    search_fields = ["token_key", "actor_name", "workspace__slug", "workspace__name"]
    list_select_related = ["workspace"]
    date_hierarchy = "created_at"
    readonly_fields = ["sentence"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        # Never on their own pages; but deleting a workspace takes its trail with it, and the
        # admin must not refuse that deletion because of these events.
        if on_own_admin_pages(self, request):
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="Actor", ordering="actor_name")
    def actor_label(self, event: AuditEvent) -> str:
        return event.actor_name

    @admin.display(description="Changed")
    def changed(self, event: AuditEvent) -> str:
        return ", ".join(event.detail.get("changed", []))

    @admin.display(description="What happened")
    def sentence(self, event: AuditEvent) -> str:
        return sentence(event)
