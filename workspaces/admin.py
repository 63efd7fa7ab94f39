from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.contrib.admin.options import ActionLocation

from lib.admin import on_own_admin_pages
from workspaces.models import App, Environment, Membership, Product, Workspace

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin  # what the mixins below are mixed into
else:
    _ModelAdmin = object


class WorkspaceFixedOnChange(_ModelAdmin):
    """An existing row stays in its workspace: tokens' scopes point at it by id."""

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "workspace"] if obj is not None else fields


class NoBulkDelete(_ModelAdmin):
    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)  # would skip the per-object rules and the trail
        return actions


class MembershipInline(admin.TabularInline):
    """Shown for reference; members change on the Membership pages, which keep the last-owner
    rule and record each change in the workspace's audit trail."""

    model = Membership
    extra = 0
    readonly_fields = ("user", "role", "created_at")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    date_hierarchy = "created_at"
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def save_model(self, request, obj, form, change) -> None:
        # Deleting one is recorded by the admin's own log (its audit trail goes with it).
        obj.save_audited(by=request.user)


class MembershipAdminForm(forms.ModelForm):
    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        role = cleaned.get("role")
        if self.instance.pk and role and (blocker := self.instance.role_change_blocker(role)):
            self.add_error("role", blocker)
        return cleaned


@admin.register(Membership)
class MembershipAdmin(NoBulkDelete, WorkspaceFixedOnChange, admin.ModelAdmin):
    form = MembershipAdminForm
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name", "workspace__slug"]
    list_select_related = ["user", "workspace"]
    autocomplete_fields = ["user", "workspace"]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            obj.change_role(obj.role, by=request.user)  # the form checked the last owner
        else:
            obj.create_audited(by=request.user)

    def delete_model(self, request, obj) -> None:
        obj.remove(by=request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and on_own_admin_pages(self, request) and obj.removal_blocker():
            return False
        return super().has_delete_permission(request, obj)


class CatalogItemAdmin(NoBulkDelete, WorkspaceFixedOnChange, admin.ModelAdmin):
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

    def save_model(self, request, obj, form, change) -> None:
        obj.save_audited(by=request.user)

    def delete_model(self, request, obj) -> None:
        obj.delete_audited(by=request.user)


admin.site.register(Environment, CatalogItemAdmin)
admin.site.register(Product, CatalogItemAdmin)
admin.site.register(App, CatalogItemAdmin)
