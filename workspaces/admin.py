from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import ActionLocation

from workspaces.models import App, Environment, Membership, Product, Workspace


def on_own_admin_pages(model_admin: admin.ModelAdmin, request) -> bool:
    """Whether `request` is for this model's own admin pages, not a cascade from another's."""
    url_name = getattr(request.resolver_match, "url_name", "") or ""
    return url_name.startswith(f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_")


class WorkspaceFixedOnChange:
    """An existing row stays in its workspace: tokens' scopes point at it by id."""

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "workspace"] if obj is not None else fields


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    date_hierarchy = "created_at"
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(WorkspaceFixedOnChange, admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name", "workspace__slug"]
    list_select_related = ["user", "workspace"]
    autocomplete_fields = ["user", "workspace"]


class CatalogItemAdmin(WorkspaceFixedOnChange, admin.ModelAdmin):
    list_display = ["name", "slug", "workspace", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["name", "slug", "workspace__name", "workspace__slug"]
    list_select_related = ["workspace"]
    autocomplete_fields = ["workspace"]

    def has_delete_permission(self, request, obj=None) -> bool:
        # Same rule as the UI: an item tokens use is not deleted on its own (their scope would
        # change). Deleting its whole workspace deletes the tokens too, so that stays allowed.
        if obj is not None and on_own_admin_pages(self, request) and obj.deletion_blocker():
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)  # would skip the per-item check above
        return actions


admin.site.register(Environment, CatalogItemAdmin)
admin.site.register(Product, CatalogItemAdmin)
admin.site.register(App, CatalogItemAdmin)
