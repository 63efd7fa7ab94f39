"""Activity: the workspace's audit trail as sentences, filtered, and exported for keeping.

The pages of the audit app sit above the workspaces app (they fetch the workspace through its
access helper); the trail itself (models, signal, wording) sits below it and imports no app.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from audit.forms import ActivityFilterForm, ExportForm
from audit.models import AuditAction, AuditEvent, AuditEventQuerySet
from audit.wording import EXPORT_FORMAT_NAMES, CatalogNames, sentence
from lib.htmx import wants_fragment
from lib.views import signed_in_view
from workspaces.access import get_workspace_for
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import Workspace

ACTIVITY_PAGE_SIZE = 50
EXPORT_CHUNK = 500
# A spreadsheet reads a cell starting with one of these as a formula: such a cell gets a
# leading apostrophe in the CSV (OWASP's advice); the JSON lines keep the text as it is.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def filtered_events(
    request: AuthenticatedHttpRequest, workspace: Workspace
) -> tuple[ActivityFilterForm, AuditEventQuerySet]:
    events = AuditEvent.objects.for_workspace(workspace)
    filters = ActivityFilterForm(request.GET, actors=events.actor_names())
    return filters, filters.apply(events).newest_first()


def activity_context(
    workspace: Workspace,
    filters: ActivityFilterForm,
    events: AuditEventQuerySet,
    page_number: str | int | None,
) -> dict:
    page = Paginator(events, ACTIVITY_PAGE_SIZE).get_page(page_number)
    url = reverse("audit:activity", args=[workspace.slug])

    def page_url(number: int) -> str:
        params = {**filters.values, **({"page": number} if number > 1 else {})}
        return f"{url}?{urlencode(params)}" if params else url

    export = reverse("audit:export", args=[workspace.slug])
    return {
        "nav": "tokens",
        "tab": "activity",
        "now": timezone.now(),
        "filters": filters,
        "page": page,
        "names": CatalogNames.of(workspace, page.object_list)
        if page.object_list
        else CatalogNames(),
        "activity_url": url,
        "export_urls": [
            (name, f"{export}?{urlencode({**filters.values, 'format': code})}")
            for code, name in EXPORT_FORMAT_NAMES.items()
        ],
        "prev_url": page_url(page.previous_page_number()) if page.has_previous() else "",
        "next_url": page_url(page.next_page_number()) if page.has_next() else "",
    }


@signed_in_view("GET", fragment=True)
def activity(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug)
    filters, events = filtered_events(request, workspace)
    context = activity_context(workspace, filters, events, request.GET.get("page"))
    template = "audit/activity.html#events" if wants_fragment(request) else "audit/activity.html"
    return render(request, template, context)


# --- export ----------------------------------------------------------------------------------


@signed_in_view("GET")
def activity_export(request: AuthenticatedHttpRequest, slug: str) -> HttpResponseBase:
    """The filtered events, every one (not a page of them), as CSV (the default) or JSON lines
    (`format=jsonl`), streamed.

    Refused with the Activity page and its message (400) when the format or a filter is wrong:
    an export must hold what was asked for, not all activity. The export is itself recorded,
    with its format, filters and count, before the first row is sent.
    """
    workspace = get_workspace_for(request, slug)
    filters, events = filtered_events(request, workspace)
    export = ExportForm({"format": request.GET.get("format", "csv")})  # CSV unless asked
    if filters.problems or not export.is_valid():
        context = activity_context(workspace, filters, events, 1)
        context["export_problem"] = "" if export.is_valid() else export.problem
        context["export_refused"] = True
        return render(request, "audit/activity.html", context, status=400)
    fmt = export.cleaned_data["format"]
    with transaction.atomic():
        count = events.count()
        recorded = AuditEvent.record(
            workspace,
            AuditAction.ACTIVITY_EXPORTED,
            by=request.user,
            detail={"format": fmt, "filters": filters.values, "events": count},
        )
    # The events up to this export's own record (which it does not hold), as counted above.
    rows = rows_of(events.filter(pk__lt=recorded.pk), CatalogNames.of(workspace))
    lines = csv_lines(rows) if fmt == "csv" else json_lines(rows)
    stamp = f"{recorded.created_at:%Y%m%d-%H%M%S}"
    response = StreamingHttpResponse(
        lines,
        content_type="text/csv; charset=utf-8" if fmt == "csv" else "application/jsonl",
    )
    response["Content-Disposition"] = (
        f'attachment; filename="{workspace.slug}-activity-{stamp}.{fmt}"'
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


EXPORT_FIELDS = ("time", "actor", "action", "event", "token", "detail")


def rows_of(events: AuditEventQuerySet, names: CatalogNames) -> Iterator[dict]:
    """One dict per event, read in chunks (one query on SQLite, a server-side cursor on
    PostgreSQL): the time in UTC, who, the action's code, the sentence, the token's key and
    everything the event recorded (never a value: the trail holds none)."""
    for event in events.iterator(chunk_size=EXPORT_CHUNK):
        yield {
            "time": event.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "actor": event.actor_name or "system",
            "action": event.action,
            "event": sentence(event, names),
            "token": event.token_key,
            "detail": event.detail or {},
        }


class _Echo:
    """A file-like object for csv.writer that hands each written line back."""

    def write(self, value: str) -> str:
        return value


def _cell(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(rows: Iterator[dict]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(EXPORT_FIELDS)  # the BOM: spreadsheets then read UTF-8
    for row in rows:
        yield writer.writerow([_cell(row[name]) for name in EXPORT_FIELDS])


def json_lines(rows: Iterator[dict]) -> Iterator[str]:
    for row in rows:
        yield json.dumps({name: row[name] for name in EXPORT_FIELDS}, ensure_ascii=False) + "\n"
