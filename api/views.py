"""The HTTP API: resolve a template, fetch values for environment injection, health, schema.

The rules are tokens/references/resolve.py's, called and never copied: the same lookup, scope
and expiry rules, decryption, audit event and failure report as `manage.py resolve`. A call goes
down into `resolve.run` once and comes back with everything it answers with, failures included.
Its transaction starts by checking the credential again (`hold`, which share-locks the key's
row), so a revoke that commits first refuses the request, and one that comes later waits for
it; every call is counted on the key (from its usage record, tokens/usage.py), a failed one
too, and a failed one is audited here at most once a minute.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views import defaults

from api import ratelimit
from api.auth import (
    ApiError,
    ApiHttpRequest,
    Credential,
    api_view,
    error_response,
    no_store,
    public_view,
    readable_json,
    unauthorized,
)
from api.openapi import schema
from audit.models import AuditAction, AuditEvent
from keys import crypto
from tokens.models import KEY_MAX_LENGTH, KEY_RE
from tokens.references import output as encoding
from tokens.references.grammar import CheckReport, OutputTooLarge, ResolveError, Template
from tokens.references.output import report_payload, wide_encoding
from tokens.references.resolve import Client, Outcome, Request, run, run_values

logger = logging.getLogger("coffer.api")

SOURCE_MAX_LENGTH = 200
DEFAULT_SOURCE = "<request>"
MAX_KEYS = 1000
TRUE, FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


# --- query parameters ------------------------------------------------------------------------


def source_param(request: HttpRequest, default: str) -> str:
    source = request.GET.get("source", default)
    if not source.strip() or len(source) > SOURCE_MAX_LENGTH or not source.isprintable():
        raise ApiError(400, f"source is a name of 1 to {SOURCE_MAX_LENGTH} printable characters.")
    return source


def check_param(request: HttpRequest) -> bool:
    value = request.GET.get("check", "").strip().lower()
    if value not in TRUE | FALSE:
        raise ApiError(400, "check is 1 or 0.")
    return value in TRUE


def keys_param(request: HttpRequest) -> list[str] | None:
    if "keys" not in request.GET:
        return None
    keys = [key.strip() for key in request.GET.get("keys", "").split(",") if key.strip()]
    if not keys:
        raise ApiError(400, "keys is a comma-separated list of Token Keys, e.g. keys=A,B.")
    if len(keys) > MAX_KEYS:
        raise ApiError(400, f"keys names at most {MAX_KEYS} Token Keys.")
    bad = [key for key in keys if len(key) > KEY_MAX_LENGTH or not KEY_RE.match(key)]
    if bad:
        shown = ", ".join(json.dumps(key[:40]) for key in bad[:5])
        raise ApiError(
            400,
            f"Not Token Keys: {shown}. A Token Key is 1-{KEY_MAX_LENGTH} letters, digits and "
            "underscores, not starting with a digit.",
        )
    return keys


def format_param(request: HttpRequest) -> str:
    value = request.GET.get("format", "json")
    if value not in {"json", *encoding.FORMATS}:
        raise ApiError(400, "format is json, dotenv or shell.")
    return value


def read_template(request: HttpRequest) -> bytes:
    """The body, never more than COFFER_API_MAX_BYTES: a larger one is refused from its
    Content-Length, before a byte of it is read."""
    limit = settings.COFFER_API_MAX_BYTES
    length = request.META.get("CONTENT_LENGTH") or ""
    if not length.strip():
        if request.META.get("HTTP_TRANSFER_ENCODING"):
            raise ApiError(
                411, "Send the template with a Content-Length (curl --data-binary @FILE)."
            )
        return b""
    try:
        size = int(length)
    except ValueError:
        raise ApiError(400, "The Content-Length is not a number.") from None
    if size > limit:
        raise ApiError(413, f"The template is {size:,} bytes; the limit is {limit:,} bytes.")
    # request.read, not request.body: DATA_UPLOAD_MAX_MEMORY_SIZE is not this API's limit.
    data = request.read(limit + 1)
    if len(data) > limit:  # (the server's stream ends at the Content-Length anyway)
        raise ApiError(413, f"The template is over the limit of {limit:,} bytes.")
    return data


# --- answers ---------------------------------------------------------------------------------


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def report_message(report: CheckReport, *, failed: bool) -> str:
    """The report's first line, for a person reading a CI log: how many references fail, and
    each one's line and reason."""
    bad = [status for status in report.references if not status.ok]
    total = len(report.references)
    if not bad:
        if failed:
            return (
                "The resolve failed while it ran (a token changed meanwhile); nothing was "
                "resolved. Try again."
            )
        return f"All {plural(total, 'reference')} resolve." if total else "No references."
    each = "; ".join(
        f"{status.key or status.reference} on line {status.line}: {status.reason}" for status in bad
    )
    outcome = " (nothing was resolved)" if failed else ""
    return f"{len(bad)} of {plural(total, 'reference')} cannot be resolved{outcome}: {each}."


def report_response(outcome: Outcome, key: Credential) -> HttpResponse:
    """200 for a passing check; 422 for a failing one or a failed resolve (even when every
    reference looks fine again to the report: the race is lost)."""
    report = outcome.report
    failed = outcome.error is not None
    status = 422 if failed or not report.ok else 200
    payload = {"message": report_message(report, failed=failed)}
    return readable_json(payload | report_payload(report, key.context), status)


def keys_response(report: CheckReport, key: Credential) -> HttpResponse:
    """A failed `values` call (422) speaks of the keys asked for, never of lines and columns of
    a template the caller never wrote: each key, whether it resolves and why not."""
    bad = [status for status in report.references if not status.ok]
    each = "; ".join(f"{status.key}: {status.reason}" for status in bad)
    asked = plural(len(report.references), "key")
    if bad:
        message = f"{len(bad)} of {asked} cannot be resolved here (no value was returned): {each}."
    else:
        message = "A token changed while the values were read; no value was returned. Try again."
    payload = report_payload(report, key.context)
    payload["references"] = [
        {"key": status.key, "status": "ok" if status.ok else "error", "reason": status.reason}
        for status in report.references
    ]
    return readable_json({"message": message} | payload, 422)


def record_attempt(
    request: ApiHttpRequest, key: Credential, action: AuditAction, **facts: object
) -> None:
    """Audit a check or a failed call (the resolve counted it on the key already): at most one
    event per key and action in each rate-limit window (a minute), so a client failing in a
    loop cannot fill the audit trail; the calls after the first in a minute are counted on the
    key only."""
    if ratelimit.hit(f"audit:{action.value}:{key.pk}", 1).allowed:
        context = key.context
        detail = {
            **key.audit_names,
            "client_address": request.client_address,
            "environment": context.environment.slug,
            "product": context.product.slug if context.product else None,
            "app": context.app.slug if context.app else None,
            **facts,
            "note": "one event per access key per minute; every call is counted on the key",
        }
        AuditEvent.record(key.workspace, action, actor_name=key.actor_name, detail=detail)


def unavailable(error: ResolveError) -> ApiError:
    # The message names tokens, workspaces and master key ids, never a value; it goes to the
    # server's log, not to the client.
    logger.error("API resolve failed: %s", error.args[0])
    return ApiError(
        503,
        "The resolve failed on the server (decryption or audit); nothing was "
        "resolved. Try again shortly.",
        {"Retry-After": "30"},
    )


def resolve_request(
    request: ApiHttpRequest, key: Credential, source: str, facts=None, **options
) -> Request:
    """The resolve's request for this call: the key's context, the key itself (its use is
    counted in the resolve's transaction), the address it called from and any other `facts`
    the audit event should say."""
    client = Client(key, request.client_address, facts or {})
    return Request(key.context, source, client=client, at=timezone.now(), **options)


def failed(request: ApiHttpRequest, key: Credential, outcome: Outcome, noun: str) -> HttpResponse:
    """The answer to a resolve that did not succeed (after its transaction, which counted the
    call on the key): 401 if the key went meanwhile, 413 for an output over the limit, 422 with
    the report for references that cannot be resolved or values the format cannot carry."""
    if outcome.credential_refused:
        raise unauthorized()  # revoked or expired since authentication
    source = outcome.source
    action = AuditAction.ACCESS_KEY_CALL_FAILED
    if isinstance(outcome.error, OutputTooLarge):
        record_attempt(request, key, action, source=source, reason="output too large")
        raise ApiError(413, outcome.error.args[0])
    if outcome.refusal is not None:
        record_attempt(request, key, action, source=source, reason="format cannot carry values")
        raise ApiError(422, outcome.refusal)
    assert outcome.error is not None
    record_attempt(
        request,
        key,
        action,
        source=source,
        reason=f"{noun} cannot be resolved",
        problems=outcome.error.problem_count,
    )
    if noun == "tokens":  # a values call: its report speaks of keys
        return keys_response(outcome.report, key)
    return report_response(outcome, key)


# --- endpoints -------------------------------------------------------------------------------


@api_view("POST")
def resolve(request: ApiHttpRequest, key: Credential) -> HttpResponse:
    source = source_param(request, DEFAULT_SOURCE)
    check = check_param(request)
    data = read_template(request)
    if encoding := wide_encoding(data):
        raise ApiError(
            400,
            f"The template is {encoding} text; send UTF-8 or another ASCII-compatible encoding.",
        )
    # The bytes as they are (the CLI's path): the output is made as bytes, in one copy.
    template = Template(data, keep=not check)
    try:
        outcome = run(template, resolve_request(request, key, source), check=check)
    except ResolveError as error:  # decryption or audit: nothing happened, not even the count
        raise unavailable(error) from None
    if check and not outcome.credential_refused:
        report = outcome.report
        record_attempt(
            request,
            key,
            AuditAction.ACCESS_KEY_CHECKED,
            source=source,
            ok=report.ok,
            problems=report.problem_count,
        )
        return report_response(outcome, key)
    if not outcome.ok:
        return failed(request, key, outcome, "references")
    return HttpResponse(outcome.render(), content_type="application/octet-stream")


@api_view("GET")
def values(request: ApiHttpRequest, key: Credential) -> HttpResponse:
    return read_values(request, key)[0]


def read_values(request: ApiHttpRequest, key: Credential) -> tuple[HttpResponse, Outcome | None]:
    """`GET /api/v1/values` for an authenticated key: the answer, and the resolve's outcome
    (whose `versions` make the change feed's ETag) when it got that far."""
    keys = keys_param(request)
    output = format_param(request)
    source = source_param(request, "<values>")
    # Values the format cannot carry are refused before the transaction commits: no
    # "Resolved" event, no last use.
    encode = None if output == "json" else output
    try:
        outcome = run_values(keys, resolve_request(request, key, source, encoding=encode))
    except ResolveError as error:
        raise unavailable(error) from None
    if not outcome.ok:
        return failed(request, key, outcome, "tokens"), outcome
    found = outcome.values
    if output == "json":
        return JsonResponse(found), outcome
    body = encoding.encode(found, output)
    return HttpResponse(body, content_type="text/plain; charset=utf-8"), outcome


@public_view("GET", "HEAD")
def healthz(request: HttpRequest) -> HttpResponse:
    """200 when the database answers and the master key ring is loaded; 503 otherwise, saying
    nothing more (the reason goes to the log)."""
    try:
        crypto.key_ring()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # noqa: BLE001 - any failure is "unavailable", logged
        logger.error("Health check failed: %s", type(error).__name__)
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


@public_view("GET", "HEAD")
def openapi(request: HttpRequest) -> HttpResponse:
    return JsonResponse(schema(), json_dumps_params={"indent": 2})


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The project's 404 (`handler404`): under /api/ the API's JSON error, so a client with a
    typo in its URL gets an answer it can read; elsewhere Django's page (templates/404.html)."""
    if request.path.startswith("/api/"):
        return no_store(
            error_response(404, "There is no such API endpoint (see /api/v1/openapi.json).")
        )
    return defaults.page_not_found(request, exception)
