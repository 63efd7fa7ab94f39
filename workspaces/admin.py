from __future__ import annotations

from django.contrib import admin

from workspaces.models import App, Environment, Membership, Product, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name", "workspace__slug"]
    list_select_related = ["user", "workspace"]
    autocomplete_fields = ["user", "workspace"]


class CatalogItemAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "workspace", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["name", "slug", "workspace__slug"]
    list_select_related = ["workspace"]
    autocomplete_fields = ["workspace"]


admin.site.register(Environment, CatalogItemAdmin)
admin.site.register(Product, CatalogItemAdmin)
admin.site.register(App, CatalogItemAdmin)
