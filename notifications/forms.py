"""The Webhooks and Reminders pages' forms."""

from __future__ import annotations

from django import forms
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from lib.safe_fetch import UnsafeURL, resolve
from notifications.models import URL_MAX_LENGTH, EventType, Webhook, new_signing_secret
from workspaces.models import Workspace

DEFAULT_EVENTS = [
    EventType.TOKEN_VALUE_CHANGED,
    EventType.TOKEN_REVOKED,
    EventType.TOKEN_DELETED,
    EventType.TOKEN_EXPIRING,
    EventType.TOKEN_EXPIRED,
]


class WebhookForm(forms.ModelForm):
    url = forms.CharField(
        label="Payload URL",
        max_length=URL_MAX_LENGTH,
        help_text="An https:// URL on the internet. Coffer POSTs each event there as signed JSON.",
        widget=forms.URLInput(
            attrs={"placeholder": "https://hooks.example.com/coffer", "spellcheck": "false"}
        ),
    )
    events = forms.MultipleChoiceField(
        label="Events",
        choices=EventType.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one event."},
    )
    active = forms.BooleanField(
        label="Active", required=False, help_text="A paused webhook is sent nothing."
    )

    class Meta:
        model = Webhook
        fields = ["url", "description", "events", "active"]

    def __init__(self, *args, workspace: Workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.instance.workspace = workspace
        if self.instance._state.adding:
            del self.fields["active"]
            self.initial.setdefault("events", [str(e) for e in DEFAULT_EVENTS])

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        try:
            resolve(url)
        except UnsafeURL as refused:
            raise forms.ValidationError(str(refused)) from None
        return url

    @sensitive_variables("secret")
    def save_new(self, *, by) -> tuple[Webhook, str]:
        """Create the webhook; returns it and its signing secret (shown this once)."""
        webhook: Webhook = self.save(commit=False)
        webhook.created_by = by
        secret = new_signing_secret()
        with transaction.atomic():
            webhook.set_secret(secret)
            webhook.save(force_insert=True)
        return webhook, secret

    def save_changes(self) -> Webhook:
        webhook: Webhook = self.save(commit=False)
        if webhook.active:
            webhook.paused_reason = ""
        webhook.save(update_fields=["url", "description", "events", "active", "paused_reason"])
        return webhook


class ReminderPreferenceForm(forms.Form):
    expiry_reminders = forms.BooleanField(
        label="Email me expiry reminders for this workspace", required=False
    )


class WorkspaceRemindersForm(forms.Form):
    reminders_enabled = forms.BooleanField(
        label="Send expiry reminders to this workspace's owners and editors", required=False
    )
