"""Everything Coffer keeps sealed, in one list.

The backup's manifest counts it and names the master keys it needs, `verify_backup` opens every
item of it, the start-up key check opens one item per master key it uses, and
`rotate_master_key` seals it again under the active key: all from `SOURCES`, so a new kind of
ciphertext is counted, checked and rotated everywhere once it is registered.

Two kinds of source:

- sealed under a workspace's data key (`Source.by_master_key` False): token values, old token
  versions, webhook signing secrets, pending imports. Their master key is their data key's;
  rotating re-wraps the data key and leaves them as they are;
- sealed straight under a master key (`by_master_key` True): people's two-factor secrets (TOTP
  keys and recovery-code seeds). Each item names its master key; rotating seals it again.

The data keys themselves (`WorkspaceKey`) are counted and checked apart, first. Each app
registers its own sources at start-up (`register`, from its AppConfig.ready), so this module
imports none of the apps above it (as audit's signal, event_recorded).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db.models import Count

from keys.models import WorkspaceKey


@dataclass(frozen=True)
class Sealed:
    """One ciphertext: what it is in words ("token STRIPE_KEY"), and how to open it, raising
    crypto.CryptoError (never with the plaintext in it). A data-key item has its workspace and
    is opened with `open(dek, label=...)`; a master-key item names its master key and is opened
    with `open(label=...)`. The plaintext is dropped at once by every caller."""

    what: str
    open: Callable[..., object]
    workspace_id: int | None = None
    master_key_id: str | None = None


@dataclass(frozen=True)
class Source:
    name: str  # what reports count, e.g. "token values"
    items: Callable[[str], Iterable[Sealed]]  # database alias -> its ciphertexts
    by_master_key: bool = False
    # For a master-key source: seal every item on an old master key again under the active
    # one; (how many items were sealed again, one message per failure).
    reseal: Callable[[], tuple[int, list[str]]] | None = None
    # For a master-key source: at least one item per master key id in use, in a number of
    # queries and rows that does not grow with the items (the start-up check opens one of
    # each). Without it, the check reads every item.
    one_per_master_key: Callable[[str], Iterable[Sealed]] | None = None

    @property
    def manifest_name(self) -> str:
        return self.name.replace(" ", "_").replace("-", "_")


SOURCES: list[Source] = []


def register(source: Source) -> None:
    if all(known.name != source.name for known in SOURCES):
        SOURCES.append(source)


def master_key_sources() -> list[Source]:
    return [source for source in SOURCES if source.by_master_key]


# --- what a database holds ----------------------------------------------------------------


@dataclass
class Inventory:
    """How many of each sealed thing a database holds, and which master keys they need."""

    counts: dict[str, int] = field(default_factory=dict)  # manifest name -> how many
    # master key id -> what it seals there, in words -> how many
    master_keys: dict[str, Counter] = field(default_factory=dict)

    @property
    def master_key_ids(self) -> list[str]:
        return sorted(self.master_keys)


def inventory(using: str) -> Inventory:
    """Count every sealed thing in the database `using` (without opening any)."""
    found = Inventory()
    data_keys = WorkspaceKey.objects.using(using).values_list("kek_id").annotate(n=Count("pk"))
    for kek_id, number in data_keys.order_by():
        found.master_keys.setdefault(kek_id, Counter())["data keys"] += number
    found.counts["data_keys"] = sum(use["data keys"] for use in found.master_keys.values())
    for source in SOURCES:
        number = 0
        for item in source.items(using):
            number += 1
            if source.by_master_key:
                found.master_keys.setdefault(item.master_key_id or "", Counter())[source.name] += 1
        found.counts[source.manifest_name] = number
    found.master_keys.pop("", None)  # items in no known form name no key (verify says so)
    return found
