"""lib/compiled.py: a queryset compiled once with markers, run with real values, answers as the
queryset built with those values does."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from audit.models import AuditAction, AuditEvent
from lib.compiled import CompiledQuery, MarkerNotFound
from tests.factories import WorkspaceFactory

MARK_AT = dt.datetime(1901, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
MARK_WORKSPACE = -7_301_001


def ids(workspace_id: int, after: dt.datetime):
    return AuditEvent.objects.filter(workspace_id=workspace_id, created_at__gt=after).values_list(
        "id", flat=True
    )


def test_real_values_take_the_markers_places(db):
    compiled = CompiledQuery.of(ids(MARK_WORKSPACE, MARK_AT), {"ws": MARK_WORKSPACE, "at": MARK_AT})
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    workspaces = [WorkspaceFactory(), WorkspaceFactory()]
    for n in range(6):
        AuditEvent.objects.create(
            workspace=workspaces[n % 2],
            action=AuditAction.RESOLVED,
            created_at=base + dt.timedelta(hours=n),
        )
    for workspace in workspaces:
        for hours in (-1, 0, 2, 5):
            after = base + dt.timedelta(hours=hours)
            with connection.cursor() as cursor:
                cursor.execute(compiled.sql, compiled.params({"ws": workspace.pk, "at": after}))
                found = sorted(row[0] for row in cursor.fetchall())
            assert found == sorted(ids(workspace.pk, after)), (workspace, hours)


def test_a_marker_the_query_does_not_use_is_refused(db):
    with pytest.raises(MarkerNotFound):
        CompiledQuery.of(ids(MARK_WORKSPACE, MARK_AT), {"ws": MARK_WORKSPACE, "app": -7_301_004})
