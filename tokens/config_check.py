"""Check a configuration: a pasted or uploaded configuration, checked in every environment of the
workspace at once (for a product and an app, if chosen), before anything is deployed.

Each environment gets the resolver's own check (`check_text`, called in `check_everywhere` and
nowhere else here): every reference that would fail there, where it is and why. Nothing is
decrypted, audited or marked used; no value is ever shown, and the configuration itself is
neither kept nor sent back (it may hold other secrets): only the references found in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from lib.views import signed_in_view
from tokens.models import VALUE_MAX_BYTES, UseContext
from tokens.references import CheckReport, check_text
from workspaces.access import get_workspace_for
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import App, Environment, Product, Workspace

CONFIG_MAX_BYTES = 1024 * 1024  # pasted; a file as any upload here: VALUE_MAX_BYTES (64 KiB)


class UnsentTextarea(forms.Textarea):
    """Never renders what was sent: a configuration may hold secrets of its own."""

    def format_value(self, value: Any) -> None:
        return None


@dataclass(frozen=True)
class EnvironmentCheck:
    environment: Environment
    report: CheckReport


def check_everywhere(
    text: str, workspace: Workspace, *, product: Product | None, app: App | None
) -> list[EnvironmentCheck]:
    """The resolver's check of `text` in each environment of `workspace`, by name: a few
    queries per environment (environments are few; keys and references cost nothing more)."""
    return [
        EnvironmentCheck(
            env,
            check_text(
                text, UseContext(environment=env, product=product, app=app), source="pasted"
            ),
        )
        for env in workspace.environments.all()
    ]


class ConfigCheckForm(forms.Form):
    text = forms.CharField(
        label="Paste a configuration",
        required=False,
        strip=False,
        help_text="Any text that references tokens as $Secret{KEY}: a .env file, YAML, JSON...",
        widget=UnsentTextarea(
            attrs={
                "rows": 8,
                "class": "form-control font-monospace",
                "spellcheck": "false",
                "autocomplete": "off",
            }
        ),
    )
    config_file = forms.FileField(
        label="Or choose a file",
        required=False,
        help_text="UTF-8 text, at most 64 KiB (paste a larger one, up to 1 MiB).",
        error_messages={"empty": "The file is empty."},
        widget=forms.FileInput(attrs={"class": "form-control"}),
    )
    product: forms.ModelChoiceField[Product] = forms.ModelChoiceField(
        label="Product",
        required=False,
        queryset=None,
        empty_label="No product",
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    app: forms.ModelChoiceField[App] = forms.ModelChoiceField(
        label="App",
        required=False,
        queryset=None,
        empty_label="No app",
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source_text = ""
        cast(forms.ModelChoiceField, self.fields["product"]).queryset = workspace.products.all()
        cast(forms.ModelChoiceField, self.fields["app"]).queryset = workspace.apps.all()

    @sensitive_variables("cleaned", "upload", "text", "raw")
    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        upload: UploadedFile | None = cleaned.get("config_file")
        text = cleaned.get("text") or ""
        if "config_file" in self.errors:
            return cleaned
        if upload is not None and text:
            self.add_error(None, "Paste the configuration or choose a file, not both.")
        elif upload is None and not text:
            self.add_error(None, "Paste a configuration or choose a file.")
        elif upload is not None:
            assert upload.size is not None
            if getattr(upload, "oversized", False) or upload.size > VALUE_MAX_BYTES:
                self.add_error(
                    "config_file",
                    f"The file is {upload.size:,} bytes; a file may have at most 64 KiB: "
                    "paste a larger configuration instead (up to 1 MiB).",
                )
                return cleaned
            upload.seek(0)
            raw = upload.read()
            try:
                self.source_text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                self.add_error("config_file", "The file is not UTF-8 text.")
        elif len(text.encode("utf-8", errors="surrogatepass")) > CONFIG_MAX_BYTES:
            self.add_error("text", "The configuration is larger than 1 MiB.")
        else:
            self.source_text = text.replace("\r\n", "\n")
        return cleaned


@sensitive_post_parameters("text")
@signed_in_view("GET", "POST")
def config_check(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """Any member may check: it says which references resolve where, as Compare environments
    does, and never a value."""
    workspace = get_workspace_for(request, slug)
    posted = request.method == "POST"
    form = ConfigCheckForm(
        request.POST if posted else None, request.FILES if posted else None, workspace=workspace
    )
    checks = None
    if posted and form.is_valid():
        checks = check_everywhere(
            form.source_text,
            workspace,
            product=form.cleaned_data["product"],
            app=form.cleaned_data["app"],
        )
    context = {
        "nav": "tokens",
        "tab": "compare",  # a page of the Compare environments tab
        "form": form,
        "checks": checks,
        "check_url": reverse("tokens:check", args=[slug]),
    }
    return render(request, "tokens/config_check.html", context)
