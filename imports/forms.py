"""The two steps of an import: where the .env file comes from, then what to make of it.

`ImportSourceForm` takes pasted text or an uploaded file (never both) and reads it with
imports/parsing.py, which refuses a file that is too large, binary, not UTF-8 or too long.
`ImportOptionsForm` is what every imported token gets: a Type, Environments, Products and Apps,
and what to do with a key that already exists. Neither form ever renders a value back: the
textarea of a refused paste comes back empty.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.views.decorators.debug import sensitive_variables

from imports.parsing import IMPORT_MAX_BYTES, ImportRefused, read_source, size_message
from tokens.forms import PASSWORD_MANAGER_IGNORE, CatalogChoiceField
from tokens.models import TokenType
from workspaces.models import Workspace

SKIP, REPLACE = "skip", "replace"


class UnrenderedTextarea(forms.Textarea):
    """A textarea that never renders what was sent back into the page: a refused paste holds
    values, so the user pastes again rather than reading them in the HTML."""

    def format_value(self, value: Any) -> None:
        return None


class ImportSourceForm(forms.Form):
    text = forms.CharField(
        label="Paste the contents of a .env file",
        required=False,
        strip=False,
        help_text="KEY=VALUE lines, as python-dotenv reads them: export, quotes, escapes, "
        "multi-line quoted values and # comments are understood.",
        widget=UnrenderedTextarea(
            attrs={
                "rows": 8,
                "class": "form-control font-monospace",
                "spellcheck": "false",
                "autocomplete": "off",
                **PASSWORD_MANAGER_IGNORE,
            }
        ),
    )
    env_file = forms.FileField(
        label="Or choose a .env file",
        required=False,
        help_text=f"UTF-8 text, at most 1 MiB ({IMPORT_MAX_BYTES:,} bytes).",
        error_messages={"empty": "The file is empty."},
        widget=forms.FileInput(attrs={"class": "form-control"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source_text = ""
        # read_source says more about NUL bytes than the field's own "Null characters…".
        self.fields["text"].validators = []

    @sensitive_variables("cleaned", "upload", "text")
    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        upload: UploadedFile | None = cleaned.get("env_file")
        text = cleaned.get("text") or ""
        if "env_file" in self.errors:
            return cleaned
        if upload is not None and text:
            self.add_error(None, "Paste the text or choose a file, not both.")
            return cleaned
        if upload is None and not text:
            self.add_error(None, "Paste the contents of a .env file or choose one.")
            return cleaned
        try:
            if upload is not None:
                assert upload.size is not None
                if getattr(upload, "oversized", False) or upload.size > IMPORT_MAX_BYTES:
                    raise ImportRefused(size_message(upload.size))
                upload.seek(0)
                self.source_text = read_source(upload.read())
            else:
                # A browser sends a textarea's line breaks as CRLF whatever the file had; a
                # .env file's are LF, and a multi-line value must not gain a CR per line.
                self.source_text = read_source(text.replace("\r\n", "\n"))
        except ImportRefused as refused:
            self.add_error("env_file" if upload is not None else "text", str(refused))
        return cleaned


class ImportOptionsForm(forms.Form):
    type = forms.ChoiceField(
        label="Type",
        choices=TokenType.choices,
        initial=TokenType.API_KEY,
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    environments = CatalogChoiceField(
        label="Environments",
        queryset=None,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one environment."},
    )
    products = CatalogChoiceField(
        label="Products", required=False, queryset=None, widget=forms.CheckboxSelectMultiple
    )
    apps = CatalogChoiceField(
        label="Apps", required=False, queryset=None, widget=forms.CheckboxSelectMultiple
    )
    existing = forms.ChoiceField(
        label="Keys that already exist",
        choices=[(SKIP, "Skip existing"), (REPLACE, "Replace their values")],
        initial=SKIP,
        widget=forms.RadioSelect,
        help_text="Replacing gives the token a new version; History keeps the old one.",
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, queryset in (
            ("environments", workspace.environments.all()),
            ("products", workspace.products.all()),
            ("apps", workspace.apps.all()),
        ):
            cast(CatalogChoiceField, self.fields[name]).queryset = queryset

    @property
    def replace(self) -> bool:
        return self.cleaned_data.get("existing") == REPLACE
