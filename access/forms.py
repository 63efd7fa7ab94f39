"""Forms of the Access keys tab: create a key, confirm a deletion.

The rules live on the model (`AccessKey.objects.create_key`, `network_errors`, `expiry_errors`);
the form turns what the browser sent into its arguments and the model's messages into field
errors. Nothing secret is ever posted: the key is made on the server and shown once.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.exceptions import ValidationError

from access.context import MAX_NETWORKS, NAME_MAX_LENGTH, NETWORK_MAX_LENGTH
from access.models import DEFAULT_EXPIRY_DAYS, EXPIRY_PRESETS, AccessKey
from tokens.models import DESCRIPTION_MAX_LENGTH
from workspaces.models import Workspace, WorkspaceCatalogItem

if TYPE_CHECKING:
    from django.contrib.auth.models import User

EXPIRY_DATE = "date"
EXPIRY_NEVER = "never"
EXPIRY_CHOICES = [
    *[(str(days), f"{days} days") for days in EXPIRY_PRESETS],
    (EXPIRY_DATE, "On a date"),
    (EXPIRY_NEVER, "Never"),
]
ADDRESSES_MAX_LENGTH = MAX_NETWORKS * (NETWORK_MAX_LENGTH + 2)
# The model's error keys -> this form's fields.
FIELD_OF = {"expires_at": "expiry", "allowed_networks": "allowed_addresses"}
CONTROL = {"class": "form-control"}
SELECT = {"class": "form-select"}


def split_addresses(text: str) -> list[str]:
    """One address or network per line, or separated by commas (blank entries ignored)."""
    return [entry for entry in re.split(r"[,\s]+", text) if entry]


class CatalogChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, item: WorkspaceCatalogItem) -> str:
        return item.name


class AccessKeyForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=NAME_MAX_LENGTH,
        help_text="Unique in the workspace, e.g. the job or host that uses it: ci-deploy.",
        widget=forms.TextInput(attrs={**CONTROL, "autocomplete": "off", "spellcheck": "false"}),
    )
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=DESCRIPTION_MAX_LENGTH,
        widget=forms.Textarea(attrs={**CONTROL, "rows": 2}),
    )
    environment = CatalogChoiceField(
        label="Environment",
        queryset=None,
        empty_label="Choose an environment",
        help_text="The key resolves tokens of this environment only.",
        widget=forms.Select(attrs=SELECT),
    )
    product = CatalogChoiceField(
        label="Product",
        queryset=None,
        required=False,
        empty_label="No product",
        help_text="Optional: resolve as this product (tokens scoped to other products refuse).",
        widget=forms.Select(attrs=SELECT),
    )
    app = CatalogChoiceField(
        label="App",
        queryset=None,
        required=False,
        empty_label="No app",
        help_text="Optional: resolve as this app.",
        widget=forms.Select(attrs=SELECT),
    )
    expiry = forms.ChoiceField(
        label="Expiry",
        choices=EXPIRY_CHOICES,
        initial=str(DEFAULT_EXPIRY_DAYS),
        widget=forms.Select(attrs={**SELECT, "data-expiry-select": ""}),
    )
    expiry_date = forms.DateField(
        label="Expiry date",
        required=False,
        help_text="The key stops working at 00:00 UTC that day.",
        widget=forms.DateInput(attrs={**CONTROL, "type": "date"}, format="%Y-%m-%d"),
    )
    allowed_addresses = forms.CharField(
        label="Allowed addresses",
        required=False,
        max_length=ADDRESSES_MAX_LENGTH,
        help_text="Optional: IPv4 or IPv6 addresses or CIDR networks, one per line or "
        "comma-separated (e.g. 203.0.113.0/24). Empty: any address.",
        widget=forms.Textarea(
            attrs={"class": "form-control font-monospace", "rows": 2, "spellcheck": "false"}
        ),
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.catalog_field("environment").queryset = workspace.environments.order_by("name")
        self.catalog_field("product").queryset = workspace.products.order_by("name")
        self.catalog_field("app").queryset = workspace.apps.order_by("name")
        self.fields["environment"].error_messages["invalid_choice"] = (
            "Choose an environment of this workspace."
        )
        for field in ("product", "app"):
            self.fields[field].error_messages["invalid_choice"] = (
                f"Choose a{'n' if field == 'app' else ''} {field} of this workspace, or none."
            )

    def catalog_field(self, name: str) -> CatalogChoiceField:
        """`self.fields` holds plain Fields for the type checker; these three are catalog ones."""
        return cast(CatalogChoiceField, self.fields[name])

    @property
    def never_expires(self) -> bool:
        return self.is_bound and self.data.get("expiry") == EXPIRY_NEVER

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        wants_date = cleaned.get("expiry") == EXPIRY_DATE
        if wants_date and not cleaned.get("expiry_date") and "expiry_date" not in self.errors:
            self.add_error("expiry_date", "Choose the date the key expires on.")
        return cleaned

    def expires(self) -> int | dt.date | None:
        choice = self.cleaned_data["expiry"]
        if choice == EXPIRY_NEVER:
            return None
        if choice == EXPIRY_DATE:
            return self.cleaned_data["expiry_date"]
        return int(choice)

    def bound_arguments(self) -> dict[str, Any]:
        """What a key and an identity are made with alike: the workspace, name, description,
        context, expiry and allowed networks."""
        data = self.cleaned_data
        return {
            "workspace": self.workspace,
            "name": data["name"],
            "description": data["description"],
            "environment": data["environment"],
            "product": data["product"],
            "app": data["app"],
            "expires": self.expires(),
            "allowed_networks": split_addresses(data["allowed_addresses"]),
        }

    def save(self, *, by: User | None) -> tuple[AccessKey, str] | None:
        """(the new key's row, the key itself), or None with the model's messages added as
        field errors."""
        try:
            return AccessKey.objects.create_key(**self.bound_arguments(), by=by)
        except ValidationError as refused:
            self.add_model_errors(refused)
            return None

    def add_model_errors(self, refused: ValidationError) -> None:
        """The model's messages as this form's errors: each on its field (`FIELD_OF` names the
        fields whose names differ), the others above the form."""
        for field, messages in refused.message_dict.items():
            target = FIELD_OF.get(field, field)
            self.add_error(target if target in self.fields else None, messages)


class ConfirmNameForm(forms.Form):
    """Deleting is forever: the owner types the name of what goes to confirm (checked here
    too). `noun` is how the message names it: "key", "identity"."""

    noun = "item"
    confirm_name = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={**CONTROL, "autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args: Any, name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected_name = name
        field = self.fields["confirm_name"]
        field.label = f"Type {name} to confirm"
        field.widget.attrs["data-confirm-match"] = name

    def clean_confirm_name(self) -> str:
        typed = self.cleaned_data["confirm_name"].strip()
        if typed != self.expected_name:
            raise forms.ValidationError(
                f"Type the name exactly as shown ({self.expected_name}) to delete the {self.noun}."
            )
        return typed


class DeleteAccessKeyForm(ConfirmNameForm):
    noun = "key"
