"""What an access key and a workload identity share, written once: both are a named thing of one
workspace, bound to a use context (an environment and optionally a product and/or an app of that
workspace), with an optional expiry and optional allowed source networks.

`BoundContext` is an abstract model with methods only: each concrete model declares its own
fields (their related names differ), so the migration state is the same as without it.
`expiry_errors` and `network_errors` check what a creator asks for; `address_in` is the network
rule every request meets.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from tokens.models import UseContext, midnight_utc

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from workspaces.models import App, Environment, Product

NAME_MAX_LENGTH = 100
EXPIRY_MAX_DAYS = 3650
MAX_NETWORKS = 50
NETWORK_MAX_LENGTH = 64  # long enough for any IPv6 network written out in full

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def network_errors(entries: Iterable[str]) -> tuple[list[str], list[str]]:
    """(normalised networks, messages) for allowed source addresses: IPv4 or IPv6 addresses
    or CIDR networks, validated with the ipaddress module. A plain address is a /32 or /128."""
    networks: list[str] = []
    errors: list[str] = []
    for entry in entries:
        text = entry.strip() if isinstance(entry, str) else ""
        if not text or len(text) > NETWORK_MAX_LENGTH:
            errors.append(f"“{str(entry)[:NETWORK_MAX_LENGTH]}” is not an address or network.")
            continue
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                errors.append(
                    f"“{text}” is not an IPv4 or IPv6 address or network "
                    "(e.g. 203.0.113.0/24 or 2001:db8::/32)."
                )
            else:
                errors.append(f"“{text}” has host bits set; did you mean {loose}?")
            continue
        if str(network) not in networks:
            networks.append(str(network))
    if len(networks) > MAX_NETWORKS:
        errors.append(f"At most {MAX_NETWORKS} allowed networks per key.")
    return networks, errors


def address_in(address: str | None, networks: Iterable[Network]) -> bool:
    """Whether `address` (an IPv4 or IPv6 address; None or junk is in none) is in one of
    `networks` (an IPv4-mapped IPv6 address counts as its IPv4 address)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)  # ::ffff:203.0.113.5 is 203.0.113.5
    return any(
        candidate in network
        for candidate in candidates
        for network in networks
        if candidate.version == network.version
    )


def expiry_errors(expires: object, now: dt.datetime) -> tuple[dt.datetime | None, list[str]]:
    """(expiry moment, messages) for `expires`: a number of days from now, a date (the key dies
    at 00:00 UTC that day, like a token's Expiry Date) or None for never."""
    if expires is None:
        return None, []
    if isinstance(expires, dt.datetime) or not isinstance(expires, int | dt.date):
        return None, ["The expiry is a number of days, a date, or never."]
    if isinstance(expires, dt.date):
        if midnight_utc(expires) <= now:
            return None, ["The expiry date must be in the future (keys expire at 00:00 UTC)."]
        return midnight_utc(expires), []
    if isinstance(expires, bool) or not 1 <= expires <= EXPIRY_MAX_DAYS:
        return None, [f"The expiry is 1 to {EXPIRY_MAX_DAYS} days."]
    return now + dt.timedelta(days=expires), []


def limit_errors(
    expires: object, allowed_networks: Iterable[str], now: dt.datetime
) -> tuple[dt.datetime | None, list[str], dict[str, list[str]]]:
    """(expiry moment, normalised networks, {field: [message]}) for what a creator asks of a
    new key's or identity's expiry and allowed networks."""
    networks, network_messages = network_errors(list(allowed_networks))
    expires_at, expiry_messages = expiry_errors(expires, now)
    errors = {}
    if network_messages:
        errors["allowed_networks"] = network_messages
    if expiry_messages:
        errors["expires_at"] = expiry_messages
    return expires_at, networks, errors


class BoundContext(models.Model):
    """The rules of a named thing bound to a use context in one workspace. A concrete model
    declares `workspace`, `name`, `environment`, `product`, `app`, `allowed_networks` and
    `expires_at`, and says how the messages name it."""

    noun: ClassVar[str]  # "Choose the environment the key resolves in."
    kind: ClassVar[str]  # "This access key was already deleted."
    a_kind: ClassVar[str]  # "An access key named “x” already exists in this workspace."

    if TYPE_CHECKING:
        workspace_id: int
        name: str
        environment: Environment
        environment_id: int | None
        product: Product | None
        app: App | None
        allowed_networks: list[str]
        expires_at: dt.datetime | None

        def record(self, action: str, *, by: User | None = None) -> Any: ...

    class Meta:
        abstract = True

    @property
    def context(self) -> UseContext:
        return UseContext(self.environment, product=self.product, app=self.app)

    def is_expired(self, at: dt.datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (at or timezone.now())

    @cached_property
    def _networks(self) -> list[Network]:
        return [ipaddress.ip_network(network) for network in self.allowed_networks]

    def allows_address(self, address: str | None) -> bool:
        """Whether a request from `address` may use it (any address when no list)."""
        return not self.allowed_networks or address_in(address, self._networks)

    def context_errors(self) -> dict[str, list[str]]:
        """The context's broken rules as {field: [message]}: an environment is required, and
        the environment, product and app must be this workspace's."""
        errors: dict[str, list[str]] = {}
        for field in ("environment", "product", "app"):
            item = getattr(self, field)
            if item is not None and item.workspace_id != self.workspace_id:
                errors[field] = [
                    f"Choose a{'n' if field != 'product' else ''} {field} of this workspace."
                ]
        if self.environment_id is None:
            errors.setdefault(
                "environment", [f"Choose the environment the {self.noun} resolves in."]
            )
        return errors

    def context_detail(self) -> dict[str, str]:
        """The context as an audit event's detail names it: the items' slugs."""
        detail = {"environment": self.environment.slug}
        if self.product is not None:
            detail["product"] = self.product.slug
        if self.app is not None:
            detail["app"] = self.app.slug
        return detail

    def name_is_taken(self) -> bool:
        manager: Any = type(self)._default_manager  # the concrete model's, with its fields
        others = manager.filter(workspace_id=self.workspace_id, name=self.name)
        return others.exclude(pk=self.pk).exists()

    def duplicate_name_message(self) -> str:
        return f"{self.a_kind} named “{self.name}” already exists in this workspace."

    def insert(self, action: str, *, by: User | None) -> None:
        """Store it, new, with the audit event `action`; ValidationError on the name if another
        request took it meanwhile (the unique constraint is the last word)."""
        try:
            with transaction.atomic():
                self.save(force_insert=True)
                self.record(action, by=by)
        except IntegrityError:
            if self.name_is_taken():
                raise ValidationError({"name": [self.duplicate_name_message()]}) from None
            raise

    def delete_recorded(self, action: str, *, by: User | None) -> None:
        """Delete it for good with the audit event `action` (which keeps its name); a
        ValidationError if another request deleted it first."""
        manager: Any = type(self)._default_manager
        with transaction.atomic():
            current = manager.select_for_update().filter(pk=self.pk).first()
            if current is None:
                raise ValidationError(f"This {self.kind} was already deleted.")
            current.record(action, by=by)
            current.delete()
