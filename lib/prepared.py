"""A cursor whose statements PostgreSQL parses and plans once per connection: for the few
statements every API read sends (the key's lookup, its re-check, the token query, the usage
record).

Django binds parameters on the client (psycopg's ClientCursor: the values are quoted into the
SQL text) and disables prepared statements, so PostgreSQL parses and plans each statement anew:
`EXPLAIN (ANALYZE, SUMMARY)` shows about 0.3 ms of planning for the key's lookup and as much
for the token query, more than running them. `cursor()` gives a cursor with server-side binding
that prepares every statement it runs (psycopg's `prepare=True`): the first run on a connection
plans it, the next ones only bind and execute it (docs/benchmarks.md has the figures). It is
wrapped like any Django cursor, so `execute_wrapper`, `CaptureQueriesContext` and the query
log see its statements.

Prepared statements belong to a database session: a pooler that hands one session's statements
to another (PgBouncer in transaction mode before 1.21) breaks them. `COFFER_DB_PREPARED=false`
turns them off (the ordinary cursor); psycopg only prepares when the connection's
`prepare_threshold` is not None, which config/settings.py sets from the same setting. On SQLite
it is the ordinary cursor.

A migration that changes a column a prepared statement returns, run while a server is still up,
makes that statement fail on its connection until it is prepared again: the request that meets
it fails (503 on the API) and its connection is closed when the request ends
(tests/test_prepared_statements.py).
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.backends.utils import CursorWrapper


def cursor() -> CursorWrapper:
    """A cursor of the default connection, preparing its statements where that is on."""
    if connection.vendor != "postgresql" or not settings.COFFER_DB_PREPARED:
        return connection.cursor()
    # What `connection.cursor()` does, with the preparing cursor class. (Django would also give
    # the cursor its own timezone loader if the connection's differed: the connection is made
    # with the loaders of settings.TIME_ZONE, UTC, and Coffer never changes it.)
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        raw = _preparing_class()(connection.connection)
    if connection.queries_logged:  # the query log, CaptureQueriesContext: as any cursor
        return connection.make_debug_cursor(raw)
    return connection.make_cursor(raw)


@cache
def _preparing_class() -> type:
    import psycopg  # only where the database is PostgreSQL

    class Preparing(psycopg.Cursor):
        """Server-side binding (as Django's `server_side_binding` option), every statement
        prepared."""

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            try:
                return super().execute(query, params, prepare=True)
            except psycopg.errors.FeatureNotSupported:
                # "cached plan must not change result type": a migration changed a column
                # this statement returns, under a server still running (a rolling deploy).
                # The statement stays prepared in this session and would fail every time
                # (psycopg forgets its statements on a rollback, not after a failure in
                # autocommit): this request fails (a 503), and Django closes the connection
                # when it ends, so the next one prepares the statement anew.
                connection.close_at = time.monotonic()
                raise

    return Preparing
