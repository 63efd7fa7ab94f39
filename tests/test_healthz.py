"""GET /healthz: 200 when the database answers and the master key ring is loaded, 503 saying
nothing more otherwise."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import OperationalError

pytestmark = pytest.mark.django_db


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_needs_no_key_and_ignores_sessions(client, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        assert client.get("/healthz").status_code == 200


def test_no_master_key_is_unhealthy(client, settings, tmp_path, caplog):
    settings.COFFER_MASTER_KEYS = ""
    settings.COFFER_MASTER_KEY_FILE = tmp_path / "missing.keys"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert "MasterKeyError" in caplog.text
    assert str(tmp_path) not in response.text


def test_no_database_is_unhealthy(client, caplog):
    with mock.patch(
        "django.db.backends.base.base.BaseDatabaseWrapper.cursor",
        side_effect=OperationalError("connection refused at 10.1.2.3"),
    ):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert "10.1.2.3" not in response.text
    assert "OperationalError" in caplog.text


def test_only_get_and_head(client):
    assert client.head("/healthz").status_code == 200
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.json() == {"message": "Use GET, HEAD.", "error": "Use GET, HEAD."}
