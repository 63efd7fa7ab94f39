"""Verifying a CI job's OIDC token for a workload identity, and fetching its issuer's keys.

`verify(token, identity)` returns the token's claims or raises `Refused(check, message)`, the
check being one of: format, algorithm, issuer, key, signature, exp, nbf, iat, audience, claims.
Messages never repeat the token or its claims' values. In order:

1. the token is a JWT of at most MAX_TOKEN_LENGTH characters whose header names RS256 or ES256
   (never `none`, never an HMAC: a public key is no secret) and a key id (`kid`);
2. its `iss` is the identity's issuer;
3. the key is the issuer's published key with that `kid`, of the algorithm's type (RSA keys of
   at least MIN_RSA_BITS, EC keys on P-256): the keys
   come from the issuer's discovery document (`/.well-known/openid-configuration`, whose
   `issuer` must be the identity's) and its `jwks_uri`, cached per issuer for
   JWKS_CACHE_SECONDS and fetched again at most once per REFETCH_SECONDS when a token names an
   unknown `kid` (the issuer rotated its keys);
4. PyJWT checks the signature with that key and only that algorithm, `iss`, `aud` (the
   identity's audience must be one of the token's), `exp`, `nbf` and `iat` with LEEWAY_SECONDS
   of clock skew; `exp`, `iat`, `iss` and `aud` are required;
5. every claim condition of the identity holds.

Discovery and JWKS fetches go through lib/safe_fetch.py, as webhooks do (https, public
addresses only unless COFFER_WEBHOOK_ALLOW_PRIVATE, checked at each fetch and the connection
pinned to the checked address, no redirects), with a deadline of FETCH_TIMEOUT seconds and at
most MAX_DOCUMENT_BYTES read. COFFER_OIDC_ALLOW_INSECURE_ISSUERS (development only) also
allows plain-http issuers.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
from typing import Any

import jwt
from django.conf import settings
from django.core.cache import cache

from identities.models import WorkloadIdentity
from lib import safe_fetch

logger = logging.getLogger("coffer.identities")

ALGORITHMS = {"RS256": "RSA", "ES256": "EC"}  # algorithm -> the key type it needs
LEEWAY_SECONDS = 60
JWKS_CACHE_SECONDS = 600
REFETCH_SECONDS = 60
FETCH_TIMEOUT = 5.0
MAX_TOKEN_LENGTH = 16 * 1024
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_KEYS = 50
MIN_RSA_BITS = 2048
USER_AGENT = "Coffer-OIDC/1"


class Refused(Exception):
    """A token that does not sign the job in: `check` names the failed check."""

    status = 401

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check
        self.message = message


class IssuerUnavailable(Refused):
    """The issuer's keys could not be fetched: not the job's fault, so a 503."""

    status = 503

    def __init__(self, reason: str) -> None:
        super().__init__(
            "issuer_keys",
            "Coffer could not fetch the issuer's signing keys; try again shortly.",
        )
        self.reason = reason


def verify(token: object, identity: WorkloadIdentity) -> dict[str, Any]:
    """The token's claims if it signs in as `identity`; Refused otherwise (see the docstring)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise Refused("format", f"The token is a JWT of at most {MAX_TOKEN_LENGTH} characters.")
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Refused("format", "The token is not a well-formed JWT.") from None
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise Refused(
            "algorithm",
            "The token's algorithm (alg) is not accepted: only RS256 and "
            "ES256 tokens are (never none, never HMAC).",
        )
    if unverified.get("iss") != identity.issuer:
        raise Refused("issuer", "The token's issuer (iss) is not this identity's issuer.")
    key = signing_key(identity.issuer, header.get("kid"), algorithm)
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            audience=identity.audience,
            issuer=identity.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud"], "strict_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise Refused("exp", "The token has expired (exp).") from None
    except jwt.ImmatureSignatureError as error:
        check = "iat" if "(iat)" in str(error) else "nbf"
        raise Refused(check, f"The token is not valid yet ({check} is in the future).") from None
    except jwt.InvalidIssuedAtError:
        raise Refused("iat", "The token's issue time (iat) is not a number.") from None
    except jwt.InvalidAudienceError:
        raise Refused("audience", "The token's audience (aud) is not this identity's.") from None
    except jwt.InvalidIssuerError:
        raise Refused("issuer", "The token's issuer (iss) is not this identity's issuer.") from None
    except jwt.MissingRequiredClaimError as error:
        raise Refused("claims", f"The token has no {error.claim} claim.") from None
    except jwt.InvalidSignatureError:
        raise Refused("signature", "The token's signature does not verify.") from None
    except jwt.PyJWTError:
        raise Refused("format", "The token is not a well-formed JWT.") from None
    if (claim := identity.unmet_condition(claims)) is not None:
        raise Refused(
            "claims", f"The token's {claim} claim does not meet this identity's condition."
        )
    return claims


def signing_key(issuer: str, kid: object, algorithm: str) -> Any:
    """The issuer's public key `kid`, fit for `algorithm`; Refused("key") when it has none."""
    if not isinstance(kid, str) or not kid:
        raise Refused("key", "The token names no key id (kid).")
    keys, fresh = issuer_keys(issuer)
    if (
        kid not in keys
        and not fresh
        and cache.add(f"oidc-refetch:{_digest(issuer)}", 1, REFETCH_SECONDS)
    ):
        keys, fresh = issuer_keys(issuer, refresh=True)  # the issuer may have rotated its keys
    jwk = keys.get(kid)
    if jwk is None:
        raise Refused("key", "The token's key id (kid) is not one of the issuer's keys.")
    if (
        jwk.get("kty") != ALGORITHMS[algorithm]
        or jwk.get("alg") not in (None, algorithm)
        or (algorithm == "ES256" and jwk.get("crv") != "P-256")
    ):
        raise Refused("algorithm", "The token's algorithm does not fit its key.")
    try:
        key = jwt.PyJWK(jwk, algorithm=algorithm).key
    except jwt.PyJWTError:
        key = None
    if key is None or (algorithm == "RS256" and key.key_size < MIN_RSA_BITS):
        raise Refused("key", "The issuer's key for this kid is not a usable public key.")
    return key


def _digest(issuer: str) -> str:
    return hashlib.sha256(issuer.encode()).hexdigest()


def issuer_keys(issuer: str, *, refresh: bool = False) -> tuple[dict[str, dict[str, Any]], bool]:
    """(the issuer's signing keys by kid, whether they were just fetched): from the cache
    unless `refresh`; IssuerUnavailable when they cannot be fetched."""
    name = f"oidc-jwks:{_digest(issuer)}"
    if not refresh and (cached := cache.get(name)) is not None:
        return cached, False
    discovery = fetch_json(issuer + "/.well-known/openid-configuration")
    if discovery.get("issuer") != issuer:
        raise IssuerUnavailable(f"the discovery document of {issuer} names another issuer")
    jwks_uri = discovery.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise IssuerUnavailable(f"the discovery document of {issuer} has no jwks_uri")
    listed = fetch_json(jwks_uri).get("keys")
    if not isinstance(listed, list):
        raise IssuerUnavailable(f"the JWKS of {issuer} has no keys")
    keys = {
        jwk["kid"]: jwk
        for jwk in listed[:MAX_KEYS]
        if isinstance(jwk, dict)
        and isinstance(jwk.get("kid"), str)
        and jwk.get("use", "sig") == "sig"
        and "d" not in jwk  # a private key published by mistake is no key to trust
    }
    cache.set(name, keys, JWKS_CACHE_SECONDS)
    return keys, True


def fetch_json(url: str) -> dict[str, Any]:
    """GET a JSON object through lib/safe_fetch.py (see the module docstring)."""
    try:
        reply = safe_fetch.fetch(
            "GET",
            url,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            timeout=FETCH_TIMEOUT,
            max_bytes=MAX_DOCUMENT_BYTES,
            allow_plain_http=settings.COFFER_OIDC_ALLOW_INSECURE_ISSUERS,
        )
    except safe_fetch.UnsafeURL as refused:
        raise IssuerUnavailable(f"{url}: {refused}") from None
    except safe_fetch.Deadline:
        raise IssuerUnavailable(f"{url} took more than {FETCH_TIMEOUT:g} s") from None
    except (OSError, http.client.HTTPException) as error:
        raise IssuerUnavailable(f"{url}: {type(error).__name__}") from None
    if reply.status != 200:
        raise IssuerUnavailable(f"{url} answered {reply.status}")
    if not reply.complete:
        raise IssuerUnavailable(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(reply.body)
    except ValueError as error:
        raise IssuerUnavailable(f"{url}: {type(error).__name__}") from None
    if not isinstance(document, dict):
        raise IssuerUnavailable(f"{url} sent no JSON object")
    return document
