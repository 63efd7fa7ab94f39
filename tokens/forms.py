"""Forms of the Tokens page: create/edit a token, confirm a deletion (the table's filters are
in tokens/table.py).

The forms validate what the browser sent and turn it into calls to the model's own methods
(`Token.objects.create_token`, `token.update`); the rules themselves live in tokens/models.py.
A submitted value is never rendered back: the value input is a password input that never shows
its value, and no message repeats it. A password input cannot hold line breaks, so a multi-line
value (a PEM key) can come from a file instead; the file's name and contents are never rendered
back either.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from crispy_forms.helper import FormHelper
from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from django.views.decorators.debug import sensitive_variables

from tokens.models import (
    DESCRIPTION_MAX_LENGTH,
    KEY_MAX_LENGTH,
    PERIOD_MAX_DAYS,
    VALUE_MAX_BYTES,
    Token,
    TokenType,
    free_environments,
    key_grammar_error,
    new_expiry_date_errors,
    value_errors,
    value_size_message,
)
from workspaces.models import Environment, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PERIOD_PRESETS = (7, 30, 60, 90, 180, 365)
CUSTOM = "custom"
PERIOD_CHOICES = [
    ("", "No period"),
    *[(str(days), f"{days} days") for days in PERIOD_PRESETS],
    (CUSTOM, "Custom"),
]

# Asks password managers not to offer saving (or filling) what is typed: a token value is not
# the user's own password. 1Password, LastPass, Bitwarden and Dashlane each read their own
# attribute; browsers' built-in managers ignore autocomplete="off" on password inputs but
# honour "new-password" by not filling a saved password in.
PASSWORD_MANAGER_IGNORE = {
    "data-1p-ignore": "",
    "data-lpignore": "true",
    "data-bwignore": "",
    "data-form-type": "other",
}

# The largest id a database integer column holds; SQLite raises OverflowError past it.
ID_MAX = 2**63 - 1


class CatalogChoiceField(forms.ModelMultipleChoiceField):
    """Products, apps or environments to pick. An id too large for the database (a forged
    "99999999999999999999") is an invalid choice with a message, not a crash."""

    def _check_values(self, value: Any) -> QuerySet[Any]:
        for pk in value if isinstance(value, list | tuple) else ():
            try:
                too_large = abs(int(str(pk))) > ID_MAX
            except ValueError:
                continue
            if too_large:
                raise ValidationError(
                    self.error_messages["invalid_pk_value"],
                    code="invalid_pk_value",
                    params={"pk": pk},
                )
        # Private in Django (clean() calls it for the ids sent), so django-stubs leaves it out.
        return super()._check_values(value)  # type: ignore[misc]


# The model's field names, as its ValidationErrors use them -> this form's field names.
MODEL_TO_FORM_FIELD = {"period_days": "period"}


def add_model_errors(
    form: forms.BaseForm,
    error: ValidationError,
    renames: dict[str, str] | None = None,
    *,
    keep_field_errors: bool = False,
) -> None:
    """Put a model rule's ValidationError on `form`: each {field: messages} entry on the form
    field of that name (after `renames`, model name -> form name), the rest above the form.
    With `keep_field_errors`, a field that already has an error (its own, more precise) keeps
    only that one. The Tokens page's form and the admin's both show the model's rules this way.
    """
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    renames = renames or {}
    for field, errors in error.error_dict.items():
        name = renames.get(field, field)
        if keep_field_errors and name in form.errors:
            continue
        form.add_error(name if name in form.fields else None, errors)


class TokenForm(forms.Form):
    """Create a token, or edit one (`token=`); the labels are the product document's."""

    # Rendered field by field with crispy's `as_crispy_field` in templates/tokens/token_form.html,
    # whose grid spaces the fields itself: no margin under each one.
    helper = FormHelper()
    helper.form_tag = False
    helper.field_margin = "mb-0"

    key = forms.CharField(
        label="Token Key",
        max_length=KEY_MAX_LENGTH,
        error_messages={"required": "Enter the token key."},
        help_text="Letters, digits and underscores, e.g. PAYMENT_API_KEY. "
        "Configurations reference it as $Secret{KEY}.",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                **PASSWORD_MANAGER_IGNORE,  # else managers take the key for a username
                "spellcheck": "false",
                "autocapitalize": "characters",
                # No placeholder: a key-like example in the box looks typed (the help has one).
                "class": "font-monospace",
            }
        ),
    )
    value = forms.CharField(
        label="Token Value",
        strip=False,
        required=False,
        widget=forms.PasswordInput(
            render_value=False,
            attrs={
                "autocomplete": "new-password",
                **PASSWORD_MANAGER_IGNORE,
                "spellcheck": "false",
                # After an invalid submit htmx keeps this input, typed value and all, instead of
                # the server's empty one: the value is never sent back (without JS it is empty).
                "hx-preserve": "true",
            },
        ),
    )
    value_file = forms.FileField(
        label="Or load the value from a file",
        required=False,
        help_text="For multi-line values such as PEM keys; the file's exact contents become the "
        "value. Up to 64 KiB of UTF-8 text.",
        error_messages={"empty": "The file is empty."},
        widget=forms.FileInput,
    )
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=DESCRIPTION_MAX_LENGTH,
        help_text="Optional: what the token is used for.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    type = forms.ChoiceField(label="Type", choices=TokenType.choices, initial=TokenType.API_KEY)
    expiry_date = forms.DateField(
        label="Expiry Date",
        required=False,
        help_text="The token becomes invalid at 00:00 UTC on this day.",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    period = forms.ChoiceField(
        label="Period",
        required=False,
        choices=PERIOD_CHOICES,
        help_text="Token lifespan, counted from when the value is set.",
        widget=forms.Select(attrs={"data-period-select": ""}),
    )
    period_custom = forms.IntegerField(
        label="Custom days",
        required=False,
        min_value=1,
        max_value=PERIOD_MAX_DAYS,
        help_text=f"With Period set to Custom: 1 to {PERIOD_MAX_DAYS:,} days.",
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    products = CatalogChoiceField(
        label="Products", required=False, queryset=None, widget=forms.CheckboxSelectMultiple
    )
    apps = CatalogChoiceField(
        label="Apps", required=False, queryset=None, widget=forms.CheckboxSelectMultiple
    )
    environments = CatalogChoiceField(
        label="Environments",
        queryset=None,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one environment."},
    )

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        files: MultiValueDict[str, UploadedFile] | None = None,
        *,
        workspace: Workspace,
        token: Token | None = None,
        source: Token | None = None,
        preselect: str = "",
        **kwargs: Any,
    ) -> None:
        """`token`: the token to edit. `source`: create another token of its key ("Add for
        another environment"): key, type, description and scope prefilled, and only the
        environments still free for that key and scope offered; `preselect` (an environment's
        id, from Compare environments) checked among them."""
        self.workspace = workspace
        self.token = token
        self.source = source
        # A value is needed on create, typed or from a file: the form checks it, not the field.
        self.value_required = token is None
        self.changed: list[str] = []
        if token is not None:
            kwargs["initial"] = self.initial_from(token)
        elif source is not None:
            kwargs["initial"] = self.initial_from(source) | {"environments": []}
            kwargs["initial"]["expiry_date"] = None  # a date of the other token's, maybe past
        super().__init__(data, files, **kwargs)
        self.catalog_field("products").queryset = workspace.products.all()
        self.catalog_field("apps").queryset = workspace.apps.all()
        environments: QuerySet[Environment] = workspace.environments.all()
        if source is not None:
            environments = free_environments(
                workspace, source.key, products=source.products.all(), apps=source.apps.all()
            )
            if not self.is_bound and preselect.isdigit() and int(preselect) <= ID_MAX:
                self.initial["environments"] = list(environments.filter(pk=int(preselect)))
        self.catalog_field("environments").queryset = environments
        # The date picker offers no day a new Expiry Date may not be (the server checks too).
        tomorrow = timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=1)
        self.fields["expiry_date"].widget.attrs["min"] = tomorrow.isoformat()
        if token is None:
            self.fields["value"].widget.attrs["aria-required"] = "true"
            # Where the typed key is already valid, said under it as it is typed (key_hint).
            self.fields["key"].widget.attrs.update(
                {
                    "hx-get": reverse("tokens:key_hint", args=[workspace.slug]),
                    "hx-trigger": "input changed delay:300ms",
                    "hx-target": "#key-hint",
                    "hx-swap": "innerHTML",
                    "hx-sync": "this:replace",
                }
            )
            self.fields[
                "value"
            ].help_text = "Stored encrypted and never shown again, not even to you."
        else:
            self.fields[
                "value"
            ].help_text = "Leave blank to keep the current value; type a new value to replace it."
            self.fields["key"].widget.attrs["data-original-key"] = token.key
            self.fields[
                "key"
            ].help_text = f"Changing the key breaks existing $Secret{{{token.key}}} references."
        for field in self.fields.values():
            if isinstance(field.widget, forms.CheckboxSelectMultiple):
                continue
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            classes = field.widget.attrs.get("class", "")
            field.widget.attrs["class"] = f"{css} {classes}".strip()

    @property
    def chosen_environment_names(self) -> list[str]:
        """The environments checked as the form is shown (none for a new token, unless the
        user chose one: the modal says so rather than choosing for them)."""
        chosen = {str(getattr(item, "pk", item)) for item in self["environments"].value() or []}
        environments: Iterable[Environment] = self.catalog_field("environments").queryset or []
        return [env.name for env in environments if str(env.pk) in chosen]

    def catalog_field(self, name: str) -> CatalogChoiceField:
        """`self.fields` holds plain Fields for the type checker; these three are catalog ones."""
        return cast(CatalogChoiceField, self.fields[name])

    @staticmethod
    def initial_from(token: Token) -> dict[str, Any]:
        period, custom = "", None
        if token.period_days in PERIOD_PRESETS:
            period = str(token.period_days)
        elif token.period_days:
            period, custom = CUSTOM, token.period_days
        return {
            "key": token.key,
            "description": token.description,
            "type": token.type,
            "expiry_date": token.expiry_date,
            "period": period,
            "period_custom": custom,
            "products": list(token.products.all()),
            "apps": list(token.apps.all()),
            "environments": list(token.environments.all()),
        }

    @property
    def key_now(self) -> str:
        """The key as the form holds it now (submitted, or prefilled)."""
        if self.is_bound:
            return str(self.data.get(self.add_prefix("key"), "")).strip()
        return str(self.initial.get("key") or "")

    def where_valid(self) -> list[Token]:
        """The unrevoked tokens of the key being created (none when editing): where the
        Create Token modal says the key is already valid."""
        if self.token is not None or key_grammar_error(self.key_now):
            return []
        return list(Token.objects.valid_with_key(self.workspace, self.key_now))

    # --- validation ---------------------------------------------------------------------

    def clean_key(self) -> str:
        return self.cleaned_data["key"].strip()

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        self.use_value_file(cleaned)
        period, custom = cleaned.get("period"), cleaned.get("period_custom")
        if "period_custom" in self.errors:
            return cleaned
        if period == CUSTOM:
            if custom is None:
                self.add_error("period_custom", "Enter the number of days for a Custom period.")
            cleaned["period_days"] = custom
        elif period:
            if custom is not None and custom != int(period):
                self.add_error(
                    "period_custom",
                    "Choose Custom in Period to use your own number of days, or clear this box.",
                )
            cleaned["period_days"] = int(period)
        else:
            # Without JavaScript both inputs show: a number typed alone means a custom period.
            cleaned["period_days"] = custom
        self.add_rule_errors(cleaned)
        return cleaned

    @sensitive_variables("upload", "content", "value", "cleaned")
    def use_value_file(self, cleaned: dict[str, Any]) -> None:
        """A chosen file's bytes, decoded as UTF-8 and nothing else, become the value."""
        upload: UploadedFile | None = cleaned.get("value_file")
        if upload is None:
            return
        if cleaned.get("value"):
            self.add_error("value_file", "Type a value or choose a file, not both.")
            return
        # The field refused a file without a size ("The file is empty."); this one has one.
        assert upload.size is not None
        if upload.size > VALUE_MAX_BYTES:
            self.add_error("value_file", value_size_message(upload.size))
            return
        upload.seek(0)
        content = upload.read()
        try:
            value = content.decode("utf-8")
        except UnicodeDecodeError:
            self.add_error("value_file", "The file must be UTF-8 text.")
            return
        # An empty file never gets here: the field itself says "The file is empty."
        cleaned["value"] = value

    def add_rule_errors(self, cleaned: dict[str, Any]) -> None:
        """Ask the model's rules now too, so every problem shows at once (saving asks again)."""
        probe = Token(
            workspace=self.workspace,
            key=cleaned.get("key") or "",
            description=cleaned.get("description") or "",
            type=cleaned.get("type") or TokenType.CREDENTIAL,
            period_days=cleaned.get("period_days"),
        )
        if self.token is not None:
            probe.pk = self.token.pk
        errors = probe.rule_errors(
            products=list(cleaned.get("products") or []),
            apps=list(cleaned.get("apps") or []),
            environments=list(cleaned.get("environments") or []),
        )
        # A file with a problem has its own message; don't also ask for a typed value.
        file_chosen = "value_file" in self.errors or cleaned.get("value_file") is not None
        errors.update(
            value_errors(cleaned.get("value"), required=self.value_required and not file_chosen)
        )
        expiry = cleaned.get("expiry_date")
        if self.token is None or expiry != self.token.expiry_date:
            errors.update(new_expiry_date_errors(expiry))
        if errors:
            add_model_errors(
                self, ValidationError(errors), MODEL_TO_FORM_FIELD, keep_field_errors=True
            )

    @property
    def key_changed(self) -> bool:
        if self.token is None:
            return False
        key = self.data.get(self.add_prefix("key"), self.token.key) if self.is_bound else None
        return key is not None and key.strip() != self.token.key

    @property
    def value_was_submitted(self) -> bool:
        return self.is_bound and bool(self.data.get(self.add_prefix("value")))

    @property
    def file_was_submitted(self) -> bool:
        return self.is_bound and bool(self.files.get(self.add_prefix("value_file")))

    # --- saving through the model's rules -----------------------------------------------

    def model_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "key": data["key"],
            "description": data["description"],
            "type": data["type"],
            "expiry_date": data["expiry_date"],
            "period_days": data["period_days"],
        }

    def save(self, *, by: User | None) -> Token | None:
        """Create or update the token; on a broken rule, add its messages and return None."""
        data = self.cleaned_data
        relations: dict[str, Any] = {
            name: list(data[name]) for name in ("products", "apps", "environments")
        }
        try:
            if self.token is None:
                return Token.objects.create_token(
                    workspace=self.workspace,
                    value=data["value"],
                    by=by,
                    **self.model_fields(),
                    **relations,
                )
            self.changed = self.token.update(
                by=by, value=data["value"] or None, **self.model_fields(), **relations
            )
            return self.token
        except ValidationError as error:
            add_model_errors(self, error, MODEL_TO_FORM_FIELD)
            return None


class DeleteTokenForm(forms.Form):
    """Deleting is forever: the user types the key to confirm (the server checks it too)."""

    confirm_key = forms.CharField(
        required=False,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "class": "form-control"}
        ),
    )

    def __init__(self, *args: Any, token: Token, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token = token
        field = self.fields["confirm_key"]
        field.label = f"Type {token.key} to confirm"
        field.widget.attrs["data-confirm-match"] = token.key

    def clean_confirm_key(self) -> str:
        typed = self.cleaned_data["confirm_key"].strip()
        if typed != self.token.key:
            raise forms.ValidationError(
                f"Type the key exactly as shown ({self.token.key}) to delete it."
            )
        return typed


class VersionChoiceForm(forms.Form):
    """Which version of a token's History to restore or destroy: one of `versions` (the old,
    not destroyed ones), chosen in the dialog or preselected by the History row's link."""

    version = forms.TypedChoiceField(
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose a version.",
            "invalid_choice": "That version cannot be chosen: it is the current value, was "
            "destroyed or is no longer kept. Choose one from the list.",
        },
    )

    def __init__(self, *args: Any, versions: list, initial_version: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.versions = versions
        field = cast(forms.TypedChoiceField, self.fields["version"])
        field.choices = [(str(version.version), str(version.version)) for version in versions]
        if initial_version in {str(version.version) for version in versions}:
            self.initial["version"] = initial_version

    @property
    def chosen(self) -> str:
        """The version to show as selected: the one posted, or the one the link named."""
        value = self["version"].value()
        return str(value) if value not in (None, "") else ""
