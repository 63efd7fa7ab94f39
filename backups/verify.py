"""Can every value come back? The checks `verify_backup` runs on a database.

With the key ring on hand, every workspace's data key must unwrap, and every item of every
sealed source (keys/sealed.py: token values and versions, webhook signing secrets, pending
imports, two-factor secrets) must decrypt and authenticate (AES-GCM checks each byte and the row
it belongs to). Each failure names what failed (token, workspace, user, master key id), never a
value: decrypted values live only inside `Sealed.open` and are dropped at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.utils import load_backend
from django.views.decorators.debug import sensitive_variables

from keys import crypto
from keys.models import WorkspaceKey
from keys.sealed import SOURCES, Sealed, Source
from workspaces.models import Workspace


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

    master_key_ids = {kek_id for _, kek_id in data_keys.values()}
    for source in list(sources) or SOURCES:
        tally = report.sources.setdefault(source.name, Tally())
        for item in source.items(using):
            tally.checked += 1
            if source.by_master_key:
                problem = _open_by_master_key(item)
                master_key_ids.add(item.master_key_id or "")
            else:
                problem = _open_by_data_key(item, data_keys, slugs)
            if problem:
                tally.failed += 1
                report.failures.append(problem)
    report.master_key_ids = sorted(master_key_ids - {""})
    return report


def _open_by_master_key(item: Sealed) -> str | None:
    label = f"{item.what} (master key {item.master_key_id!r})"
    try:
        item.open(label=label)  # the plaintext is dropped right here
    except (crypto.CryptoError, crypto.MasterKeyError) as error:
        return str(error)
    return None


@sensitive_variables("dek", "data_keys")
def _open_by_data_key(
    item: Sealed, data_keys: dict[int, tuple[bytes | None, str]], slugs: dict[int, str]
) -> str | None:
    dek, kek_id = data_keys.get(item.workspace_id or 0, (None, ""))
    workspace = slugs.get(item.workspace_id or 0, item.workspace_id)
    label = f"{item.what} in workspace {workspace} (master key {kek_id!r})"
    if not kek_id:
        return f"{label}: the workspace has no data key, so it cannot be decrypted."
    if dek is None:
        return f"{label}: its workspace's data key does not unwrap (see above)."
    try:
        item.open(dek, label=label)  # the plaintext is dropped right here
    except crypto.CryptoError as error:
        return str(error)
    return None


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
