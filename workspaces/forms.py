"""Forms for workspaces and what they hold; each rejection says what to do instead."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.utils.text import slugify

from workspaces.models import App, Environment, Membership, Product, Role, Workspace

SLUG_HELP = "Lowercase letters, digits and hyphens. Used in URLs and by `manage.py resolve`."


class SlugFromNameMixin:
    """Fill an empty slug from the name, then validate it like a typed one."""

    def clean_slug(self) -> str:
        slug = self.cleaned_data.get("slug") or slugify(self.data.get(self.add_prefix("name"), ""))
        if not slug:
            raise forms.ValidationError("Enter a slug (letters, digits and hyphens).")
        return slug[:50]


class WorkspaceForm(SlugFromNameMixin, forms.ModelForm):
    class Meta:
        model = Workspace
        fields = ["name", "slug"]
        help_texts = {"slug": SLUG_HELP}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["slug"].required = False


class CatalogItemForm(SlugFromNameMixin, forms.ModelForm):
    """Create or rename an environment, product or app; name and slug unique in the workspace."""

    def __init__(self, *args, workspace: Workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.instance.workspace = workspace
        self.fields["slug"].required = False
        self.fields["slug"].help_text = SLUG_HELP

    def clean(self) -> dict:
        cleaned = super().clean()
        siblings = type(self.instance).objects.filter(workspace=self.instance.workspace)
        if self.instance.pk:
            siblings = siblings.exclude(pk=self.instance.pk)
        noun = self._meta.model._meta.verbose_name
        for field in ("name", "slug"):
            value = cleaned.get(field)
            if value and siblings.filter(**{field: value}).exists():
                self.add_error(
                    field, f"This workspace already has a {noun} with {field} “{value}”."
                )
        return cleaned

    def validate_unique(self) -> None:
        # The per-workspace checks above give the messages; the database constraints still hold.
        pass


def catalog_form(model):
    return forms.modelform_factory(model, form=CatalogItemForm, fields=["name", "slug"])


EnvironmentForm = catalog_form(Environment)
ProductForm = catalog_form(Product)
AppForm = catalog_form(App)


class AddMemberForm(forms.Form):
    username = forms.CharField(
        label="Username or email", max_length=150, help_text="The person must have an account."
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args, workspace: Workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace

    def clean_username(self):
        name = self.cleaned_data["username"].strip()
        User = get_user_model()
        user = (
            User.objects.filter(username=name).first()
            or User.objects.filter(email__iexact=name).exclude(email="").first()
        )
        if user is None:
            raise forms.ValidationError(f"No account with username or email “{name}”.")
        if Membership.objects.filter(workspace=self.workspace, user=user).exists():
            raise forms.ValidationError(f"{user.get_username()} is already a member.")
        return user

    def save(self) -> Membership:
        return Membership.objects.create(
            workspace=self.workspace,
            user=self.cleaned_data["username"],
            role=self.cleaned_data["role"],
        )


class MemberRoleForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["role"]

    def clean_role(self) -> str:
        role = self.cleaned_data["role"]
        if role != Role.OWNER and self.instance.is_last_owner():
            raise forms.ValidationError(
                "A workspace needs at least one owner. Make someone else an owner first."
            )
        return role
