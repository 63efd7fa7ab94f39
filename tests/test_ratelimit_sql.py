"""The rate limiter's two hand-written statements (api/ratelimit.py: one upsert per hit, one
read, and the read as a subquery inside the key lookup) proven equal to the rule they keep,
on generated hits: a count per bucket and fixed window, the same as the ORM reads from the
table and as a plain model of fixed windows counts."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.models import RateLimitWindow
from api.ratelimit import WINDOW_SECONDS, DatabaseCounters, _window, pending_count

pytestmark = pytest.mark.django_db

BUCKETS = st.sampled_from(["key:1", "key:2", "authfail:203.0.113.5", "authfail-key:cfr_AbC123"])
# Seconds from the epoch, moving forward as a server's clock does, over a few windows.
HITS = st.lists(st.tuples(BUCKETS, st.integers(0, 4 * WINDOW_SECONDS)), max_size=40).map(
    lambda hits: sorted(hits, key=lambda hit: hit[1])
)


@given(HITS)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_counters_sql_counts_as_the_orm_and_the_model_do(hits):
    RateLimitWindow.objects.all().delete()
    store = DatabaseCounters()
    model: Counter[tuple[str, int]] = Counter()
    for bucket, second in hits:
        start, end = _window(second, WINDOW_SECONDS)
        model[bucket, start] += 1
        assert store.increment(bucket, start, end) == model[bucket, start]
        orm = RateLimitWindow.objects.get(bucket=bucket, window_start=start)
        assert (orm.count, orm.expires) == (model[bucket, start], end)
        for other in ("key:1", "authfail:203.0.113.5"):
            assert store.current(other, start, end) == model[other, start]
            pending = pending_count(other, limit=10, now=second)
            assert pending is not None
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {pending.sql}", list(pending.params))
                assert (cursor.fetchone()[0] or 0) == model[other, start]
