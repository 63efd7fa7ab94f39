"""Rate limits: per access key, and per address for failed authentications; counted in the
database by default or on Redis, shared by every process."""

from __future__ import annotations

import secrets
import threading

import pytest
import redis as redis_client
from django.db import connection

from access import keys
from api import ratelimit
from api.models import RateLimitWindow
from tests.api_helpers import api_setup, fresh_rate_limit_window, get_values, post_resolve
from tests.factories import make_access_key

pytestmark = pytest.mark.django_db

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(params=["database", "redis"])
def backend(request, settings):
    if request.param == "redis":
        try:
            redis_client.Redis.from_url(REDIS_URL).ping()
        except redis_client.RedisError:
            pytest.fail("Redis is expected at 127.0.0.1:6379 (see docs/development.md, CI)")
        settings.COFFER_RATELIMIT_REDIS_URL = REDIS_URL
    else:
        settings.COFFER_RATELIMIT_REDIS_URL = ""
    return request.param


def bucket() -> str:
    return f"test:{secrets.token_hex(6)}"  # Redis keeps counters between tests


def test_a_counter_counts_within_its_window_and_starts_again(backend):
    name = bucket()
    now = 1_800_000_000.0  # a window boundary (divisible by 60)
    assert [ratelimit.hit(name, 2, now=now + s).allowed for s in (0, 1, 2)] == [True, True, False]
    refused = ratelimit.hit(name, 2, now=now + 50.5)
    assert not refused.allowed and refused.count == 4 and refused.retry_after == 10
    assert ratelimit.exceeded(name, 2, now=now + 59).retry_after == 1
    assert ratelimit.hit(name, 2, now=now + 60).allowed, "a new window"
    assert ratelimit.exceeded(name, 2, now=now + 61) is None
    assert ratelimit.exceeded(bucket(), 1, now=now) is None


def test_the_database_forgets_windows_that_ended(settings):
    settings.COFFER_RATELIMIT_REDIS_URL = ""
    now = 1_800_000_000.0
    for n in range(3):
        ratelimit.hit(f"old:{n}", 10, now=now)
    assert RateLimitWindow.objects.count() == 3
    ratelimit.hit("new", 10, now=now + 60)  # first hit of a new window prunes
    assert list(RateLimitWindow.objects.values_list("bucket", flat=True)) == ["new"]


def test_one_statement_per_hit_on_the_database(settings, django_assert_num_queries):
    settings.COFFER_RATELIMIT_REDIS_URL = ""
    name = bucket()
    ratelimit.hit(name, 10)
    with django_assert_num_queries(1):
        ratelimit.hit(name, 10)


def test_redis_counts_exactly_under_threads(settings):
    settings.COFFER_RATELIMIT_REDIS_URL = REDIS_URL
    name, now = bucket(), 1_800_000_000.0
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        for _ in range(25):
            ratelimit.hit(name, 1000, now=now)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ratelimit.hit(name, 1000, now=now).count == 201
    prefix = settings.COFFER_RATELIMIT_REDIS_PREFIX
    ttl = redis_client.Redis.from_url(REDIS_URL).ttl(f"{prefix}:ratelimit:{name}:{int(now)}")
    assert 0 < ttl <= 61, "the counter expires by itself"


# --- through the API ------------------------------------------------------------------------


def test_past_the_key_limit_429_with_retry_after(client, workspace, settings, backend):
    settings.COFFER_API_RATE_LIMIT = 3
    setup = api_setup(workspace)
    _, other = make_access_key(workspace, name="other")
    fresh_rate_limit_window(margin=5)
    assert [get_values(client, setup.key).status_code for _ in range(3)] == [200] * 3
    refused = post_resolve(client, setup.key, "$Secret{DB_URL}")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["error"].startswith("Too many requests with this access key; retry")
    assert refused["Cache-Control"] == "no-store"
    assert setup.values["DB_URL"] not in refused.text
    assert get_values(client, other).status_code == 200, "another key has its own budget"


def test_failed_authentications_slow_the_address_but_not_its_valid_keys(
    client, workspace, settings, backend
):
    """A CI egress address shared by many runners: one runner's bad key must not lock out the
    others' valid keys. The address's failing keys get 429 past the limit."""
    settings.COFFER_API_AUTH_FAILURE_LIMIT = 3
    setup = api_setup(workspace)
    address = f"198.51.100.{secrets.randbelow(250) + 1}"
    statuses = [
        get_values(client, keys.generate(), REMOTE_ADDR=address).status_code for _ in range(4)
    ]
    assert statuses == [401] * 3 + [429]
    refused = get_values(client, keys.generate(), REMOTE_ADDR=address)
    assert refused.status_code == 429
    assert "failed authentications from this address" in refused.json()["error"]
    assert int(refused["Retry-After"]) >= 1
    assert get_values(client, setup.key, REMOTE_ADDR=address).status_code == 200


def test_failures_with_one_key_prefix_refuse_that_prefix_from_any_address(
    client, workspace, settings, backend
):
    """Someone trying keys that look like one key (its prefix is shown in the UI and the
    audit trail) is stopped whatever address they come from; other keys are not."""
    settings.COFFER_API_AUTH_FAILURE_LIMIT = 3
    setup = api_setup(workspace)
    _, other = make_access_key(workspace, name="other")
    start = setup.key[len(keys.PREFIX) : keys.IDENTIFIER_LENGTH]
    for number in range(3):  # well-formed keys with the same prefix, from three addresses
        rest = start + keys.generate()[keys.IDENTIFIER_LENGTH : -keys.CHECKSUM_LENGTH]
        forged = keys.PREFIX + rest + keys.checksum(rest)
        assert keys.is_well_formed(forged) and forged[:10] == setup.key[:10]
        assert get_values(client, forged, REMOTE_ADDR=f"203.0.113.{number + 1}").status_code == 401
    refused = get_values(client, setup.key, REMOTE_ADDR="203.0.113.99")
    assert refused.status_code == 429
    assert "failed authentications with this access key" in refused.json()["error"]
    assert get_values(client, other, REMOTE_ADDR="203.0.113.99").status_code == 200


def test_an_unreachable_redis_is_a_503_not_an_open_door(client, workspace, settings):
    setup = api_setup(workspace)
    settings.COFFER_RATELIMIT_REDIS_URL = "redis://127.0.0.1:1/0"
    response = get_values(client, setup.key)
    assert response.status_code == 503
    assert response.json()["error"].startswith("Coffer cannot answer right now")
    assert "DB_URL" not in response.text


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's upsert under load")
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_database_counts_exactly_under_threads(settings):
    from django.db import connections

    settings.COFFER_RATELIMIT_REDIS_URL = ""
    name, now = bucket(), 1_800_000_000.0
    barrier = threading.Barrier(8)

    def work():
        try:
            barrier.wait()
            for _ in range(25):
                ratelimit.hit(name, 1000, now=now)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ratelimit.hit(name, 1000, now=now).count == 201


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_key_is_counted_in_its_lookup_and_refused_past_the_limit(
    client, workspace, settings, reads_only, django_assert_num_queries
):
    """Outside a test transaction, as in production: the lookup's one statement counts the
    request on the key's own bucket; past the limit, 429; another key keeps its budget."""
    if connection.vendor != "postgresql":
        pytest.skip("the counted lookup is PostgreSQL's (SQLite has no data-modifying WITH)")
    settings.COFFER_RATELIMIT_REDIS_URL = ""
    settings.COFFER_API_RATE_LIMIT = 3
    setup = api_setup(workspace)
    _, other = make_access_key(workspace, name="other")
    fresh_rate_limit_window(margin=5)
    assert get_values(client, setup.key).status_code == 200  # also forgets ended windows
    # The lookup (with its prefix's failures and its own count), then the read's transaction:
    # BEGIN, the key's check, the tokens, the usage record, the audit event, COMMIT.
    with django_assert_num_queries(1 + 6):
        assert get_values(client, setup.key).status_code == 200
    statuses = [get_values(client, setup.key).status_code for _ in range(2)]
    assert statuses == [200, 429]
    assert RateLimitWindow.objects.get(bucket=f"key:{setup.row.pk}").count == 4
    assert get_values(client, other).status_code == 200
