"""Django admin for workload identities: read-only, except deleting (through
`delete_identity`, so the audit trail records who did it). Credentials are never listed."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from identities.models import WorkloadIdentity
from lib.admin import staff_user

SHOWN_FIELDS = (
    "name",
    "workspace",
    "issuer",
    "audience",
    "conditions",
    "environment",
    "product",
    "app",
    "description",
    "allowed_networks",
    "created_at",
    "created_by",
    "expires_at",
    "last_exchanged_at",
    "exchange_count",
)


@admin.register(WorkloadIdentity)
class WorkloadIdentityAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "workspace",
        "issuer",
        "environment",
        "expires_at",
        "last_exchanged_at",
        "exchange_count",
    ]
    list_filter = ["workspace"]
    search_fields = ["name", "issuer", "workspace__slug"]
    list_select_related = ["workspace", "environment"]
    fields = SHOWN_FIELDS
    readonly_fields = SHOWN_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # added on the Workload identities tab, behind sudo mode

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: WorkloadIdentity) -> None:
        obj.delete_identity(by=staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WorkloadIdentity]) -> None:
        for identity in queryset.select_related("workspace", "environment", "product", "app"):
            identity.delete_identity(by=staff_user(request))
