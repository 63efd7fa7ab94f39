"""What an import will do (`preview`) and doing it (`run_import`), from a PendingImport.

Both parse the stored text again and ask the database, in one query, which keys exist, so the
import does exactly what a fresh preview would say: a key created by someone between the preview
and the import is skipped or replaced like any existing one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from imports.models import PendingImport
from imports.parsing import Entry, EntryState, parse_entries
from tokens import lifecycle
from tokens.models import Token, TokenStatus, lock_token_changes
from workspaces.models import App, Environment, Product

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from imports.forms import ImportOptionsForm

IMPORT_DETAIL = {"source": "import"}


class ImportGone(Exception):
    """The pending import was imported or cancelled meanwhile (a second click on Import, or
    another tab): nothing more was imported."""


@dataclass(frozen=True)
class Preview:
    entries: list[Entry]

    @property
    def counts(self) -> Counter[EntryState]:
        return Counter(entry.state for entry in self.entries)

    @property
    def new(self) -> int:
        return self.counts[EntryState.NEW]

    @property
    def existing(self) -> int:
        return self.counts[EntryState.EXISTS]

    @property
    def invalid(self) -> int:
        return self.counts[EntryState.INVALID]


@dataclass(frozen=True)
class Target:
    """Where the imported tokens will be valid: the options form's environments and scope."""

    environments: list[Environment]
    products: list[Product] = field(default_factory=list)
    apps: list[App] = field(default_factory=list)

    @classmethod
    def of(cls, options: ImportOptionsForm) -> Target | None:
        """The target the form names, or None while it names none (or not validly)."""
        if not options.is_bound or not options.is_valid():
            return None
        data = options.cleaned_data
        return cls(list(data["environments"]), list(data["products"]), list(data["apps"]))


def where_valid(tokens: list[Token]) -> str:
    """ "Production (every product and app); Sandbox (product Checkout)": where these tokens
    of one key are valid, as the preview says it."""
    return "; ".join(
        f"{', '.join(env.name for env in token.environments.all())} ({token.scope.describe()})"
        for token in tokens
    )


@sensitive_variables("text", "entries")
def preview(pending: PendingImport, *, target: Target | None = None) -> Preview:
    """The entries of the pending import, each marked new, existing or invalid. A key
    "exists" where an unrevoked token of it would overlap the imported one: with a `target`,
    the tokens `Token.objects.overlapping` finds for it (the rule the import itself obeys);
    without one yet, any unrevoked token of the key. A revoked token never counts: it is
    final, and a new token of its key may be made. A few queries for any number of lines."""
    entries = parse_entries(pending.text())
    keys = [entry.key for entry in entries if entry.state is EntryState.NEW]
    if target is None:
        existing = Token.objects.for_workspace(pending.workspace).filter(key__in=keys)
        existing = existing.exclude(status=TokenStatus.REVOKED)
    else:
        existing = Token.objects.overlapping(
            workspace=pending.workspace,
            key=keys,
            environments=target.environments,
            products=target.products,
            apps=target.apps,
        )
    by_key: dict[str, list[Token]] = {}
    for token in existing.with_relations().order_by("key", "created_at", "pk"):
        by_key.setdefault(token.key, []).append(token)
    for entry in entries:
        if entry.key not in by_key or entry.state is not EntryState.NEW:
            continue
        entry.state = EntryState.EXISTS
        entry.tokens = [token.pk for token in by_key[entry.key]]
        entry.where = where_valid(by_key[entry.key])
    return Preview(entries)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


@dataclass(frozen=True)
class Outcome:
    created: int
    replaced: int
    kept: int  # existing keys left as they were (Skip existing)
    not_imported: int  # invalid lines

    @property
    def message(self) -> str:
        parts = [f"Imported {_plural(self.created, 'new token')}"]
        if self.replaced:
            parts.append(f"replaced the value of {self.replaced}")
        if self.kept:
            verb = "exists" if self.kept == 1 else "exist"
            parts.append(f"skipped {self.kept} that already {verb}")
        if self.not_imported:
            parts.append(f"left out {_plural(self.not_imported, 'invalid line')}")
        return ", ".join(parts) + "."


@sensitive_variables("entries", "new", "replacing")
def run_import(pending: PendingImport, options: ImportOptionsForm, *, by: User) -> Outcome:
    """Create the new tokens (and replace existing values, if asked) in one transaction, one
    audit event per token; the pending import is deleted with it."""
    data = options.cleaned_data
    with transaction.atomic():
        # Deleting first claims the pending import: a second click on Import (or another
        # tab) waits here for this transaction, then finds nothing to delete and stops.
        if not PendingImport.objects.filter(pk=pending.pk).delete()[0]:
            raise ImportGone
        # Under the workspace's token lock, what the preview finds stays so until commit: a
        # token made meanwhile is met like any existing one, never overlapped.
        lock_token_changes(pending.workspace)
        entries = preview(pending, target=Target.of(options)).entries
        new = {e.key: e.value for e in entries if e.state is EntryState.NEW and e.value}
        replacing = {
            pk: e.value
            for e in entries
            if e.state is EntryState.EXISTS and e.value
            for pk in e.tokens
        }
        created = lifecycle.create_many(
            pending.workspace,
            new,
            by=by,
            type=data["type"],
            environments=data["environments"],
            products=data["products"],
            apps=data["apps"],
            detail=IMPORT_DETAIL,
        )
        replaced = (
            lifecycle.replace_values(pending.workspace, replacing, by=by, detail=IMPORT_DETAIL)
            if options.replace
            else []
        )
    existing = [entry for entry in entries if entry.state is EntryState.EXISTS]
    changed = {token.pk for token in replaced}
    replaced_keys = sum(1 for entry in existing if changed & set(entry.tokens))
    return Outcome(
        created=len(created),
        replaced=replaced_keys,
        kept=len(existing) - replaced_keys,
        not_imported=len(entries) - len(created) - len(existing),
    )
