"""An unknown URL under /api/ answers like the API (JSON, no-store); elsewhere the 404 page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/resolv", "/api/v2/resolve", "/api/"])
def test_an_unknown_api_path_gets_a_json_404(client, path):
    response = client.post(path, b"$Secret{X}", content_type="text/plain")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert "no such API endpoint" in response.json()["error"]


def test_an_unknown_page_still_gets_the_404_page(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
