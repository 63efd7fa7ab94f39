"""Acting on many tokens of the Tokens page at once: Revoke selected, Delete selected, Change
environments.

The table's checkboxes belong to one plain <form> (templates/tokens/_bulk_bar.html) that posts
here; this view answers with a confirmation page listing the keys (a modal with htmx), whose
own form posts back with `confirm`. Only then does tokens/lifecycle.py change anything, in one
transaction with one audit event per token. A selection naming a token of another workspace,
or no token at all, is refused whole: nothing changes.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpResponse
from django_htmx.http import trigger_client_event

from lib.htmx import modal_success, render_modal
from lib.views import signed_in_view
from tokens import lifecycle
from tokens.forms import CatalogChoiceField
from tokens.models import Token
from tokens.table import list_url
from tokens.usage import settle
from tokens.views import BREAKS_SERVICES
from workspaces.access import get_workspace_for
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import Role, Workspace

BULK_MAX_TOKENS = 500  # a page holds at most 100; a forged post cannot lock the whole table
ACTIONS = {
    "revoke": "Revoke selected",
    "delete": "Delete selected",
    "environments": "Change environments",
}
NOTHING_SELECTED = "Select at least one token first."
REFUSED_SELECTION = (
    "The selection names tokens that are not in this workspace (or no longer exist), so "
    "nothing was changed. Go back to the Tokens page and select again."
)


ALREADY_GONE = (
    "The selected tokens no longer exist: they were deleted since the page was loaded (by an "
    "earlier click on this button, or by someone else). Nothing more was changed."
)


def some_gone(gone: int, selected: int) -> str:
    verb = "no longer exists" if gone == 1 else "no longer exist"
    return (
        f"{gone} of the {selected} selected tokens {verb}: deleted since the page was loaded, "
        "by someone else or in another tab. Nothing was changed. Go back to the Tokens page "
        "and select again."
    )


class TokenSelectionField(forms.ModelMultipleChoiceField):
    """Token ids of one workspace; any other id refuses the whole selection. Ids that name no
    token at all (deleted since the table was drawn: a second click, another user) refuse it
    with a message saying so (code "gone"), rather than one suggesting a forgery."""

    widget = forms.MultipleHiddenInput

    def clean(self, value: Any) -> Any:
        try:
            return super().clean(value)
        except forms.ValidationError as error:
            if error.code != "invalid_choice":
                raise
            selected = {str(pk) for pk in value or []}
            mine = cast(QuerySet[Token], self.queryset).filter(pk__in=selected)
            found = {str(pk) for pk in mine.values_list("pk", flat=True)}
            missing = selected - found
            # Token ids are random UUIDs, so "exists in no workspace" tells an outsider nothing.
            if Token.objects.filter(pk__in=missing).exists():
                raise
            message = ALREADY_GONE if not found else some_gone(len(missing), len(selected))
            raise forms.ValidationError(message, code="gone") from None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            queryset=Token.objects.none(),
            required=False,
            error_messages={
                "invalid_choice": REFUSED_SELECTION,
                "invalid_pk_value": REFUSED_SELECTION,
                "list": REFUSED_SELECTION,
            },
            **kwargs,
        )


class BulkSelectionForm(forms.Form):
    """What the table sent: an action and the checked tokens (or all of the page's)."""

    action = forms.ChoiceField(
        choices=list(ACTIONS.items()),
        error_messages={
            "required": "Choose what to do with the selected tokens.",
            "invalid_choice": "That action does not exist: choose Revoke selected, Delete "
            "selected or Change environments.",
        },
    )
    tokens = TokenSelectionField()
    all_on_page = forms.BooleanField(required=False)
    page_tokens = TokenSelectionField()

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("tokens", "page_tokens"):
            field = cast(TokenSelectionField, self.fields[name])
            # The confirmation names each token by key and environments (a key may have several).
            field.queryset = (
                Token.objects.for_workspace(workspace)
                .order_by("key")
                .prefetch_related("environments")
            )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        chosen = data.get("page_tokens") if data.get("all_on_page") else data.get("tokens")
        selection = list(chosen or [])
        if not selection:
            raise forms.ValidationError(NOTHING_SELECTED)
        if len(selection) > BULK_MAX_TOKENS:
            raise forms.ValidationError(
                f"Select at most {BULK_MAX_TOKENS} tokens at once; nothing was changed."
            )
        data["selection"] = sorted(selection, key=lambda token: token.key)
        return data

    @property
    def selection(self) -> list[Token]:
        return self.cleaned_data["selection"]

    @property
    def has_gone_tokens(self) -> bool:
        return any(self.has_error(name, "gone") for name in ("tokens", "page_tokens"))

    @property
    def problem(self) -> str:
        """The one message that refuses this selection (form errors say it once)."""
        messages = [error for errors in self.errors.values() for error in errors]
        return str(messages[0]) if messages else ""


class BulkConfirmForm(forms.Form):
    """The confirmation: the count typed for a deletion, the environments for a change."""

    confirm_count = forms.CharField(
        required=False,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "inputmode": "numeric",
                "class": "form-control",
                "spellcheck": "false",
            }
        ),
    )
    environments = CatalogChoiceField(
        label="Environments",
        required=False,
        queryset=None,
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(
        self, *args: Any, workspace: Workspace, action: str, count: int, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.action, self.count = action, count
        self.fields["confirm_count"].label = f"Type {count} to confirm"
        cast(
            CatalogChoiceField, self.fields["environments"]
        ).queryset = workspace.environments.all()

    def clean_confirm_count(self) -> str:
        typed = self.cleaned_data["confirm_count"].strip()
        if self.action == "delete" and typed != str(self.count):
            raise forms.ValidationError(
                f"Type the number of tokens exactly as shown ({self.count}) to delete them."
            )
        return typed

    def clean_environments(self) -> list:
        environments = list(self.cleaned_data["environments"])
        if self.action == "environments" and not environments:
            raise forms.ValidationError("Choose at least one environment.")
        return environments


def perform(
    request: AuthenticatedHttpRequest,
    workspace: Workspace,
    action: str,
    selection: list[Token],
    confirm: BulkConfirmForm,
) -> str:
    """Do the action; the message the user sees after it."""
    pks = [token.pk for token in selection]
    if action == "revoke":
        revoked = lifecycle.revoke_many(workspace, pks, by=request.user)
        if not revoked:  # a second click, or someone else was quicker
            return "Nothing to revoke: the selected tokens were already revoked."
        left = len(selection) - len(revoked)
        extra = f" {left} already revoked, left as they were." if left else ""
        return f"Revoked {len(revoked)} token{'s' if len(revoked) != 1 else ''}.{extra}"
    if action == "delete":
        deleted = lifecycle.delete_many(workspace, pks, by=request.user)
        return f"Deleted {len(deleted)} token{'s' if len(deleted) != 1 else ''} for good."
    environments = confirm.cleaned_data["environments"]
    changed = lifecycle.set_environments_many(workspace, pks, environments, by=request.user)
    names = ", ".join(env.name for env in environments)
    if not changed:
        return f"Nothing to change: the selected tokens already had {names} (or are revoked)."
    return f"Environments of {len(changed)} token{'s' if len(changed) != 1 else ''} set to {names}."


@signed_in_view("POST")
def bulk_action(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.EDITOR)
    selection = BulkSelectionForm(request.POST, workspace=workspace)
    context: dict[str, Any] = {"nav": "tokens", "cancel_url": list_url(workspace)}
    if not selection.is_valid():
        context |= {"title": "Nothing was changed", "refusal": selection.problem}
        # Ids of other workspaces (or gone) are a bad request; no action or token, a slip.
        # All of them deleted meanwhile (a double click on Delete): said, and not an error.
        forged = (
            not request.htmx
            and bool({"tokens", "page_tokens"} & set(selection.errors))
            and selection.problem != ALREADY_GONE
        )
        response = render_modal(
            request, "tokens/bulk_confirm.html", context, status=400 if forged else 200
        )
        if request.htmx and selection.has_gone_tokens:
            # The table behind the modal still shows the deleted rows: redraw it.
            trigger_client_event(response, "tokensChanged", {})
        return response
    action, tokens = selection.cleaned_data["action"], selection.selection
    confirming = "confirm" in request.POST
    confirm = BulkConfirmForm(
        request.POST if confirming else None,
        workspace=workspace,
        action=action,
        count=len(tokens),
        initial={"environments": shared_environments(tokens)},
    )
    if confirming and confirm.is_valid():
        try:
            message = perform(request, workspace, action, tokens, confirm)
        except ValidationError as refused:  # tokens that would overlap others of their key
            confirm.add_error("environments", refused.messages)
        else:
            return modal_success(
                request, message=message, event="tokensChanged", redirect_to=list_url(workspace)
            )
    noun = f"{len(tokens)} token{'s' if len(tokens) != 1 else ''}"
    if action in ("revoke", "delete"):
        # What breaks, as the single dialog says it: each token's recent use, the ones used
        # lately first (one query for them all), with the reads still pending folded in.
        settle()
        recent = Token.recent_use_of(tokens)
        tokens = sorted(tokens, key=lambda token: not recent[token.pk].lately)
        context |= {
            "uses": [(token, recent[token.pk]) for token in tokens],
            "used_lately": sum(recent[token.pk].lately for token in tokens),
        }
    context |= {
        "action": action,
        "tokens": tokens,
        "form": confirm,
        "revoked": sum(token.is_revoked for token in tokens),
        "title": {
            "revoke": f"Revoke {noun}?",
            "delete": f"Delete {noun}?",
            "environments": f"Change the environments of {noun}",
        }[action],
        "warning": BREAKS_SERVICES,
        "submit_label": {
            "revoke": f"Revoke {noun}",
            "delete": f"Delete {noun}",
            "environments": "Change environments",
        }[action],
    }
    return render_modal(request, "tokens/bulk_confirm.html", context)


def shared_environments(tokens: list[Token]) -> list[int]:
    """The environments every selected token has (the change's starting point): one query."""
    through = Token.environments.through
    pairs = through.objects.filter(token__in=tokens).values_list("token_id", "environment_id")
    per_token: dict[object, set[int]] = {token.pk: set() for token in tokens}
    for token_id, env_id in pairs:
        per_token[token_id].add(env_id)
    return sorted(set.intersection(*per_token.values())) if per_token else []
