"""Django admin for tokens (the audit trail's is in audit/admin.py).

Every change goes through the model methods the Tokens page and the resolver use
(`Token.objects.create_token`, `token.update`, `token.revoke`, `token.delete_token`), so the admin
keeps the same rules and leaves the same audit trail. The value is write-only: the "New value"
field never renders anything, and neither the value nor its ciphertext is displayed anywhere.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation, InlineModelAdmin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from lib.admin import staff_user
from tokens.forms import CatalogChoiceField, add_model_errors
from tokens.models import (
    EDITABLE_FIELDS,
    PERIOD_MAX_DAYS,
    RELATION_FIELDS,
    Token,
    TokenQuerySet,
    TokenUsage,
    TokenVersion,
)
from tokens.usage import ShowsUsageAdmin
from workspaces.models import WorkspaceCatalogItem

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec
    from django.contrib.auth.models import User
    from django.forms.formsets import BaseFormSet


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value: not the stored one, not one just submitted.

    A textarea rather than a password input because a password input drops the line breaks of a
    pasted multi-line value (a PEM key), and values are kept byte for byte.
    """

    def format_value(self, value: Any) -> None:
        return None


class WorkspaceItemsField(CatalogChoiceField):
    """Environments, products or apps, labelled with their workspace ("acme / Production")."""

    def label_from_instance(self, obj: WorkspaceCatalogItem) -> str:
        return f"{obj.workspace.slug} / {obj.name}"


class TokenAdminForm(forms.ModelForm):
    new_value = forms.CharField(
        label="New value",
        required=False,
        strip=False,
        widget=WriteOnlyTextarea(
            attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false", "cols": 60}
        ),
        help_text=(
            "Write-only: the stored value is never shown. Leave blank to keep it; anything typed "
            "here replaces it (a new version; a Period restarts). Up to 64 KiB of text; "
            "multi-line keys are kept as typed."
        ),
    )

    class Meta:
        model = Token
        fields = ["workspace", "key", "description", "type", "expiry_date", "period_days"]
        fields += list(RELATION_FIELDS)
        field_classes = dict.fromkeys(RELATION_FIELDS, WorkspaceItemsField)
        help_texts = {
            "expiry_date": "The token becomes invalid at 00:00 UTC on this day.",
            "period_days": (
                "Days from when the value is set: 7, 30, 60, 90, 180, 365 or any "
                f"1-{PERIOD_MAX_DAYS}. With an Expiry Date too, the earlier wins. Both empty: "
                "never expires."
            ),
            "products": "Empty Products and Apps: any product or app of the workspace may use it.",
        }

    instance: Token
    user: ClassVar[User | None] = None  # the signed-in admin, set by TokenAdmin.get_form

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        adding = self.instance._state.adding
        if adding:
            self.fields["new_value"].label = "Value"
            self.fields["new_value"].help_text = (
                "Required. Write-only: it is never shown again. Up to 64 KiB of text; multi-line "
                "keys are kept as typed."
            )
        if "environments" in self.fields:  # the model says "Choose at least one environment."
            self.fields["environments"].required = False
        for name in RELATION_FIELDS:
            if name in self.fields:
                field = cast(WorkspaceItemsField, self.fields[name])  # Meta.field_classes
                assert field.queryset is not None  # the model field's, all its rows
                choices = field.queryset.select_related("workspace")
                if not adding:
                    choices = choices.filter(workspace_id=self.instance.workspace_id)
                field.queryset = choices.order_by("workspace__slug", "name")

    def clean_new_value(self) -> str:
        # Browsers submit a textarea's line breaks as CRLF whatever was pasted; keep LF.
        return self.cleaned_data["new_value"].replace("\r\n", "\n")

    def _post_clean(self) -> None:
        """Make the change through the model method, which checks every rule and writes.

        This replaces ModelForm's own instance validation so that the model's rules are the
        only ones, and so that a rule broken at save time (a key taken by a concurrent request)
        becomes a message on the form instead of an error page. The admin's save_model and
        save_related then have nothing left to do.
        """
        if self.errors:  # those found so far (full_clean is running; this starts no new one)
            return
        data = self.cleaned_data
        fields = {name: data[name] for name in EDITABLE_FIELDS if name in data}
        relations: dict[str, Any] = {
            name: list(data[name]) for name in RELATION_FIELDS if name in data
        }
        try:
            if self.instance._state.adding:
                self.instance = Token.objects.create_token(
                    workspace=data["workspace"],
                    value=data.get("new_value", ""),
                    by=self.user,
                    **fields,
                    **relations,
                )
            else:
                self.instance.update(
                    by=self.user, value=data.get("new_value") or None, **fields, **relations
                )
        except ValidationError as error:
            add_model_errors(self, error, {"value": "new_value"})


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        tokens = cast(TokenQuerySet, queryset)  # the changelist's, from Token.objects
        match self.value():
            case "active":
                return tokens.active()
            case "expired":
                return tokens.expired()
            case "revoked":
                return tokens.revoked()
        return tokens


class ReadOnlyFormSet(BaseInlineFormSet):
    """The rows of a ReadOnlyInline: never bound to what was posted (there is nothing of
    theirs to post), so always valid, and never saved."""

    new_objects: list[Any] = []  # what the admin's change message reads of a saved formset
    changed_objects: list[Any] = []
    deleted_objects: list[Any] = []

    def is_valid(self) -> bool:
        return True


class ReadOnlyInline(admin.TabularInline):
    """Shown on the token's change page, never changed there: History and usage are written
    only by the model's methods and the resolver."""

    formset = ReadOnlyFormSet
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TokenVersionInline(ReadOnlyInline):
    """The versions of the value: number, when and by whom, hint, what it restored, whether it
    was destroyed; never the ciphertext (it is not a field here, and not even read)."""

    model = TokenVersion
    verbose_name = "version"
    fields = readonly_fields = (
        "number",
        "set_at",
        "set_by",
        "value_hint",
        "restored_from_number",
        "destroyed_at",
        "destroyed_by",
    )
    ordering = ["-version"]

    @admin.display(description="version")
    def number(self, version: TokenVersion) -> int:
        return version.number

    @admin.display(description="restored from")
    def restored_from_number(self, version: TokenVersion) -> int | None:
        return version.restored_from_number

    def get_queryset(self, request: HttpRequest) -> QuerySet[TokenVersion]:
        return super().get_queryset(request).defer("ciphertext").select_related("set_by")


class TokenUsageInline(ReadOnlyInline):
    """Where the token was resolved: each context, its use count, first and last use."""

    model = TokenUsage
    verbose_name = "use"
    fields = readonly_fields = (
        "environment",
        "product",
        "app",
        "access_key",
        "actor",
        "source",
        "use_count",
        "first_used_at",
        "last_used_at",
    )
    ordering = ["-last_used_at"]


@admin.register(Token)
class TokenAdmin(ShowsUsageAdmin, admin.ModelAdmin):
    form = TokenAdminForm
    list_display = [
        "key",
        "environment_names",
        "workspace",
        "type",
        "status_label",
        "expires_at",
        "last_used",
    ]
    list_filter = ["workspace", "type", StatusFilter]
    search_fields = ["key", "description", "workspace__slug", "workspace__name"]
    list_select_related = ["workspace"]
    ordering = ["workspace__slug", "key"]
    actions = ["revoke_selected"]
    inlines = [TokenVersionInline, TokenUsageInline]
    readonly_fields = [
        "value_summary",
        "expires_at",
        "status_label",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "revoked_at",
        "revoked_by",
        "last_used_at",
    ]

    def get_fieldsets(self, request: HttpRequest, obj: Token | None = None) -> _FieldsetSpec:
        main: tuple[str, ...]
        if obj is None:
            main = ("workspace", "key", "new_value", "description", "type")
        elif obj.is_revoked:  # final: nothing can be changed, not even the value
            main = ("workspace", "key", "value_summary", "description", "type")
        else:
            main = ("workspace", "key", "value_summary", "new_value", "description", "type")
        expiry = ("expiry_date", "period_days", *(("expires_at",) if obj else ()))
        fieldsets: _FieldsetSpec = [
            (None, {"fields": main}),
            ("Expiry", {"fields": expiry}),
            ("Scope", {"fields": ("products", "apps")}),
            ("Environment", {"fields": ("environments",)}),
        ]
        if obj is not None:
            history: tuple[str, ...] = ("status_label", "created_at", "created_by")
            history += ("updated_at", "updated_by", "revoked_at", "revoked_by", "last_used_at")
            fieldsets = [*fieldsets, ("Status and history", {"fields": history})]
        return fieldsets

    def get_inline_instances(
        self, request: HttpRequest, obj: Token | None = None
    ) -> list[InlineModelAdmin[Any, Any]]:
        return super().get_inline_instances(request, obj) if obj is not None else []

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Token, inline: InlineModelAdmin[Any, Any], prefix: str
    ) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, ReadOnlyInline):  # shown as stored, whatever was posted
            for bound in ("data", "files", "save_as_new"):
                kwargs.pop(bound, None)
        return kwargs

    def get_readonly_fields(self, request: HttpRequest, obj: Token | None = None) -> list[str]:
        # A token never moves to another workspace: its ciphertext is bound to this one.
        return [*self.readonly_fields, *(["workspace"] if obj else [])]

    def get_form(
        self, request: HttpRequest, obj: Token | None = None, change: bool = False, **kwargs: Any
    ) -> type[TokenAdminForm]:
        # A new subclass of `form` on every call; the stub says only "some ModelForm".
        form = cast(type[TokenAdminForm], super().get_form(request, obj, change, **kwargs))
        form.user = staff_user(request)
        return form

    @method_decorator(sensitive_post_parameters("new_value"))
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    def has_change_permission(self, request: HttpRequest, obj: Token | None = None) -> bool:
        if obj is not None and obj.is_revoked:
            return False  # revoked is final: the change page becomes a read-only view
        return super().has_change_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: Token, form: TokenAdminForm, change: bool
    ) -> None:
        """Nothing to do: TokenAdminForm saved through the model methods while validating."""

    def save_related(
        self,
        request: HttpRequest,
        form: TokenAdminForm,
        formsets: list[BaseFormSet[Any]],
        change: bool,
    ) -> None:
        """Nothing to do: the model methods set products, apps and environments."""

    def delete_model(self, request: HttpRequest, obj: Token) -> None:
        obj.delete_token(by=staff_user(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Token]) -> None:
        for token in queryset.select_related("workspace"):
            token.delete_token(by=staff_user(request))

    @admin.action(
        description="Revoke selected tokens",
        permissions=["change"],
        location=[ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM],
    )
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Token]) -> None:
        revoked: list[str] = []
        already: list[str] = []
        for token in queryset.select_related("workspace").order_by("key"):
            try:
                token.revoke(by=staff_user(request))
            except ValidationError:
                already.append(token.key)
            else:
                revoked.append(token.key)
        if revoked:
            self.message_user(
                request, f"Revoked {len(revoked)} token(s): {', '.join(revoked)}.", messages.SUCCESS
            )
        if already:
            self.message_user(
                request, f"Already revoked, left as they were: {', '.join(already)}.", messages.INFO
            )

    @admin.display(description="Environments")
    def environment_names(self, token: Token) -> str:
        """A key may have a token per environment: the environments tell its rows apart."""
        return ", ".join(env.name for env in token.environments.all())

    def get_queryset(self, request: HttpRequest) -> QuerySet[Token]:
        return super().get_queryset(request).prefetch_related("environments")

    @admin.display(description="Status", ordering="status")
    def status_label(self, token: Token) -> str:
        return token.status_label()

    @admin.display(description="Last used", ordering="last_used_at")
    def last_used(self, token: Token) -> dt.datetime | None:
        return token.last_used_at

    @admin.display(description="Value")
    def value_summary(self, token: Token) -> str:
        hint = f"hint {token.hint}, " if token.hint else ""
        set_at = token.value_set_at.astimezone(dt.UTC)
        return f"Hidden ({hint}version {token.version_number}, set {set_at:%Y-%m-%d %H:%M} UTC)"
