"""The tokens app's sealed things, for the list in keys/sealed.py: each token's current value
and every version it keeps. Registered by TokensConfig.ready."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from keys import crypto
from keys.sealed import Sealed


def token_values(using: str) -> Iterator[Sealed]:
    """Each token's current value."""
    from tokens.models import Token

    tokens = (
        Token.objects.using(using)
        .only("id", "key", "workspace_id", "ciphertext", "value_version")
        .order_by("workspace_id", "key")
    )
    for token in tokens.iterator(chunk_size=500):
        yield Sealed(
            f"token {token.key}",
            partial(
                crypto.decrypt,
                blob=bytes(token.ciphertext),
                aad=crypto.value_aad(token.workspace_id, token.pk, token.value_version),
            ),
            workspace_id=token.workspace_id,
        )


def token_versions(using: str) -> Iterator[Sealed]:
    """Every version a token keeps (History), the current one included; destroyed ones hold
    nothing."""
    from tokens.models import TokenVersion

    versions = (
        TokenVersion.objects.using(using)
        .sealed()
        .select_related("token")
        .only("id", "version", "ciphertext", "token__id", "token__key", "token__workspace_id")
        .order_by("token__workspace_id", "token__key", "version")
    )
    for row in versions.iterator(chunk_size=500):
        yield Sealed(
            f"version {row.number} of token {row.token.key}",
            partial(
                crypto.decrypt,
                blob=bytes(row.ciphertext),
                aad=crypto.value_aad(row.token.workspace_id, row.token.pk, row.version),
            ),
            workspace_id=row.token.workspace_id,
        )
