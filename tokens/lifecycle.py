"""Changes to many tokens at once: the .env import (imports/) and the Tokens page's bulk actions
(tokens/bulk.py).

The rules are the single-token ones of tokens/models.py (a revoked token is final, a new value
is a new version, environments belong to the workspace); what differs is the cost. Each function
runs in one transaction, locks the rows it changes, writes them with a few bulk queries, unwraps
the workspace's data key once, and still records one audit event per token through
`AuditEvent.record`, so the Activity tab and the webhooks hear of every token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.models import AuditAction, AuditEvent
from keys.models import WorkspaceKey
from tokens.models import Token, TokenStatus, TokenVersion, lock_token_changes
from workspaces.models import App, Environment, Product, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _actor(by: User | None) -> User | None:
    return by if by is not None and by.pk else None


@sensitive_variables("values", "value", "dek")
def create_many(
    workspace: Workspace,
    values: Mapping[str, str],
    *,
    by: User | None,
    type: str,
    environments: Iterable[Environment],
    products: Iterable[Product] = (),
    apps: Iterable[App] = (),
    detail: dict | None = None,
) -> list[Token]:
    """New tokens, key -> value, all with the same type and scope. The caller has checked the
    keys and values (imports/parsing.py) and, under `lock_token_changes` in the same
    transaction, that none overlaps a token of its key."""
    environments, products, apps = list(environments), list(products), list(apps)
    if not values:
        return []
    dek = WorkspaceKey.dek_for(workspace, label=f"import in workspace {workspace.slug}")
    tokens = []
    for key, value in values.items():
        token = Token(workspace=workspace, key=key, type=type, created_by=by, updated_by=by)
        token._encrypt(value, dek=dek)
        tokens.append(token)
    with transaction.atomic():
        Token.objects.bulk_create(tokens)
        links: list[tuple[Any, str, list[Any]]] = [
            (Token.environments.through, "environment_id", environments),
            (Token.products.through, "product_id", products),
            (Token.apps.through, "app_id", apps),
        ]
        for through, column, objects in links:
            through.objects.bulk_create(
                through(token_id=token.pk, **{column: obj.pk})
                for token in tokens
                for obj in objects
            )
        TokenVersion.objects.bulk_create(
            TokenVersion(
                token=token,
                version=token.value_version,
                ciphertext=token.ciphertext,
                value_hint=token.value_hint,
                set_at=token.value_set_at,
                set_by=_actor(by),
            )
            for token in tokens
        )
        for token in tokens:
            AuditEvent.record(workspace, AuditAction.CREATED, by=by, token=token, detail=detail)
    return tokens


@sensitive_variables("values", "value", "dek")
def replace_values(
    workspace: Workspace,
    values: Mapping[Any, str],
    *,
    by: User | None,
    detail: dict | None = None,
) -> list[Token]:
    """A new value (a new version, as an edit makes) for each active token of `workspace` whose
    id is in `values` (token id -> value); revoked tokens are left as they are. Returns the
    tokens changed."""
    with transaction.atomic():
        tokens = list(
            Token.objects.for_workspace(workspace)
            .filter(pk__in=list(values), status=TokenStatus.ACTIVE)
            .select_for_update()
            .order_by("pk")
        )
        if not tokens:
            return []
        dek = WorkspaceKey.dek_for(workspace, label=f"import in workspace {workspace.slug}")
        now = timezone.now()
        for token in tokens:
            token.value_version += 1
            token._encrypt(values[token.pk], dek=dek)
            token.updated_by, token.updated_at = by, now
        Token.objects.bulk_update(
            tokens,
            [
                "ciphertext",
                "value_version",
                "value_hint",
                "value_set_at",
                "expires_at",
                "updated_by",
                "updated_at",
            ],
        )
        TokenVersion.objects.bulk_create(
            TokenVersion(
                token=token,
                version=token.value_version,
                ciphertext=token.ciphertext,
                value_hint=token.value_hint,
                set_at=token.value_set_at,
                set_by=_actor(by),
            )
            for token in tokens
        )
        # Keep the last COFFER_TOKEN_VERSIONS of each, as an edit does.
        TokenVersion.objects.filter(
            token__in=tokens,
            version__lte=F("token__value_version") - settings.COFFER_TOKEN_VERSIONS,
        ).delete()
        for token in tokens:
            AuditEvent.record(
                workspace,
                AuditAction.UPDATED,
                by=by,
                token=token,
                detail={"changed": ["value"], **(detail or {})},
            )
    return tokens


def _locked(workspace: Workspace, pks: Iterable[object]) -> list[Token]:
    """The tokens of `workspace` among `pks`, locked for this transaction, by key."""
    return list(
        Token.objects.for_workspace(workspace)
        .filter(pk__in=list(pks))
        .select_for_update()
        .order_by("key")
    )


def revoke_many(workspace: Workspace, pks: Iterable[object], *, by: User | None) -> list[Token]:
    """Revoke the active ones of these tokens (revoked is final: already revoked ones are left
    as they are). Returns the tokens revoked."""
    with transaction.atomic():
        tokens = [token for token in _locked(workspace, pks) if not token.is_revoked]
        now = timezone.now()
        Token.objects.filter(pk__in=[token.pk for token in tokens]).update(
            status=TokenStatus.REVOKED,
            revoked_at=now,
            revoked_by=by,
            updated_at=now,
            updated_by=by,
        )
        for token in tokens:
            token.status, token.revoked_at, token.updated_at = TokenStatus.REVOKED, now, now
            AuditEvent.record(workspace, AuditAction.REVOKED, by=by, token=token)
    return tokens


def delete_many(workspace: Workspace, pks: Iterable[object], *, by: User | None) -> list[str]:
    """Delete these tokens and their ciphertexts for good; the audit trail keeps their keys.
    Returns the keys deleted."""
    with transaction.atomic():
        tokens = _locked(workspace, pks)
        for token in tokens:
            AuditEvent.record(workspace, AuditAction.DELETED, by=by, token=token)
        Token.objects.filter(pk__in=[token.pk for token in tokens]).delete()
    return [token.key for token in tokens]


def _overlap_refusals(
    workspace: Workspace,
    changed: list[Token],
    before: Mapping[object, set[int]],
    environments: list[Environment],
) -> list[str]:
    """For each changed token that now overlaps another of its key (the selection's new
    environments already written in this transaction), why: "STRIPE_SECRET (Sandbox): …",
    named by its environments before the change. Only keys with another unrevoked token are
    checked, so a usual selection costs one query."""
    keys = {token.key for token in changed}
    shared = set(
        Token.objects.for_workspace(workspace)
        .filter(key__in=keys)
        .exclude(status=TokenStatus.REVOKED)
        .values("key")
        .annotate(tokens=Count("pk"))
        .filter(tokens__gt=1)
        .values_list("key", flat=True)
    )
    suspects = [token for token in changed if token.key in shared]
    if not suspects:
        return []
    names = dict(workspace.environments.values_list("pk", "name"))
    scoped = Token.objects.filter(pk__in=[token.pk for token in suspects]).prefetch_related(
        "products", "apps"
    )
    refusals = []
    for token in sorted(scoped, key=lambda token: (token.key, token.pk)):
        errors = token.overlap_errors(
            products=token.products.all(), apps=token.apps.all(), environments=environments
        )
        label = ", ".join(sorted(names[pk] for pk in before[token.pk]))
        refusals += [f"{token.key} ({label}): {error}" for error in errors]
    return refusals


def set_environments_many(
    workspace: Workspace,
    pks: Iterable[object],
    environments: Iterable[Environment],
    *,
    by: User | None,
) -> list[Token]:
    """Make `environments` (of this workspace, at least one) the environments of each of these
    tokens that is not revoked. Returns the tokens whose environments changed. Raises
    ValidationError, one message per token that would then overlap another token of its key,
    changing nothing."""
    environments = list(environments)
    if not environments or any(env.workspace_id != workspace.pk for env in environments):
        raise ValueError("environments must be one or more of the workspace's")
    wanted = {env.pk for env in environments}
    through = Token.environments.through
    with transaction.atomic():
        lock_token_changes(workspace)
        tokens = [token for token in _locked(workspace, pks) if not token.is_revoked]
        current: dict[object, set[int]] = {token.pk: set() for token in tokens}
        for token_id, env_id in through.objects.filter(token__in=tokens).values_list(
            "token_id", "environment_id"
        ):
            current[token_id].add(env_id)
        changed = [token for token in tokens if current[token.pk] != wanted]
        if not changed:
            return []
        through.objects.filter(token__in=changed).delete()
        through.objects.bulk_create(
            through(token_id=token.pk, environment_id=env.pk)
            for token in changed
            for env in environments
        )
        if refusals := _overlap_refusals(workspace, changed, current, environments):
            raise ValidationError(refusals)  # and the transaction undoes the change
        now = timezone.now()
        Token.objects.filter(pk__in=[token.pk for token in changed]).update(
            updated_at=now, updated_by=by
        )
        for token in changed:
            AuditEvent.record(
                workspace,
                AuditAction.UPDATED,
                by=by,
                token=token,
                detail={"changed": ["environments"]},
            )
    return changed
