"""Django admin for access keys: read-only, except revoking and deleting.

Keys are made on the Access keys tab or with `manage.py create_access_key` (the only places the
whole key is shown, once); their hash is never displayed. Revoke and delete go through
`key.revoke` and `key.delete_key`, so the audit trail records who did it.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from access.models import AccessKey
from lib.admin import staff_user
from tokens.usage import ShowsUsageAdmin

SHOWN_FIELDS = (
    "name",
    "identifier_label",
    "workspace",
    "environment",
    "product",
    "app",
    "description",
    "allowed_networks",
    "status_label",
    "created_at",
    "created_by",
    "expires_at",
    "revoked_at",
    "revoked_by",
    "last_used_at",
    "last_used_from",
    "use_count",
)


@admin.register(AccessKey)
class AccessKeyAdmin(ShowsUsageAdmin, admin.ModelAdmin):
    list_display = [
        "name",
        "identifier_label",
        "workspace",
        "environment",
        "product",
        "app",
        "status_label",
        "expires_at",
        "last_used_at",
        "use_count",
    ]
    list_filter = ["workspace"]
    search_fields = ["name", "identifier", "description", "workspace__slug"]
    list_select_related = ["workspace", "environment", "product", "app"]
    fields = SHOWN_FIELDS
    readonly_fields = SHOWN_FIELDS
    actions = ["revoke_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the whole key is shown once: the Access keys tab or create_access_key

    def has_change_permission(self, request: HttpRequest, obj: AccessKey | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: AccessKey) -> None:
        obj.delete_key(by=staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AccessKey]) -> None:
        for key in queryset.select_related("workspace", "environment", "product", "app"):
            key.delete_key(by=staff_user(request))

    @admin.action(description="Revoke selected access keys", permissions=["delete"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[AccessKey]) -> None:
        revoked, already = [], []
        for key in queryset.select_related("workspace", "environment", "product", "app"):
            try:
                key.revoke(by=staff_user(request))
            except ValidationError:
                already.append(key.name)
            else:
                revoked.append(key.name)
        if revoked:
            self.message_user(
                request,
                f"Revoked {len(revoked)} access key(s): {', '.join(revoked)}.",
                messages.SUCCESS,
            )
        if already:
            self.message_user(request, f"Already revoked: {', '.join(already)}.", messages.INFO)

    @admin.display(description="Identifier", ordering="identifier")
    def identifier_label(self, key: AccessKey) -> str:
        return f"{key.identifier}…"

    @admin.display(description="Status")
    def status_label(self, key: AccessKey) -> str:
        return key.display_status
