"""What an import will do (`preview`) and doing it (`run_import`), from a PendingImport.

Both parse the stored text again and ask the database, in one query, which keys exist, so the
import does exactly what a fresh preview would say: a key created by someone between the preview
and the import is skipped or replaced like any existing one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.views.decorators.debug import sensitive_variables

from imports.models import PendingImport
from imports.parsing import Entry, EntryState, parse_entries
from tokens import lifecycle
from tokens.models import Token, TokenStatus, lock_token_changes

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from imports.forms import ImportOptionsForm

IMPORT_DETAIL = {"source": "import"}


class ImportConflict(Exception):
    """A key was created meanwhile (nothing was imported); the message is safe to show."""


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
    def revoked(self) -> int:
        return self.counts[EntryState.EXISTS_REVOKED]

    @property
    def invalid(self) -> int:
        return self.counts[EntryState.INVALID]


@sensitive_variables("text", "entries")
def preview(pending: PendingImport, *, lock: bool = False) -> Preview:
    """The entries of the pending import, each marked new, existing, revoked or invalid."""
    entries = parse_entries(pending.text())
    keys = [entry.key for entry in entries if entry.state is EntryState.NEW]
    existing = Token.objects.for_workspace(pending.workspace).filter(key__in=keys)
    if lock:
        existing = existing.select_for_update()
    status = dict(existing.values_list("key", "status"))
    for entry in entries:
        if entry.key not in status or entry.state is not EntryState.NEW:
            continue
        if status[entry.key] == TokenStatus.REVOKED:
            entry.state, entry.value = EntryState.EXISTS_REVOKED, None
            entry.reason = "Already exists and is revoked: it cannot be replaced."
        else:
            entry.state = EntryState.EXISTS
    return Preview(entries)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


@dataclass(frozen=True)
class Outcome:
    created: int
    replaced: int
    kept: int  # existing keys left as they were (Skip existing)
    not_imported: int  # invalid lines and revoked keys

    @property
    def message(self) -> str:
        parts = [f"Imported {_plural(self.created, 'new token')}"]
        if self.replaced:
            parts.append(f"replaced the value of {self.replaced}")
        if self.kept:
            verb = "exists" if self.kept == 1 else "exist"
            parts.append(f"skipped {self.kept} that already {verb}")
        if self.not_imported:
            parts.append(f"left out {_plural(self.not_imported, 'invalid or revoked line')}")
        return ", ".join(parts) + "."


@sensitive_variables("entries", "new", "replacing")
def run_import(pending: PendingImport, options: ImportOptionsForm, *, by: User) -> Outcome:
    """Create the new tokens (and replace existing values, if asked) in one transaction, one
    audit event per token; the pending import is deleted with it. ImportConflict: nothing."""
    data = options.cleaned_data
    try:
        with transaction.atomic():
            # Deleting first claims the pending import: a second click on Import (or another
            # tab) waits here for this transaction, then finds nothing to delete and stops.
            if not PendingImport.objects.filter(pk=pending.pk).delete()[0]:
                raise ImportGone
            lock_token_changes(pending.workspace)  # what the preview finds stays so until commit
            entries = preview(pending, lock=True).entries
            new = {e.key: e.value for e in entries if e.state is EntryState.NEW and e.value}
            replacing = {
                e.key: e.value for e in entries if e.state is EntryState.EXISTS and e.value
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
    except IntegrityError:
        raise ImportConflict(
            "Someone created one of these keys while you were importing, so nothing was "
            "imported. Preview the file again."
        ) from None
    existing = sum(entry.state is EntryState.EXISTS for entry in entries)
    return Outcome(
        created=len(created),
        replaced=len(replaced),
        kept=existing - len(replaced),
        not_imported=len(entries) - len(created) - existing,
    )
