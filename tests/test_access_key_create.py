"""Create access key (`access:create`): the modal form, its refusals, the key shown once."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from access import keys
from access.models import AccessKey
from audit.models import AuditAction, AuditEvent
from tests.factories import AppFactory, ProductFactory, make_access_key
from tests.helpers import HTMX, access_key_data, access_url, text, url

pytestmark = pytest.mark.django_db

KEY_RE = re.compile(r"cfr_[0-9A-Za-z]{49}")


def shown_key(page: str) -> str:
    found = set(KEY_RE.findall(page))
    assert len(found) == 1, f"exactly one key on the page, got {len(found)}"
    return found.pop()


def test_form_asks_for_every_field(workspace, owner_client):
    response = owner_client.get(access_url("create", workspace), headers=HTMX)
    page = text(response)
    assert response.status_code == 200
    assert "<html" not in page, "the modal's content only"
    for label in (
        "Name",
        "Description",
        "Environment",
        "Product",
        "App",
        "Expiry",
        "Expiry date",
        "Allowed addresses",
    ):
        assert f">{label}</label>" in page, label
    assert '<option value="90" selected>90 days</option>' in page
    for choice in ("7 days", "30 days", "365 days", "On a date", "Never"):
        assert f">{choice}</option>" in page
    assert "Never</strong> means the key works until someone revokes it" in page
    assert f'hx-post="{access_url("create", workspace)}"' in page


def test_create_with_htmx_shows_the_key_once(workspace, owner_client):
    response = owner_client.post(
        access_url("create", workspace), access_key_data(workspace), headers=HTMX
    )
    page = text(response)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = shown_key(page)
    assert keys.is_well_formed(key)
    stored = AccessKey.objects.get(workspace=workspace, name="ci-deploy")
    assert AccessKey.objects.authenticate(key) == stored
    assert stored.created_by == owner_client.user
    assert stored.identifier == key[:10]
    assert "You won't see this key again" in page
    assert f'data-copy="{key}"' in page and 'data-copy-label="the access key"' in page
    assert f'-H "Authorization: Bearer {key}"' in page
    assert "http://testserver/api/v1/resolve?source=app.yaml" in page, "the real host"
    assert 'data-refresh-on-close="accessKeysChanged"' in page
    assert "<html" not in page
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_CREATED)
    assert event.actor == owner_client.user
    assert key not in str(event.detail)


def test_create_without_javascript_renders_the_one_time_page(workspace, owner_client):
    response = owner_client.post(access_url("create", workspace), access_key_data(workspace))
    page = text(response)
    assert response.status_code == 200, "no redirect: the key cannot be carried to another page"
    assert "<html" in page
    key = shown_key(page)
    assert AccessKey.objects.authenticate(key) is not None
    assert f'href="{access_url("list", workspace)}"' in page, "Done goes back to the tab"


def test_the_key_never_appears_again(workspace, owner_client):
    page = text(
        owner_client.post(access_url("create", workspace), access_key_data(workspace), headers=HTMX)
    )
    key = shown_key(page)
    access_key = AccessKey.objects.get(name="ci-deploy")
    root = get_user_model().objects.create_superuser("root", "root@example.com", None)
    admin = Client()
    admin.force_login(root)
    later = {
        "tab": owner_client.get(access_url("list", workspace)),
        "tab fragment": owner_client.get(access_url("list", workspace), headers=HTMX),
        "form again": owner_client.get(access_url("create", workspace), headers=HTMX),
        "revoke dialog": owner_client.get(access_url("revoke", workspace, access_key)),
        "delete dialog": owner_client.get(
            access_url("delete", workspace, access_key), headers=HTMX
        ),
        "activity": owner_client.get(url("audit:activity", workspace)),
        "activity filtered": owner_client.get(
            url("audit:activity", workspace) + "?kind=access_keys"
        ),
        "tokens": owner_client.get(url("list", workspace)),
        "admin list": admin.get(reverse("admin:access_accesskey_changelist")),
        "admin page": admin.get(reverse("admin:access_accesskey_change", args=[access_key.pk])),
    }
    for name, response in later.items():
        assert response.status_code == 200, name
        body = text(response)
        assert key not in body, name
        assert key[10:26] not in body, f"{name}: a part of the key"
    assert "ci-deploy" in text(later["activity"]), "control: Activity lists the creation"
    assert f"{access_key.identifier}…" in text(later["tab"])


def test_context_expiry_and_addresses_are_kept(workspace, owner_client):
    product = ProductFactory(workspace=workspace, name="Payments", slug="payments")
    app = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    sandbox = workspace.environments.get(slug="sandbox")
    data = access_key_data(
        workspace,
        name="mobile-build",
        description="Mobile CI",
        environment=sandbox.pk,
        product=product.pk,
        app=app.pk,
        expiry="365",
        allowed_addresses="203.0.113.0/24, 2001:db8::/32\n198.51.100.7",
    )
    before = timezone.now()
    assert owner_client.post(access_url("create", workspace), data).status_code == 200
    key = AccessKey.objects.get(name="mobile-build")
    assert (key.environment, key.product, key.app) == (sandbox, product, app)
    assert key.description == "Mobile CI"
    assert key.allowed_networks == ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"]
    assert (
        before + dt.timedelta(days=365) <= key.expires_at <= timezone.now() + dt.timedelta(days=365)
    )


@pytest.mark.parametrize("expiry", ["7", "30", "90"])
def test_preset_expiries(workspace, owner_client, expiry):
    data = access_key_data(workspace, expiry=expiry)
    owner_client.post(access_url("create", workspace), data)
    key = AccessKey.objects.get()
    assert round((key.expires_at - key.created_at) / dt.timedelta(days=1)) == int(expiry)


def test_expiry_on_a_date_and_never(workspace, owner_client):
    day = timezone.now().date() + dt.timedelta(days=10)
    owner_client.post(
        access_url("create", workspace),
        access_key_data(workspace, name="dated", expiry="date", expiry_date=day.isoformat()),
    )
    owner_client.post(
        access_url("create", workspace), access_key_data(workspace, name="forever", expiry="never")
    )
    assert AccessKey.objects.get(name="dated").expires_at == dt.datetime.combine(
        day, dt.time.min, tzinfo=dt.UTC
    )
    assert AccessKey.objects.get(name="forever").expires_at is None


REFUSALS = [
    ({"name": ""}, "This field is required."),
    ({"name": "x" * 101}, "Ensure this value has at most 100 characters"),
    ({"name": "tab\there"}, "The name must be printable text"),
    ({"environment": ""}, "This field is required."),
    ({"environment": "999999"}, "Choose an environment of this workspace."),
    ({"environment": "not-a-number"}, "Choose an environment of this workspace."),
    ({"product": "999999"}, "Choose a product of this workspace, or none."),
    ({"expiry": "12"}, "Select a valid choice."),
    ({"expiry": "date"}, "Choose the date the key expires on."),
    ({"expiry": "date", "expiry_date": "2020-01-01"}, "The expiry date must be in the future"),
    ({"expiry": "date", "expiry_date": "31/12/2030"}, "Enter a valid date."),
    ({"allowed_addresses": "10.0.0.0/33"}, "is not an IPv4 or IPv6 address or network"),
    ({"allowed_addresses": "10.0.0.1/8"}, "has host bits set; did you mean 10.0.0.0/8?"),
    ({"allowed_addresses": "localhost"}, "is not an IPv4 or IPv6 address or network"),
    ({"description": "a" * 501}, "Ensure this value has at most 500 characters"),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSALS)
@pytest.mark.parametrize("htmx", [True, False])
def test_bad_input_is_refused_with_a_message(workspace, owner_client, overrides, message, htmx):
    response = owner_client.post(
        access_url("create", workspace),
        access_key_data(workspace, **overrides),
        headers=HTMX if htmx else {},
    )
    page = text(response)
    assert response.status_code == 200, "the form again"
    assert message in page.replace("&quot;", '"').replace("&#x27;", "'")
    assert "invalid-feedback" in page
    assert not KEY_RE.search(page)
    assert not AccessKey.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.ACCESS_KEY_CREATED).exists()


def test_duplicate_name_is_refused(workspace, owner_client):
    make_access_key(workspace, name="ci-deploy")
    response = owner_client.post(access_url("create", workspace), access_key_data(workspace))
    assert "An access key named “ci-deploy” already exists in this workspace." in text(response)
    assert AccessKey.objects.count() == 1


def test_another_workspaces_environment_is_refused(workspace, other_workspace, owner_client):
    theirs = other_workspace.environments.get(slug="production")
    response = owner_client.post(
        access_url("create", workspace), access_key_data(workspace, environment=theirs.pk)
    )
    assert "Choose an environment of this workspace." in text(response)
    assert not AccessKey.objects.exists()


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_only_owners_create(workspace, role_client, role):
    client = role_client[role]
    assert client.get(access_url("create", workspace)).status_code == 403
    response = client.post(access_url("create", workspace), access_key_data(workspace))
    assert response.status_code == 403
    assert not AccessKey.objects.exists()


def test_other_workspace_gets_404(workspace, outsider_client):
    response = outsider_client.post(access_url("create", workspace), access_key_data(workspace))
    assert response.status_code == 404
    assert not AccessKey.objects.exists()
