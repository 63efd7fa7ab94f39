"""Fixed-window rate limits shared by every app process: in the database, or on Redis.

`hit(bucket, limit)` counts one request against `bucket` in the current window (60 s) and says
whether it is within `limit`; `exceeded(bucket, limit)` asks without counting (and
`pending_count` asks the database counters within another statement). Buckets are
strings such as `key:42` (one access key) or `authfail:203.0.113.5` (failed authentications
from one address) or `authfail-key:cfr_AbC123` (failed authentications with one key prefix).

- **Database** (the default): one statement per hit, atomic on SQLite and PostgreSQL alike:
  `INSERT ... ON CONFLICT (bucket, window_start) DO UPDATE SET count = count + 1 RETURNING
  count`. The first hit of a bucket's window also deletes windows that have ended.
- **Redis** (when COFFER_RATELIMIT_REDIS_URL is set): `INCR` and `EXPIRE` in one MULTI; the
  counters expire by themselves.

If the counter store cannot be reached, the API answers 503 rather than run without limits.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connection
from django.dispatch import receiver

from api.models import RateLimitWindow
from lib import prepared

WINDOW_SECONDS = 60


class RateLimitUnavailable(Exception):
    """The counter store (Redis) cannot be reached."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    count: int
    retry_after: int  # seconds until the window ends


def _window(now: float, seconds: int) -> tuple[int, int]:
    start = int(now // seconds) * seconds
    return start, start + seconds


class DatabaseCounters:
    def __init__(self) -> None:
        table = connection.ops.quote_name(RateLimitWindow._meta.db_table)
        self.upsert = (
            f"INSERT INTO {table} (bucket, window_start, expires, count) VALUES (%s, %s, %s, 1) "
            f"ON CONFLICT (bucket, window_start) DO UPDATE SET count = {table}.count + 1 "
            "RETURNING count"
        )
        # PostgreSQL, outside a transaction: the same upsert, committed without waiting for the
        # disk (a counter lost in a crash of the database server costs nothing), in the same
        # single statement: set_config(..., true) holds for its own implicit transaction.
        self.upsert_async = self.upsert
        if connection.vendor == "postgresql":
            self.upsert_async = self.upsert.replace(
                "VALUES (%s, %s, %s, 1)",
                "SELECT %s, %s, %s, 1 "
                "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS without_waiting",
            )
        self.select = f"SELECT count FROM {table} WHERE bucket = %s AND window_start = %s"

    def increment(self, bucket: str, start: int, end: int) -> int:
        upsert = self.upsert if connection.in_atomic_block else self.upsert_async
        with prepared.cursor() as cursor:
            cursor.execute(upsert, [bucket, start, end])
            count = cursor.fetchone()[0]
        self.counted(count, start)
        return count

    def counted(self, count: int, start: int) -> None:
        if count == 1:  # the first hit of this window: forget the windows that have ended
            RateLimitWindow.objects.filter(expires__lte=start).delete()

    def current(self, bucket: str, start: int, end: int) -> int:
        with prepared.cursor() as cursor:  # on every request: plain SQL, prepared once
            cursor.execute(self.select, [bucket, start])
            row = cursor.fetchone()
        return row[0] if row else 0


class RedisCounters:
    def __init__(self, url: str) -> None:
        import redis

        self.errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        # Installations sharing one Redis database keep apart by their prefix.
        self.prefix = f"{settings.COFFER_RATELIMIT_REDIS_PREFIX}:ratelimit"

    def increment(self, bucket: str, start: int, end: int) -> int:
        name = f"{self.prefix}:{bucket}:{start}"
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(name)
            pipe.expire(name, end - start + 1)
            count, _ = pipe.execute()
        except self.errors as error:
            raise RateLimitUnavailable(f"Redis: {type(error).__name__}") from None
        return int(count)

    def current(self, bucket: str, start: int, end: int) -> int:
        try:
            return int(self.client.get(f"{self.prefix}:{bucket}:{start}") or 0)
        except self.errors as error:
            raise RateLimitUnavailable(f"Redis: {type(error).__name__}") from None


@dataclass(frozen=True)
class PendingCount:
    """`exceeded(bucket, limit)` split in two for the database counters: `sql` and `params`, a
    scalar subquery giving the bucket's count this window, go into another statement (the
    API's key lookup reads it in the same round trip); `refusal(count)` decides."""

    sql: str
    params: tuple
    limit: int
    end: int
    now: float

    def refusal(self, count: int | None) -> Decision | None:
        count = count or 0
        return _decision(count + 1, self.limit, self.end, self.now) if count >= self.limit else None


def pending_count(bucket: str, limit: int, *, now: float | None = None) -> PendingCount | None:
    """`exceeded` as a subquery to read in another statement, or None when the counters are
    not in the database (Redis: call `exceeded`)."""
    store = counters()
    if not isinstance(store, DatabaseCounters):
        return None
    now = time.time() if now is None else now
    start, end = _window(now, WINDOW_SECONDS)
    return PendingCount(f"({store.select})", (bucket, start), limit, end, now)


@dataclass(frozen=True)
class KeyHit:
    """`hit` on an access key's own bucket (`AccessKey.rate_limit_bucket`), counted by the
    statement that looks the key up: `prefix` (with `params`) is a WITH clause that upserts the
    counter of the key with the presented hash, in the lookup's round trip, committed without
    waiting for the disk; `scalar` reads the new count (NULL when no key has that hash), and
    `decision(count)` decides. A request with the key refused for its address is counted
    too."""

    prefix: str
    params: tuple
    scalar: str
    limit: int
    start: int
    end: int
    now: float

    def decision(self, count: int) -> Decision:
        store = counters()
        assert isinstance(store, DatabaseCounters)
        store.counted(count, self.start)
        return _decision(count, self.limit, self.end, self.now)


def key_hit(key_hash: str, limit: int, *, now: float | None = None) -> KeyHit | None:
    """The access key's hit to count inside its lookup, or None where it cannot be (Redis, or
    SQLite, which has no data-modifying WITH): then call `hit`."""
    from access.models import AccessKey

    store = counters()
    if not isinstance(store, DatabaseCounters) or connection.vendor != "postgresql":
        return None
    if connection.in_atomic_block:  # the commit mode below is for a statement of its own
        return None
    now = time.time() if now is None else now
    start, end = _window(now, WINDOW_SECONDS)
    q = connection.ops.quote_name
    table = q(RateLimitWindow._meta.db_table)
    keys_table, meta = q(AccessKey._meta.db_table), AccessKey._meta
    key_id = q(meta.pk.get_attname_column()[1] or "id")
    key_hash_column = q(AccessKey.key_hash.field.get_attname_column()[1] or "key_hash")
    prefix = (
        f"WITH hit AS (INSERT INTO {table} (bucket, window_start, expires, count) "
        f"SELECT %s || k.{key_id}, %s, %s, 1 FROM {keys_table} k, "
        "(SELECT set_config('synchronous_commit', 'off', true)) AS without_waiting "
        f"WHERE k.{key_hash_column} = %s "
        f"ON CONFLICT (bucket, window_start) DO UPDATE SET count = {table}.count + 1 "
        "RETURNING count)"
    )
    return KeyHit(
        prefix, ("key:", start, end, key_hash), "(SELECT count FROM hit)", limit, start, end, now
    )


@cache
def counters() -> DatabaseCounters | RedisCounters:
    url = settings.COFFER_RATELIMIT_REDIS_URL
    return RedisCounters(url) if url else DatabaseCounters()


@receiver(setting_changed)
def _forget_counters(*, setting: str, **kwargs) -> None:
    if setting in ("COFFER_RATELIMIT_REDIS_URL", "COFFER_RATELIMIT_REDIS_PREFIX"):
        counters.cache_clear()


def _decision(count: int, limit: int, end: int, now: float) -> Decision:
    return Decision(count <= limit, count, max(1, math.ceil(end - now)))


def hit(bucket: str, limit: int, *, now: float | None = None) -> Decision:
    """Count one request against `bucket`; allowed while the window's count is <= limit."""
    now = time.time() if now is None else now
    start, end = _window(now, WINDOW_SECONDS)
    return _decision(counters().increment(bucket, start, end), limit, end, now)


def exceeded(bucket: str, limit: int, *, now: float | None = None) -> Decision | None:
    """The refusal when `bucket` has already used its `limit` this window, else None."""
    now = time.time() if now is None else now
    start, end = _window(now, WINDOW_SECONDS)
    count = counters().current(bucket, start, end)
    return _decision(count + 1, limit, end, now) if count >= limit else None
