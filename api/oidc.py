"""POST /api/v1/auth/oidc: a CI job exchanges its OIDC token for a short-lived credential.

The request is JSON: `{"identity": "<workspace-slug>/<identity name>", "token": "<the JWT>"}`.
The answer is the credential (`cfw_...`, shown this once), when it expires and the context it
resolves in; it is used as `Authorization: Bearer` on the other endpoints until it expires or
its identity is deleted. Each refusal is a 401 `{"error": ..., "check": ...}` naming the
failed check (identities/oidc.py), never repeating the token; it counts as a failed
authentication of the client's address, as a bad access key does. Every exchange is audited
(`workload_identity.exchanged`) and counted on the identity.
"""

from __future__ import annotations

import hashlib
import json
import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api import ratelimit
from api.auth import (
    RETRY_AFTER_UNAVAILABLE,
    UNAVAILABLE,
    ApiError,
    client_address,
    error_response,
    failure_buckets,
    public_view,
    too_many,
)
from identities import oidc
from identities.models import WorkloadCredential, WorkloadIdentity

logger = logging.getLogger("coffer.api")

MAX_BODY_BYTES = 32 * 1024


def read_request(request: HttpRequest) -> tuple[object, object]:
    """(identity reference, token) from the JSON body; ApiError 400 when it is not that."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        raise ApiError(413, f"The request is JSON of at most {MAX_BODY_BYTES} bytes.")
    try:
        body = json.loads(request.read(MAX_BODY_BYTES + 1))
    except ValueError:
        body = None
    if not isinstance(body, dict) or not {"identity", "token"} <= body.keys():
        raise ApiError(
            400,
            'Send JSON: {"identity": "<workspace>/<identity name>", '
            '"token": "<your CI job\'s OIDC token>"}.',
        )
    return body["identity"], body["token"]


def refusal(error: oidc.Refused) -> JsonResponse:
    response = JsonResponse(
        {"error": f"Refused ({error.check}): {error.message}", "check": error.check},
        status=error.status,
    )
    if error.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="coffer"'
    else:
        response["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
    return response


def exchange_token(request: HttpRequest) -> JsonResponse:
    address = client_address(request)
    reference, token = read_request(request)
    # Counted like access keys (api/auth.py): per identity named, and per address.
    named = hashlib.sha256(str(reference).encode()).hexdigest()[:32]  # a bucket name is short
    by_identity, by_address = failure_buckets(f"identity:{named}", address)
    limit = settings.COFFER_API_AUTH_FAILURE_LIMIT
    if exceeded := ratelimit.exceeded(by_identity, limit):
        raise too_many("Too many failed authentications for this workload identity", exceeded)
    identity = WorkloadIdentity.objects.named(reference)
    try:
        if identity is None or identity.is_expired():
            raise oidc.Refused(
                "identity",
                "There is no such workload identity (or it expired); "
                "name it as <workspace>/<identity name>.",
            )
        if not identity.allows_address(address):
            raise oidc.Refused(
                "address",
                f"This workload identity may not be used from your "
                f"address ({address or 'unknown'}).",
            )
        claims = oidc.verify(token, identity)
    except oidc.Refused as refused:
        if isinstance(refused, oidc.IssuerUnavailable):
            logger.warning(
                "OIDC exchange for %s: issuer keys unavailable: %s",
                identity and identity.reference,
                refused.reason,
            )
            return refusal(refused)
        ratelimit.hit(by_identity, limit)
        logger.info("OIDC exchange refused (%s) from %s", refused.check, address)
        if not (decision := ratelimit.hit(by_address, limit)).allowed:
            raise too_many("Too many failed authentications from this address", decision) from None
        return refusal(refused)
    decision = ratelimit.hit(f"identity:{identity.pk}", settings.COFFER_API_RATE_LIMIT)
    if not decision.allowed:
        raise too_many("Too many requests with this workload identity", decision)
    credential, secret = WorkloadCredential.objects.issue(identity, claims, address=address)
    context = identity.context
    return JsonResponse(
        {
            "credential": secret,
            "token_type": "Bearer",
            "expires_in": int((credential.expires_at - credential.created_at).total_seconds()),
            "expires_at": credential.expires_at.isoformat().replace("+00:00", "Z"),
            "identity": identity.reference,
            "environment": context.environment.slug,
            "product": context.product.slug if context.product else None,
            "app": context.app.slug if context.app else None,
        }
    )


@csrf_exempt
@public_view("POST")
def exchange(request: HttpRequest) -> HttpResponse:
    """Nothing of a session is read (no cookie can sign a job in): exempt from CSRF checks."""
    try:
        return exchange_token(request)
    except ApiError as error:
        return error.response()
    except (DatabaseError, ratelimit.RateLimitUnavailable) as error:
        logger.error("OIDC exchange answered 503: %s", type(error).__name__)
        return error_response(503, UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
