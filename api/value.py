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
(`run_values` with one key): the same rules, decryption, "Resolved" event and usage row.
The usage's source is `?source=` when given, else the client's User-Agent, so the token's usage
shows "external-secrets" (or whatever the SecretStore's headers name) rather than a bare URL.
"""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse

from api import views
from api.auth import ApiError, ApiHttpRequest, Credential, api_view, unauthorized
from audit.models import AuditAction
from tokens.models import KEY_MAX_LENGTH, KEY_RE
from tokens.references.grammar import OutputTooLarge, ResolveError
from tokens.references.resolve import run_values

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
    agent = "".join(ch for ch in request.headers.get("User-Agent", "") if ch.isprintable())
    facts = {"user_agent": agent[: views.SOURCE_MAX_LENGTH]}
    try:
        outcome = run_values([name], views.resolve_request(request, key, source, facts))
    except ResolveError as error:  # decryption or audit: nothing happened, not even the count
        raise views.unavailable(error) from None
    if outcome.credential_refused:
        raise unauthorized()
    if isinstance(outcome.error, OutputTooLarge):
        views.record_attempt(
            request,
            key,
            AuditAction.ACCESS_KEY_CALL_FAILED,
            source=source,
            reason="output too large",
        )
        raise ApiError(413, outcome.error.args[0])
    if outcome.error is not None:
        views.record_attempt(
            request,
            key,
            AuditAction.ACCESS_KEY_CALL_FAILED,
            source=source,
            reason="token cannot be resolved",
            problems=outcome.error.problem_count,
        )
        reason = outcome.error.problems[0].reason
        raise ApiError(404, f"{name}: {reason}.")
    return JsonResponse({"key": name, "value": outcome.values[name]})
