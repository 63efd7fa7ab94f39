"""`GET /api/v1/values/<KEY>`: one token's value, for External Secrets Operator's generic
webhook provider (a Kubernetes cluster reads Coffer without any code of ours in it).

The contract is ESO's (docs/kubernetes.md has the SecretStore): a GET to a URL templated with
`{{ .remoteRef.key }}`, headers templated from a Kubernetes Secret (here `Authorization:
Bearer <access key>`), no body; a 2xx body read through `result.jsonPath` (`$.value`); a 404
read as "the secret is gone", which runs the ExternalSecret's deletion policy; any other status
an error (the Kubernetes Secret is kept as it was).

So: 200 `{"key": ..., "value": ...}` when the token is usable in the key's context; 404 when it
is not (no such token, outside the context, revoked, expired), with the same reason the resolver
gives; 400 for a name that is no Token Key. The read is the resolver's own
(`resolve_values` with one key): the same rules, decryption, "Resolved" event and usage row.
The usage's source is `?source=` when given, else the client's User-Agent, so the token's usage
shows "external-secrets" (or whatever the SecretStore's headers name) rather than a bare URL.
"""

from __future__ import annotations

from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

from api import views
from api.auth import ApiError, ApiHttpRequest, Credential, api_view, unauthorized
from audit.models import AuditAction
from tokens.models import KEY_MAX_LENGTH, KEY_RE
from tokens.references import OutputTooLarge, ResolveError, resolve_values

DEFAULT_SOURCE = "<value>"


def source_of(request: ApiHttpRequest) -> str:
    """`?source=` (checked as everywhere in the API), else the User-Agent made printable and
    cut to the source's length, else `<value>`."""
    if "source" in request.GET:
        return views.source_param(request, DEFAULT_SOURCE)
    agent = request.headers.get("User-Agent", "")
    agent = "".join(ch for ch in agent if ch.isprintable()).strip()
    return agent[: views.SOURCE_MAX_LENGTH] or DEFAULT_SOURCE


@api_view("GET")
def value(request: ApiHttpRequest, key: Credential, name: str) -> HttpResponse:
    if len(name) > KEY_MAX_LENGTH or not KEY_RE.match(name):
        raise ApiError(
            400,
            f"{name[:40]!r} is not a Token Key: 1-{KEY_MAX_LENGTH} letters, digits and "
            "underscores, not starting with a digit.",
        )
    source = source_of(request)
    now = timezone.now()
    agent = "".join(ch for ch in request.headers.get("User-Agent", "") if ch.isprintable())
    detail = {**views.audit_detail(request, key), "user_agent": agent[: views.SOURCE_MAX_LENGTH]}
    try:
        with transaction.atomic():
            if not key.record_use(at=now, address=request.client_address):
                raise unauthorized()
            found = resolve_values(
                key.context, [name], source=source, actor=key.actor_name, at=now, detail=detail
            )
    except OutputTooLarge as error:
        raise ApiError(413, error.args[0]) from None
    except ResolveError as error:
        if not error.problems:
            raise views.unavailable(error) from None
        views.record_attempt(request, key, AuditAction.ACCESS_KEY_CALL_FAILED, now,
                             source=source, reason="token cannot be resolved",
                             problems=error.problem_count)  # fmt: skip
        reason = error.problems[0].reason
        raise ApiError(404, f"{name}: {reason}.") from None
    return JsonResponse({"key": name, "value": found[name]})
