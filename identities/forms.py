"""Forms of the Workload identities tab: add an identity, confirm a deletion.

The rules live on the model (`WorkloadIdentity.objects.create_identity`, `condition_errors`,
`issuer_errors`); the context, expiry and address fields are the Access keys form's. Claim
conditions are written one per line as `claim = pattern`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from access.forms import CONTROL, EXPIRY_NEVER, AccessKeyForm, ConfirmNameForm
from identities.models import (
    AUDIENCE_MAX_LENGTH,
    ISSUER_MAX_LENGTH,
    MAX_CONDITIONS,
    PATTERN_MAX_LENGTH,
    PRESETS,
    WorkloadIdentity,
)

CONDITIONS_MAX_LENGTH = MAX_CONDITIONS * (PATTERN_MAX_LENGTH + 70)
EXAMPLE_VALUES = {
    "repository": "my-org/my-repo",
    "project_path": "my-group/my-project",
    "ref": "refs/heads/main",
    "environment": "production",
}


def parse_conditions(text: str) -> list[dict[str, str]] | None:
    """[{"claim", "pattern"}] from `claim = pattern` lines (blank lines ignored), or None when
    a line has no `=`."""
    conditions = []
    for line in text.splitlines():
        if not line.strip():
            continue
        claim, equals, pattern = line.partition("=")
        if not equals:
            return None
        conditions.append({"claim": claim.strip(), "pattern": pattern.strip()})
    return conditions


def preset_initial(preset: str) -> dict[str, str]:
    """The issuer and the usual claims of a preset (`github`, `gitlab`), for a new form."""
    chosen = PRESETS.get(preset)
    if chosen is None:
        return {}
    lines = [
        f"{claim} = {EXAMPLE_VALUES[claim]}" for claim in chosen.claims if claim in EXAMPLE_VALUES
    ]
    return {"issuer": chosen.issuer, "conditions": "\n".join(lines)}


class WorkloadIdentityForm(AccessKeyForm):
    issuer = forms.CharField(
        label="Issuer URL",
        max_length=ISSUER_MAX_LENGTH,
        help_text="The token's iss, e.g. https://token.actions.githubusercontent.com. Coffer "
        "fetches its keys from there (https and public addresses only).",
        widget=forms.TextInput(attrs={**CONTROL, "spellcheck": "false", "autocomplete": "off"}),
    )
    audience = forms.CharField(
        label="Audience",
        max_length=AUDIENCE_MAX_LENGTH,
        help_text="The token's aud: what the CI job asks its token for, e.g. this Coffer's URL.",
        widget=forms.TextInput(attrs={**CONTROL, "spellcheck": "false", "autocomplete": "off"}),
    )
    conditions = forms.CharField(
        label="Claim conditions",
        max_length=CONDITIONS_MAX_LENGTH,
        help_text="One per line, claim = pattern; all must match. A pattern is exact and "
        "case-sensitive; * matches within one path segment (no /), ** across them, ? one "
        "character. E.g. ref = refs/heads/main.",
        widget=forms.Textarea(
            attrs={"class": "form-control font-monospace", "rows": 4, "spellcheck": "false"}
        ),
    )

    field_order = [
        "name",
        "description",
        "issuer",
        "audience",
        "conditions",
        "environment",
        "product",
        "app",
        "expiry",
        "expiry_date",
        "allowed_addresses",
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.order_fields(self.field_order)
        self.fields["name"].help_text = "Unique in the workspace; jobs name it as workspace/name."
        self.fields["environment"].help_text = "Its jobs resolve tokens of this environment only."
        self.fields["expiry"].initial = EXPIRY_NEVER
        self.fields["expiry_date"].help_text = "The identity stops working at 00:00 UTC that day."
        self.fields["audience"].initial = settings.COFFER_BASE_URL.rstrip("/")

    def save(self, *, by: Any) -> WorkloadIdentity | None:  # type: ignore[override]
        """The new identity, or None with the model's messages added as field errors."""
        data = self.cleaned_data
        conditions = parse_conditions(data["conditions"])
        if conditions is None:
            self.add_error("conditions", "Write each condition as claim = pattern.")
            return None
        try:
            return WorkloadIdentity.objects.create_identity(
                **self.bound_arguments(),
                issuer=data["issuer"],
                audience=data["audience"],
                conditions=conditions,
                by=by,
            )
        except ValidationError as refused:
            self.add_model_errors(refused)
            return None


class DeleteIdentityForm(ConfirmNameForm):
    """Deleting ends every credential at once: the owner types the name to confirm."""

    noun = "identity"
