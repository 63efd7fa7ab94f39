"""An id past any row's is a 404 on the pages that fetch a workspace object by number, not a
server error: Django answers an out-of-range integer lookup with no rows, on SQLite and
PostgreSQL alike, so the views need no guard of their own."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

HUGE_IDS = (2**63, 10**30)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("access:revoke", {}),
        ("access:delete", {}),
        ("identities:delete", {}),
        ("catalog_edit", {"kind": "environments"}),
        ("catalog_delete", {"kind": "products"}),
    ],
)
def test_a_huge_id_gets_404(workspace, owner_client, name, kwargs):
    for pk in HUGE_IDS:
        url = reverse(name, kwargs={"slug": workspace.slug, "pk": pk, **kwargs})
        assert owner_client.get(url).status_code == 404, url
