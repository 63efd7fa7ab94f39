"""Can every value come back? The checks `verify_backup` runs on a database.

With the key ring on hand, every workspace's data key must unwrap, and every ciphertext of every
source must decrypt and authenticate (AES-GCM checks each byte and the row it belongs to). Each
failure names what failed (token, workspace, master key id), never a value: decrypted values
live only inside `Sealed.open` and are dropped at once.

A source is one kind of ciphertext: a function from a database alias to its `Sealed` items.
Adding one (old token versions, webhook signing secrets, ...) is a function and a line in
SOURCES.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import connections
from django.db.utils import load_backend
from django.views.decorators.debug import sensitive_variables

from notifications.models import Webhook
from tokens import crypto
from tokens.models import Token, TokenVersion, WorkspaceKey
from workspaces.models import Workspace


@dataclass(frozen=True)
class Sealed:
    """One ciphertext: its workspace, what it is in words ("token STRIPE_KEY"), and how to open
    it with the workspace's data key (raising crypto.CryptoError naming `label`)."""

    workspace_id: int
    what: str
    open: Callable[..., object]  # open(dek, label=...) -> the plaintext, discarded at once


@dataclass(frozen=True)
class Source:
    name: str  # what the report counts, e.g. "token values"
    items: Callable[[str], Iterable[Sealed]]  # database alias -> its ciphertexts


def token_values(using: str) -> Iterator[Sealed]:
    """Each token's current value."""
    tokens = (
        Token.objects.using(using)
        .only("id", "key", "workspace_id", "ciphertext", "value_version")
        .order_by("workspace_id", "key")
    )
    for token in tokens.iterator(chunk_size=500):
        yield Sealed(
            token.workspace_id,
            f"token {token.key}",
            partial(
                crypto.decrypt_value,
                blob=bytes(token.ciphertext),
                workspace_id=token.workspace_id,
                token_id=token.pk,
                version=token.value_version,
            ),
        )


def token_versions(using: str) -> Iterator[Sealed]:
    """Every version a token keeps (History), the current one included; destroyed ones hold
    nothing."""
    versions = (
        TokenVersion.objects.using(using)
        .sealed()
        .select_related("token")
        .only("id", "version", "ciphertext", "token__id", "token__key", "token__workspace_id")
        .order_by("token__workspace_id", "token__key", "version")
    )
    for row in versions.iterator(chunk_size=500):
        yield Sealed(
            row.token.workspace_id,
            f"version {row.number} of token {row.token.key}",
            partial(
                crypto.decrypt_value,
                blob=bytes(row.ciphertext),
                workspace_id=row.token.workspace_id,
                token_id=row.token.pk,
                version=row.version,
            ),
        )


def webhook_secrets(using: str) -> Iterator[Sealed]:
    """Each webhook's signing secret (it must be read back to sign deliveries)."""
    hooks = Webhook.objects.using(using).only("id", "workspace_id", "url", "secret_ciphertext")
    for hook in hooks.order_by("workspace_id", "created_at", "id").iterator(chunk_size=500):
        yield Sealed(
            hook.workspace_id,
            f"signing secret of webhook {hook.url}",
            partial(
                crypto.decrypt_webhook_secret,
                blob=bytes(hook.secret_ciphertext),
                workspace_id=hook.workspace_id,
                webhook_id=hook.pk,
            ),
        )


SOURCES: list[Source] = [
    Source("token values", token_values),
    Source("token versions", token_versions),
    Source("webhook signing secrets", webhook_secrets),
]


@dataclass
class Tally:
    checked: int = 0
    failed: int = 0


@dataclass
class Report:
    workspaces: int = 0
    data_keys: Tally = field(default_factory=Tally)
    sources: dict[str, Tally] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # one line each, never a value
    master_key_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def count(self, name: str) -> int:
        return self.sources[name].checked if name in self.sources else 0


@sensitive_variables("dek", "data_keys")
def check_database(using: str, sources: Iterable[Source] = ()) -> Report:
    """Unwrap every data key and open every ciphertext of `sources` (SOURCES by default) in
    the database `using`; a Report with counts and one line per failure."""
    report = Report()
    slugs = dict(Workspace.objects.using(using).order_by().values_list("pk", "slug"))
    report.workspaces = len(slugs)
    data_keys: dict[int, tuple[bytes | None, str]] = {}  # workspace id -> (data key, kek id)
    for record in WorkspaceKey.objects.using(using).order_by("workspace_id").iterator():
        report.data_keys.checked += 1
        label = f"workspace {slugs.get(record.workspace_id, record.workspace_id)}"
        try:
            dek: bytes | None = record.unwrap(label=label)
        except crypto.CryptoError as error:
            dek = None
            report.data_keys.failed += 1
            report.failures.append(f"data key of {error}")
        data_keys[record.workspace_id] = (dek, record.kek_id)
    report.master_key_ids = sorted({kek_id for _, kek_id in data_keys.values()})

    for source in list(sources) or SOURCES:
        tally = report.sources.setdefault(source.name, Tally())
        for item in source.items(using):
            tally.checked += 1
            dek, kek_id = data_keys.get(item.workspace_id, (None, ""))
            workspace = slugs.get(item.workspace_id, item.workspace_id)
            label = f"{item.what} in workspace {workspace} (master key {kek_id!r})"
            problem = None
            if not kek_id:
                problem = f"{label}: the workspace has no data key, so it cannot be decrypted."
            elif dek is None:
                problem = f"{label}: its workspace's data key does not unwrap (see above)."
            else:
                try:
                    item.open(dek, label=label)  # the plaintext is dropped right here
                except crypto.CryptoError as error:
                    problem = str(error)
            if problem:
                tally.failed += 1
                report.failures.append(problem)
    return report


# --- a database beside the configured one -------------------------------------------------


@contextmanager
def database_alias(alias: str, settings_dict: dict[str, Any]) -> Iterator[str]:
    """A connection alias for a throwaway database, for as long as the block runs (this thread
    only; it is never added to the DATABASES setting)."""
    wrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias)
    connections[alias] = wrapper
    try:
        yield alias
    finally:
        wrapper.close()
        del connections[alias]
