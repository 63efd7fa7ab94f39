"""The resolver's output limit: a small template that references a large token many times is
refused (413, nothing decrypted, used or output) instead of making a worker hold the output."""

from __future__ import annotations

import io
import tracemalloc

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F

from audit.models import AuditAction, AuditEvent
from tests.api_helpers import api_setup, get_values, post_resolve
from tests.factories import TokenFactory
from tokens.models import VALUE_MAX_BYTES, Token

pytestmark = pytest.mark.django_db

BIG = "B" * VALUE_MAX_BYTES  # a 64 KiB value, the largest a token holds


@pytest.fixture
def setup(workspace):
    setup = api_setup(workspace)
    TokenFactory(workspace=workspace, key="BIG", value=BIG)
    return setup


def amplifying_template(references: int) -> str:
    return "$Secret{BIG}\n" * references


def test_the_probes_amplifying_request_gets_413_and_no_value(client, setup):
    """6,000 references to one 64 KiB token in a 78 KB body: 393 MB of output, refused."""
    template = amplifying_template(6_000)
    assert len(template) < 100_000
    response = post_resolve(client, setup.key, template)
    assert response.status_code == 413
    message = response.json()["error"]
    assert "would be 393,222,000 bytes" in message
    assert "the limit is 16,777,216 bytes" in message
    assert BIG[:100] not in response.content.decode()
    big = Token.objects.get(key="BIG")
    assert big.last_used_at is None  # nothing was marked used
    assert not AuditEvent.objects.filter(action=AuditAction.RESOLVED).exists()


def test_the_limit_is_a_setting_and_output_at_the_limit_resolves(client, setup, settings):
    template = amplifying_template(10)
    size = 10 * (VALUE_MAX_BYTES + 1)
    settings.COFFER_RESOLVE_MAX_OUTPUT_BYTES = size
    response = post_resolve(client, setup.key, template)
    assert response.status_code == 200 and len(response.content) == size
    settings.COFFER_RESOLVE_MAX_OUTPUT_BYTES = size - 1
    response = post_resolve(client, setup.key, template)
    assert response.status_code == 413
    assert f"would be {size:,} bytes; the limit is {size - 1:,} bytes" in response.json()["error"]


def test_values_has_the_same_limit(client, setup, settings):
    settings.COFFER_RESOLVE_MAX_OUTPUT_BYTES = VALUE_MAX_BYTES
    response = get_values(client, setup.key, "?keys=BIG,DB_URL")
    assert response.status_code == 413
    assert "the limit is 65,536 bytes" in response.json()["error"]


def test_resolve_command_has_a_stated_limit(setup, tmp_path):
    """`manage.py resolve --max-output-bytes` (default 256 MiB): refused, exit 1, nothing
    written."""
    output = tmp_path / "out.txt"
    args = [
        "resolve",
        "--workspace",
        "acme",
        "--environment",
        "production",
        "--product",
        "payments",
        "--app",
        "checkout",
        "--output",
        str(output),
        "--max-output-bytes",
        "100000",
        "-",
    ]
    with pytest.raises(CommandError) as raised:
        call_command(*args, stdin=io.BytesIO(amplifying_template(2).encode()))
    assert raised.value.returncode == 1
    assert "would be 131,074 bytes; the limit is 100,000 bytes" in str(raised.value)
    assert not output.exists()
    with pytest.raises(CommandError, match=r"would be 1,966,110,000 bytes; the limit is 268,435"):
        call_command(*args[:-3], "-", stdin=io.BytesIO(amplifying_template(30_000).encode()))


@pytest.mark.slow
def test_a_resolve_at_the_default_limit_keeps_the_worker_under_its_stated_peak(client, setup):
    """The largest output the default limit lets through (16 MiB from 256 references to a 64
    KiB token) costs the request at most 1.5 times the limit in Python allocations: the
    output is rendered as bytes, once (measured: 16 MiB and a little), the figure the docs
    state."""
    references = 16 * 1024 * 1024 // (VALUE_MAX_BYTES + 1)
    Token.objects.filter(key="BIG").update(last_used_at=F("created_at"))  # warm the row
    post_resolve(client, setup.key, "$Secret{BIG}")  # warm the code paths
    tracemalloc.start()
    try:
        response = post_resolve(client, setup.key, amplifying_template(references))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200
    assert len(response.content) > 16_000_000
    assert peak < 1.5 * 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
