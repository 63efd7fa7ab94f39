from __future__ import annotations

from allauth.socialaccount.models import SocialApp, SocialToken
from django.contrib import admin

from accounts.models import Invitation


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Read-only: invitations are made and revoked on the Members page (audited there). The key
    is never stored; its hash is not shown either."""

    list_display = ["email", "workspace", "role", "status", "invited_by", "sent_at", "expires_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["email", "workspace__name"]
    fields = (
        "workspace",
        "email",
        "role",
        "invited_by",
        "sent_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# Single sign-on is configured from settings (COFFER_OIDC_SSO_*, accounts/sso.py): allauth's
# "Social applications" would keep the provider's client secret in the database in plain text,
# and "Social tokens" are never kept (SOCIALACCOUNT_STORE_TOKENS is off). "Social accounts"
# stay: there an administrator unlinks a person's provider account.
admin.site.unregister(SocialApp)
admin.site.unregister(SocialToken)
