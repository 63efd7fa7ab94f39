"""The Activity tab's filter, validated: a bad value is named in a message, never an error page."""

from __future__ import annotations

from django import forms
from django.http import QueryDict

from audit.models import AuditEventQuerySet, AuditKind


class ActivityFilterForm(forms.Form):
    kind = forms.ChoiceField(
        label="Show",
        required=False,
        choices=[("", "All activity"), *AuditKind.choices],
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    def __init__(self, data: QueryDict) -> None:
        super().__init__(data, auto_id="filter_%s")
        self.is_valid()

    @property
    def values(self) -> dict:
        """The valid, non-default filters (what the URL should carry)."""
        kind = "" if self.errors else self.cleaned_data.get("kind", "")
        return {"kind": kind} if kind else {}

    @property
    def kind_label(self) -> str:
        kind = self.values.get("kind")
        return AuditKind(kind).label if kind else ""

    @property
    def problem(self) -> str:
        """What was wrong with the query string, for the page to say; "" when nothing."""
        if "kind" not in self.errors:
            return ""
        given = str(self.data.get("kind", ""))[:40]
        kinds = ", ".join(label for _value, label in AuditKind.choices)
        return f"“{given}” is not a kind of activity ({kinds}). Showing all activity."

    def apply(self, events: AuditEventQuerySet) -> AuditEventQuerySet:
        return events.of_kind(self.values.get("kind"))
