"""Forms for workspaces and what they hold; each rejection says what to do instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import QueryDict
from django.utils.text import slugify

from workspaces.models import (
    App,
    Environment,
    Membership,
    Product,
    Role,
    Workspace,
    WorkspaceCatalogItem,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    _Form = forms.BaseForm  # what the mixin below is mixed into
else:
    _Form = object

SLUG_HELP = "Lowercase letters, digits and hyphens. Used in URLs and by manage.py resolve."


class SlugFromNameMixin(_Form):
    """Fill an empty slug from the name, then validate it like a typed one."""

    def clean_slug(self) -> str:
        slug = (self.cleaned_data.get("slug") or "").lower()
        if slug:
            return slug
        name = self.data.get(self.add_prefix("name"), "")
        if not name.strip():
            return ""  # the name's own "required" error says what to do
        slug = slugify(name)[:50].strip("-")
        if not slug:
            raise forms.ValidationError(
                "Enter a slug: the name has no letters or digits to make one from."
            )
        return slug


class WorkspaceForm(SlugFromNameMixin, forms.ModelForm):
    """Create a workspace. A slug someone else's workspace already has is never refused (that
    would tell an outsider the workspace exists): the new one gets the first free `slug-2`,
    `slug-3`, ... and the success message says which."""

    SLUG_ATTEMPTS = 20  # racing creators of one slug each move on to the next free one

    class Meta:
        model = Workspace
        fields = ["name", "slug"]
        help_texts = {"slug": SLUG_HELP}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["slug"].required = False

    def validate_unique(self) -> None:
        # A taken slug is not an error: create() picks a free one.
        pass

    def create(self, *, owner: User) -> Workspace | None:
        """Create the workspace with `owner` as its owner, under the first free slug."""
        wanted = self.cleaned_data["slug"]
        for _ in range(self.SLUG_ATTEMPTS):
            try:
                return Workspace.create_with_owner(
                    name=self.cleaned_data["name"], slug=free_slug(wanted), owner=owner
                )
            except IntegrityError:  # that slug was taken since we looked: try the next one
                continue
        self.add_error("slug", "Could not find a free slug right now. Try again or choose another.")
        return None

    def created_message(self, workspace: Workspace) -> str:
        wanted = self.cleaned_data["slug"]
        if workspace.slug == wanted:
            return f"Workspace “{workspace.name}” created. You are its owner."
        return (
            f"Workspace “{workspace.name}” created with the slug “{workspace.slug}”, as "
            f"“{wanted}” is not available. You are its owner."
        )


def free_slug(wanted: str) -> str:
    """`wanted` if no workspace has it, else the first free `wanted-2`, `wanted-3`, ...,
    shortened so it stays within the slug's 50 characters."""
    max_length = Workspace._meta.get_field("slug").max_length
    assert max_length is not None
    taken = set(
        Workspace.objects.filter(slug__startswith=wanted[: max_length - 4]).values_list(
            "slug", flat=True
        )
    )
    if wanted not in taken:
        return wanted
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = wanted[: max_length - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
        number += 1


class CatalogItemForm(SlugFromNameMixin, forms.ModelForm):
    """Create or rename an environment, product or app; name and slug unique in the workspace."""

    instance: WorkspaceCatalogItem

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance.workspace = workspace
        self.fields["slug"].required = False
        self.fields["slug"].help_text = SLUG_HELP

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        siblings = type(self.instance).objects.filter(workspace=self.instance.workspace)
        if self.instance.pk:
            siblings = siblings.exclude(pk=self.instance.pk)
        for field in ("name", "slug"):
            value = cleaned.get(field)
            if value and siblings.filter(**{field: value}).exists():
                self.add_error(field, self._taken_message(field, value))
        return cleaned

    def _taken_message(self, field: str, value: str) -> str:
        noun = str(self._meta.model._meta.verbose_name)
        article = "an" if noun[0] in "aeiou" else "a"
        return (
            f"This workspace already has {article} {noun} with {field} “{value}”. Choose another."
        )

    def validate_unique(self) -> None:
        # The per-workspace checks above give the messages; the database constraints still hold.
        pass

    # Not ModelForm.save(commit): saving always records who did it, so callers must say who.
    def save(self, *, by: User | None = None) -> WorkspaceCatalogItem | None:  # type: ignore[override]
        """Save (and record it), or None with a form error if a clashing item appeared meanwhile."""
        try:
            with transaction.atomic():
                item = super().save(commit=False)
                item.save_audited(by=by)
                return item
        except IntegrityError:
            self.add_error("name", self._taken_message("name", self.cleaned_data["name"]))
            return None


def catalog_form(model: type[WorkspaceCatalogItem]) -> type[CatalogItemForm]:
    # The factory returns a subclass of `form`; its stub only says "some ModelForm".
    form = forms.modelform_factory(model, form=CatalogItemForm, fields=["name", "slug"])
    return cast(type[CatalogItemForm], form)


EnvironmentForm = catalog_form(Environment)
ProductForm = catalog_form(Product)
AppForm = catalog_form(App)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, data: QueryDict | None = None, *, membership: Membership) -> None:
        super().__init__(data, initial={"role": membership.role})
        self.membership = membership

    def save(self, *, by: User | None) -> bool:
        """Change the role (the model keeps the last owner); False with a form error if refused."""
        try:
            self.membership.change_role(self.cleaned_data["role"], by=by)
        except ValidationError as error:
            self.add_error("role", error)
            return False
        return True
