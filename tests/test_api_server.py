"""The API end to end: gunicorn with 2 workers, a real SQLite database, requests made by curl.

What a CI job with only curl sees: resolve, check, values (JSON, and shell lines sourced by bash),
the refusals (401, 403, 413, 422, 429) and a rate limit that holds across both workers, with
the counters in the database and again on Redis.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.api_helpers import fresh_rate_limit_window
from tests.api_server import CURL, running_server

pytestmark = pytest.mark.slow

RATE_LIMIT = 12


@pytest.fixture(scope="module")
def server():
    with running_server(
        COFFER_API_RATE_LIMIT=str(RATE_LIMIT),
        COFFER_API_MAX_BYTES="4096",
        COFFER_API_AUTH_FAILURE_LIMIT="1000",
        COFFER_BEHIND_PROXY="1",  # each test names its client address in X-Forwarded-For
        COFFER_WEB_THREADS="1",  # one request at a time per worker: see the rate-limit tests
    ) as running:
        yield running


def test_resolve_keeps_every_byte(server, tmp_path):
    template = tmp_path / "app.env.tmpl"
    template.write_bytes(b"DB=$Secret{DB_URL}\r\nlatin=caf\xe9\r\nKEY=$Secret{MULTILINE}")
    status, headers, body = server.curl(
        "/api/v1/resolve?source=app.env.tmpl",
        "--data-binary",
        f"@{template}",
        key=server.keys["main"],
    )
    assert status == 200
    assert headers["cache-control"] == "no-store"
    values = server.values
    assert body == (
        f"DB={values['DB_URL']}\r\n".encode()
        + b"latin=caf\xe9\r\n"
        + f"KEY={values['MULTILINE']}".encode()
    )


def test_check_reports_without_values(server):
    status, _, body = server.curl(
        "/api/v1/resolve?check=1",
        "--data-binary",
        "$Secret{DB_URL} $Secret{NOPE}",
        key=server.keys["main"],
    )
    assert status == 422
    report = json.loads(body)
    assert [(r["key"], r["reason"]) for r in report["references"]] == [
        ("DB_URL", None),
        ("NOPE", "unknown token, or not available in this context"),
    ]
    assert server.values["DB_URL"].encode() not in body


def test_unresolvable_is_422_with_no_value(server):
    status, _, body = server.curl(
        "/api/v1/resolve",
        "--data-binary",
        "$Secret{DB_URL}\n$Secret{MISSING}",
        key=server.keys["main"],
    )
    assert status == 422
    assert json.loads(body)["ok"] is False
    assert not [value for value in server.values.values() if value.encode() in body]


def test_values_as_json(server):
    status, headers, body = server.curl("/api/v1/values", key=server.keys["spare0"])
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == server.values


def test_values_as_shell_lines_sourced_by_bash(server):
    """Values no dotenv quoting carries for every reader (quotes with $ and backslashes): the
    shell format carries them to bash exactly."""
    key = server.keys["spare1"]
    names = ["MULTILINE", "QUOTES", "DB_URL", "STRIPE_KEY"]
    printer = "; ".join(f'printf "%s\\0" "${name}"' for name in names)
    script = (
        f'set -euo pipefail; set -a; source <("$CURL" -sS --fail -H "Authorization: Bearer $KEY" '
        f'"$URL/api/v1/values?format=shell&keys={",".join(names)}"); set +a; {printer}'
    )
    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        check=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "CURL": CURL,
            "KEY": key,
            "URL": server.url,
            "LC_ALL": "C.UTF-8",
        },
    )
    assert result.stdout.decode().split("\0")[:-1] == [server.values[name] for name in names]


def test_refusals(server, tmp_path):
    main = server.keys["main"]
    status, headers, body = server.curl("/api/v1/values", key="cfr_" + "0" * 49)
    assert (status, json.loads(body)["error"][:22]) == (401, "A valid access key is ")
    assert headers["www-authenticate"] == 'Bearer realm="coffer"'
    assert server.curl("/api/v1/values", key=server.keys["revoked"])[0] == 401
    assert server.curl("/api/v1/values")[0] == 401

    pinned = server.keys["pinned"]
    inside = server.curl("/api/v1/values", "-H", "X-Forwarded-For: 203.0.113.77", key=pinned)
    assert inside[0] == 200
    outside = server.curl("/api/v1/values", "-H", "X-Forwarded-For: 198.51.100.4", key=pinned)
    assert outside[0] == 403
    assert b"198.51.100.4" in outside[2]
    ipv6 = server.curl("/api/v1/values", "-H", "X-Forwarded-For: 2001:db8::9", key=pinned)
    assert ipv6[0] == 200

    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000)
    status, _, body = server.curl("/api/v1/resolve", "--data-binary", f"@{big}", key=main)
    assert status == 413
    said = "The template is 5,000 bytes; the limit is 4,096 bytes."
    assert json.loads(body) == {"message": said, "error": said}

    chunked = server.curl(
        "/api/v1/resolve", "-H", "Transfer-Encoding: chunked", "--data-binary", "x", key=main
    )
    assert chunked[0] == 411


def test_healthz_and_the_schema(server):
    status, headers, body = server.curl("/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, body = server.curl("/api/v1/openapi.json")
    assert status == 200 and json.loads(body)["openapi"] == "3.1.0"


def test_a_key_made_by_the_command_works(server):
    made = server.manage(
        "create_access_key",
        "--workspace",
        "acme",
        "--environment",
        "production",
        "--name",
        "from-the-command",
        "--expires-in",
        "7",
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    status, _, body = server.curl("/api/v1/values?keys=DB_URL", key=key)
    assert (status, json.loads(body)) == (200, {"DB_URL": server.values["DB_URL"]})
    refused = server.manage(
        "create_access_key", "--workspace", "acme", "--environment", "nowhere", "--name", "x"
    )
    assert refused.returncode == 2
    assert 'Environment "nowhere" not found' in refused.stderr


def hammer(server, key: str, requests: int) -> list[int]:
    def one(_):
        return server.curl("/api/v1/values?keys=DB_URL", key=key)[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(requests)))


def assert_limit_holds_across_workers(server, key: str, tmp_path) -> None:
    """One slow upload keeps a worker busy (its request counted when it starts; the server runs
    one thread per worker, else that worker's other threads could answer everything while
    requests are fast), so the other worker answers the rest: both count against one limit."""
    fresh_rate_limit_window(margin=20)  # the slow upload and the 22 requests in one window
    mark = len(server.log_lines())
    body = tmp_path / "slow.txt"
    body.write_bytes(b"no references, uploaded slowly\n" * 64)  # 2 KB at 1 KB/s
    slow = subprocess.Popen(
        [
            CURL,
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--limit-rate",
            "1k",
            "-H",
            f"Authorization: Bearer {key}",
            "--data-binary",
            f"@{body}",
            f"{server.url}/api/v1/resolve",
        ],
        stdout=subprocess.PIPE,
    )
    time.sleep(0.7)
    statuses = hammer(server, key, RATE_LIMIT + 9)
    statuses.append(int(slow.communicate(timeout=30)[0]))
    assert statuses.count(200) == RATE_LIMIT, statuses
    assert statuses.count(429) == 10, statuses
    status, headers, body = server.curl("/api/v1/values", key=key)
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 60
    assert b"Too many requests with this access key" in body
    # Per-process counters would let each worker answer up to the limit: with both workers
    # answering some of the 22 requests, more than RATE_LIMIT would get 200.
    assert len(server.worker_pids(mark)) == 2, "both workers answered"


def test_the_rate_limit_holds_across_both_workers(server, tmp_path):
    assert_limit_holds_across_workers(server, server.keys["spare2"], tmp_path)


def test_the_rate_limit_holds_across_both_workers_on_redis(tmp_path):
    url = "redis://127.0.0.1:6379/14"
    redis.Redis.from_url(url).flushdb()
    with running_server(
        COFFER_API_RATE_LIMIT=str(RATE_LIMIT),
        COFFER_RATELIMIT_REDIS_URL=url,
        COFFER_WEB_THREADS="1",
    ) as server:
        assert_limit_holds_across_workers(server, server.keys["spare3"], tmp_path)
        prefix = server.env["COFFER_RATELIMIT_REDIS_PREFIX"]
        assert redis.Redis.from_url(url).keys(f"{prefix}:ratelimit:key:*"), "counted on Redis"
