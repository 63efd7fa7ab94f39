"""Compare environments: one row per Token Key, one column per environment, and in each cell the
tokens of that key valid there (status, expiry, scope, version), or a gap and one click to fill
it. The drift check: which keys are missing somewhere.

Never a value, a hint or a ciphertext: the tokens are read without their ciphertext, and the
template shows none of the rest. The page costs the same few queries whatever the number of keys
and environments: the environments, a page of keys (and its count), that page's tokens and their
relations.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from lib.htmx import wants_fragment
from lib.views import signed_in_view
from tokens.models import ExpiryState, Token, TokenStatus
from tokens.table import scope_of, table_tokens, with_relations
from workspaces.access import get_workspace_for
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import Environment, Workspace

if TYPE_CHECKING:
    from tokens.table import TableToken

KEYS_PER_PAGE = 50


class CompareFilterForm(forms.Form):
    """The query string: only keys missing somewhere, and which page of keys."""

    missing = forms.BooleanField(label="Keys missing somewhere", required=False)

    @property
    def only_missing(self) -> bool:
        return self.is_valid() and self.cleaned_data["missing"]


def keys_of(workspace: Workspace, environments: int, *, only_missing: bool) -> QuerySet[Any]:
    """The workspace's keys, by name, each once; `only_missing`: those some environment of
    `environments` (their number) has no unrevoked token of."""
    keys = Token.objects.for_workspace(workspace).values("key").order_by("key")
    if not only_missing:
        return keys.distinct()
    covered = Count("environments", distinct=True, filter=~Q(status=TokenStatus.REVOKED))
    return keys.annotate(covered=covered).filter(covered__lt=environments)


@dataclass(frozen=True)
class CellToken:
    """One token in a cell, as the cell says it."""

    token: TableToken
    status: str  # "active", "expiring", "expired", "revoked" (the CSS class too)
    scope: str  # "every product and app", "product Checkout"...
    history_url: str


@dataclass
class Cell:
    environment: Environment
    tokens: list[CellToken] = field(default_factory=list)
    add_url: str = ""

    @property
    def missing(self) -> bool:
        """No unrevoked token of the key is valid here (a new one may be added)."""
        return all(cell.status == "revoked" for cell in self.tokens)


@dataclass
class Row:
    key: str
    cells: list[Cell]

    @property
    def missing_in(self) -> list[str]:
        return [cell.environment.name for cell in self.cells if cell.missing]


def status_of(token: Token, now: dt.datetime) -> str:
    if token.is_revoked:
        return "revoked"
    return {ExpiryState.EXPIRED: "expired", ExpiryState.SOON: "expiring"}.get(
        token.expiry_state(now), "active"
    )


def compare_rows(
    workspace: Workspace,
    keys: list[str],
    environments: list[Environment],
    now: dt.datetime,
) -> list[Row]:
    """A row per key of `keys`, a cell per environment: two queries whatever their number."""
    tokens = with_relations(
        table_tokens(
            Token.objects.for_workspace(workspace).filter(key__in=keys).order_by("created_at", "pk")
        )
    )
    create_url = reverse("tokens:create", args=[workspace.slug])
    placeholder = str(uuid.UUID(int=0))
    detail_url = reverse("tokens:detail", args=[workspace.slug, placeholder])
    by_key: dict[str, list[TableToken]] = {key: [] for key in keys}
    for token in tokens:
        by_key[token.key].append(token)
    rows = []
    for key in keys:
        cells = {env.pk: Cell(env) for env in environments}
        source = None
        for token in by_key[key]:
            if source is None or source.is_revoked:
                source = token  # the key's first unrevoked token prefills "Add"
            entry = CellToken(
                token=token,
                status=status_of(token, now),
                scope=scope_of(token).describe(),
                history_url=detail_url.replace(placeholder, str(token.pk)),
            )
            for env in token.envs:
                cells[env.pk].tokens.append(entry)
        for cell in cells.values():
            cell.tokens.sort(key=lambda entry: entry.status == "revoked")
            if cell.missing and source is not None:
                cell.add_url = f"{create_url}?from={source.pk}&environment={cell.environment.pk}"
        rows.append(Row(key, list(cells.values())))
    return rows


@signed_in_view("GET", fragment=True)
def compare(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug)
    filters = CompareFilterForm(request.GET)
    environments = list(workspace.environments.all())
    keys = keys_of(workspace, len(environments), only_missing=filters.only_missing)
    page = Paginator(keys, KEYS_PER_PAGE).get_page(request.GET.get("page"))
    now = timezone.now()
    url = reverse("tokens:compare", args=[slug])
    query = "missing=on&" if filters.only_missing else ""

    def page_url(number: int) -> str:
        return f"{url}?{query}page={number}"

    context = {
        "nav": "tokens",
        "tab": "compare",
        "filters": filters,
        "environments": environments,
        "rows": compare_rows(workspace, [item["key"] for item in page], environments, now),
        "page": page,
        "compare_url": url,
        "can_manage": request.membership.can_manage_tokens,
        "prev_url": page_url(page.previous_page_number()) if page.has_previous() else "",
        "next_url": page_url(page.next_page_number()) if page.has_next() else "",
    }
    template = "tokens/compare.html#matrix" if wants_fragment(request) else "tokens/compare.html"
    return render(request, template, context)
