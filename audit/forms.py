"""Activity's filters, validated: a bad value is named in a message and left out, never an
error page. The same filters choose what an export holds."""

from __future__ import annotations

import datetime as dt
from typing import cast

from django import forms
from django.http import QueryDict

from audit.models import KEY_MAX_LENGTH, AuditEventQuerySet, AuditKind
from audit.wording import EXPORT_FORMAT_NAMES

FILTERS = ("kind", "actor", "token", "since", "until")


class ActivityFilterForm(forms.Form):
    kind = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=[("", "All activity"), *AuditKind.choices],
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    actor = forms.ChoiceField(
        label="Who",
        required=False,
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    token = forms.CharField(
        label="Token key",
        required=False,
        max_length=KEY_MAX_LENGTH,
        widget=forms.TextInput(
            attrs={
                "class": "form-control font-monospace",
                "autocomplete": "off",
                "spellcheck": "false",
                "autocapitalize": "off",
            }
        ),
    )
    since = forms.DateField(
        label="From",
        required=False,
        widget=forms.DateInput(attrs={"type": "date", "class": "form-control"}),
    )
    until = forms.DateField(
        label="To",
        required=False,
        widget=forms.DateInput(attrs={"type": "date", "class": "form-control"}),
    )

    def __init__(self, data: QueryDict, *, actors: list[str]) -> None:
        """`actors`: the names the workspace's events were recorded under (the Who choices)."""
        super().__init__(data, auto_id="filter_%s")
        choices = [("", "Everyone"), *((name, name) for name in actors)]
        given = str(data.get("actor", ""))
        if given and given not in actors and len(given) <= 150:
            choices.append((given, given))  # a name with no event yet: no events, not an error
        cast(forms.ChoiceField, self.fields["actor"]).choices = choices
        self.is_valid()

    def clean(self) -> dict:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", forms.ValidationError("ends before it starts", code="order"))
        return data

    @property
    def values(self) -> dict[str, str]:
        """The valid, non-empty filters, as the URL carries them."""
        cleaned = getattr(self, "cleaned_data", {})
        values = {}
        for name in FILTERS:
            if name in self.errors:
                continue
            value = cleaned.get(name)
            if isinstance(value, dt.date):
                value = value.isoformat()
            if value:
                values[name] = str(value).strip()
        return values

    @property
    def problems(self) -> list[str]:
        """What was wrong with the query string, one sentence each, saying what the page does
        instead (that filter is left out)."""
        problems = []
        for name in FILTERS:
            if name not in self.errors:
                continue
            given = str(self.data.get(name, ""))[:40]
            label = self.fields[name].label
            if name == "kind":
                kinds = ", ".join(label for _value, label in AuditKind.choices)
                problems.append(
                    f"“{given}” is not a kind of activity ({kinds}). Showing all activity."
                )
            elif self.has_error(name, code="order"):
                since = str(self.data.get("since", ""))[:40]
                problems.append(
                    f"“To” ({given}) is before “From” ({since}). Showing events from {since} on."
                )
            elif name in ("since", "until"):
                problems.append(
                    f"“{given}” is not a date for “{label}” (use YYYY-MM-DD, e.g. 2026-12-31). "
                    "That date is left out."
                )
            elif name == "token":
                problems.append(
                    f"A Token Key has at most {KEY_MAX_LENGTH} characters. "
                    "Showing events about every token."
                )
            else:
                problems.append(f"“{given}” is not a choice for “{label}”. Showing everyone.")
        return problems

    @property
    def description(self) -> str:
        """ "Tokens by olivia about DB_URL from 2026-12-01": the filters in words ("" if none)."""
        values = self.values
        words = []
        if kind := values.get("kind"):
            words.append(str(AuditKind(kind).label))
        if actor := values.get("actor"):
            words.append(f"by {actor}")
        if token := values.get("token"):
            words.append(f"about {token}")
        if since := values.get("since"):
            words.append(f"from {since}")
        if until := values.get("until"):
            words.append(f"to {until}")
        return " ".join(words)

    def apply(self, events: AuditEventQuerySet) -> AuditEventQuerySet:
        values, cleaned = self.values, getattr(self, "cleaned_data", {})
        return (
            events.of_kind(values.get("kind"))
            .by_actor(values.get("actor"))
            .about_token(values.get("token"))
            .between(
                cleaned.get("since") if "since" in values else None,
                cleaned.get("until") if "until" in values else None,
            )
        )


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=list(EXPORT_FORMAT_NAMES.items()))

    @property
    def problem(self) -> str:
        given = str(self.data.get("format", ""))[:20]
        names = " or ".join(f"{code} ({name})" for code, name in EXPORT_FORMAT_NAMES.items())
        if not given:
            return f"Choose a format for the export: {names}."
        return f"“{given}” is not an export format: use {names}."
