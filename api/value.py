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

**ETag and If-None-Match**, as the change feed's (api/feed.py): the 200 carries an ETag made
of the context, the key asked for and the token's id and value version (never the value), those
the read itself used (no query more). A request whose `If-None-Match` names it (weak or strong)
gets 304 with no body: authenticated and rate-limited like any call, counted as a use of the
access key, but no "Resolved" event and no token marked used (no value left the server). An
edit, a restore, a revoke, an expiry or the token leaving the context changes it;
`If-None-Match: *` alone does not count (a 304 says there is a value, and only the read can say
that). With `If-None-Match` one short query (`feed.look`, without the change counter) comes
first.
"""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.http import parse_etags

from api import feed, views
from api.auth import ApiError, ApiHttpRequest, Credential, api_view, unauthorized
from audit.models import AuditAction
from tokens.models import KEY_MAX_LENGTH, KEY_RE
from tokens.references.grammar import OutputTooLarge, ResolveError
from tokens.references.resolve import run_values

DEFAULT_SOURCE = "<value>"
ETAG_FORMAT = "value"  # the question's format in the ETag: this endpoint's one-key JSON


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
    if request.headers.get("If-None-Match", "").strip():
        etag = feed.look(key, [name], ETAG_FORMAT, timezone.now(), counted=False).etag
        if unchanged(request, etag):
            return feed.not_modified(request, key, etag)
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
    response = JsonResponse({"key": name, "value": outcome.values[name]})
    response["ETag"] = feed.etag_of(key, [name], ETAG_FORMAT, outcome.versions)
    return response


def unchanged(request: ApiHttpRequest, etag: str) -> bool:
    """If-None-Match names this ETag (the feed's comparison; `*` alone is not enough)."""
    tags = parse_etags(request.headers.get("If-None-Match", ""))
    return tags != ["*"] and feed.matches(request, etag)
