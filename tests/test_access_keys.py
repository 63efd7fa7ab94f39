"""Access keys: the format and its checksum, what is stored, the rules and the lifecycle."""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from access import keys
from access.models import AccessKey, count_uses
from audit.models import AuditAction, AuditEvent
from tests.factories import AppFactory, ProductFactory, UserFactory, make_access_key
from tokens.models import UseContext
from tokens.usage import CredentialUse

pytestmark = pytest.mark.django_db


# --- the format -----------------------------------------------------------------------------


def test_a_key_is_prefix_random_part_and_checksum():
    key = keys.generate()
    assert key.startswith("cfr_")
    assert len(key) == 4 + 43 + 6
    assert key[4:].isalnum() and key.isascii()
    random_part, check = key[4:47], key[47:]
    assert check == keys.base62(zlib.crc32(random_part.encode()), 6)
    assert keys.is_well_formed(key)


def test_keys_carry_at_least_256_random_bits():
    assert 62**43 >= 2**256
    generated = {keys.generate() for _ in range(2000)}
    assert len(generated) == 2000
    # every position of the random part takes many values (nothing fixed but the prefix)
    for position in range(4, 47):
        assert len({key[position] for key in generated}) > 40


@pytest.mark.parametrize(
    "broken",
    [
        "",
        "cfr_",
        "ghp_" + "a" * 49,
        "cfr_" + "a" * 48,  # one short
        "cfr_" + "a" * 50,  # one long
        "CFR_" + "a" * 49,
        "cfr_" + "a" * 42 + "-" + "a" * 6,
        "cfr_" + "é" * 49,
    ],
)
def test_malformed_keys_are_not_well_formed(broken):
    assert not keys.is_well_formed(broken)


def test_one_changed_character_breaks_the_checksum():
    key = keys.generate()
    for position in range(4, len(key)):
        replacement = "A" if key[position] != "A" else "B"
        changed = key[:position] + replacement + key[position + 1 :]
        assert not keys.is_well_formed(changed), position


def test_only_the_hash_and_the_identifier_are_stored(workspace):
    row, key = make_access_key(workspace)
    row.refresh_from_db()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert row.identifier == key[:10]
    stored = [str(value) for value in AccessKey.objects.values_list().get(pk=row.pk)]
    assert not any(key in value or key[10:30] in value for value in stored)


# --- creating ---------------------------------------------------------------------------------


def test_a_key_is_its_use_context(workspace):
    product = ProductFactory(workspace=workspace, slug="payments")
    app = AppFactory(workspace=workspace, slug="checkout")
    row, _ = make_access_key(workspace, product=product, app=app)
    production = workspace.environments.get(slug="production")
    assert row.context == UseContext(production, product=product, app=app)


def test_default_expiry_is_90_days_and_never_means_never(workspace):
    before = timezone.now()
    row, _ = make_access_key(workspace)
    assert (
        before + dt.timedelta(days=90) <= row.expires_at <= timezone.now() + dt.timedelta(days=90)
    )
    forever, _ = make_access_key(workspace, name="forever", expires=None)
    assert forever.expires_at is None


def test_an_expiry_date_ends_the_key_at_midnight_utc(workspace):
    day = timezone.now().date() + dt.timedelta(days=10)
    row, _ = make_access_key(workspace, expires=day)
    assert row.expires_at == dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"name": ""}, "name", "Enter a name"),
        ({"name": "x" * 101}, "name", "at most 100"),
        ({"name": "tab\there"}, "name", "printable"),
        ({"expires": 0}, "expires_at", "1 to 3650 days"),
        ({"expires": 4000}, "expires_at", "1 to 3650 days"),
        ({"expires": dt.date(2000, 1, 1)}, "expires_at", "in the future"),
        ({"allowed_networks": ["10.0.0.1/8"]}, "allowed_networks", "did you mean 10.0.0.0/8"),
        ({"allowed_networks": ["999.1.1.1"]}, "allowed_networks", "not an IPv4 or IPv6"),
        ({"allowed_networks": ["fe80::/zz"]}, "allowed_networks", "not an IPv4 or IPv6"),
        ({"allowed_networks": [""]}, "allowed_networks", "not an address"),
        ({"description": "x" * 501}, "description", "at most 500"),
    ],
)
def test_broken_rules_are_refused_with_a_message_and_nothing_stored(
    workspace, options, field, message
):
    with pytest.raises(ValidationError) as raised:
        make_access_key(workspace, **options)
    assert any(message in text for text in raised.value.message_dict[field])
    assert not AccessKey.objects.exists()
    assert not AuditEvent.objects.exists()


def test_names_are_unique_per_workspace(workspace, other_workspace):
    make_access_key(workspace, name="deploy")
    make_access_key(other_workspace, name="deploy")
    with pytest.raises(ValidationError, match="already exists"):
        make_access_key(workspace, name="deploy")


def test_another_workspaces_product_or_app_is_refused(workspace, other_workspace):
    theirs = ProductFactory(workspace=other_workspace)
    with pytest.raises(ValidationError, match="product of this workspace"):
        make_access_key(workspace, product=theirs)
    with pytest.raises(ValidationError, match="environment of this workspace"):
        make_access_key(workspace, environment=other_workspace.environments.first())


def test_networks_are_normalised_ipv4_and_ipv6(workspace):
    row, _ = make_access_key(
        workspace, allowed_networks=["203.0.113.0/24", " 2001:db8::/32 ", "198.51.100.7"]
    )
    assert row.allowed_networks == ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"]
    assert row.allows_address("203.0.113.200")
    assert row.allows_address("2001:db8:1::5")
    assert row.allows_address("198.51.100.7")
    assert row.allows_address("::ffff:203.0.113.9"), "an IPv4-mapped IPv6 address is IPv4"
    assert not row.allows_address("198.51.100.8")
    assert not row.allows_address("2001:db9::1")
    assert not row.allows_address(None)
    assert not row.allows_address("not-an-address")


def test_a_key_without_networks_works_from_anywhere(workspace):
    row, _ = make_access_key(workspace)
    assert row.allows_address("192.0.2.1") and row.allows_address(None)


def test_creating_is_audited_without_the_key(workspace):
    user = UserFactory(username="olivia")
    row, key = make_access_key(workspace, by=user)
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_CREATED)
    assert event.actor == user
    assert event.detail["access_key"] == "ci-deploy"
    assert event.detail["identifier"] == f"{row.identifier}…"
    assert event.detail["environment"] == "production"
    assert key not in str(event.detail) and key[10:] not in str(event.detail)


# --- authenticating ---------------------------------------------------------------------------


def test_authenticate_finds_the_key_by_its_hash(workspace):
    row, key = make_access_key(workspace)
    assert AccessKey.objects.authenticate(key) == row


def test_a_malformed_key_costs_no_query(workspace, django_assert_num_queries):
    _, key = make_access_key(workspace)
    with django_assert_num_queries(0):
        assert AccessKey.objects.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert AccessKey.objects.authenticate("Bearer nonsense") is None


def test_unknown_revoked_and_expired_keys_all_fail_after_one_query(
    workspace, django_assert_num_queries
):
    revoked, revoked_key = make_access_key(workspace, name="revoked")
    revoked.revoke()
    expired, expired_key = make_access_key(workspace, name="expired")
    AccessKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    for key in (keys.generate(), revoked_key, expired_key):
        with django_assert_num_queries(1):
            assert AccessKey.objects.authenticate(key) is None


def test_authenticate_loads_what_the_orm_would_and_all_a_request_needs_in_one_query(
    workspace, django_assert_num_queries
):
    """The plain-SQL lookup gives the same key, workspace, environment, product and app as the
    ORM (every field converted as the ORM converts it: datetimes, JSON, addresses)."""
    product, app = ProductFactory(workspace=workspace), AppFactory(workspace=workspace)
    row, key = make_access_key(
        workspace, product=product, app=app, expires=30, allowed_networks=["192.0.2.0/24"]
    )
    AccessKey.objects.filter(pk=row.pk).update(
        use_count=1, last_used_at=timezone.now(), last_used_from="2001:db8::7"
    )
    with django_assert_num_queries(1):
        found = AccessKey.objects.authenticate(key)
    expected = AccessKey.objects.select_related("workspace", "environment", "product", "app").get(
        pk=row.pk
    )
    with django_assert_num_queries(0):
        for got, want in (
            (found, expected),
            (found.workspace, expected.workspace),
            (found.environment, expected.environment),
            (found.product, expected.product),
            (found.app, expected.app),
            (found.context.environment.workspace, expected.workspace),
        ):
            fields = type(want)._meta.concrete_fields
            assert [getattr(got, f.attname) for f in fields] == [
                getattr(want, f.attname) for f in fields
            ], type(want).__name__
        assert found.allows_address("192.0.2.9") and not found.allows_address("198.51.100.1")
        assert found.actor_name == expected.actor_name


def test_authenticate_without_product_or_app_gives_none_for_them(workspace):
    _, key = make_access_key(workspace)
    found = AccessKey.objects.authenticate(key)
    assert (found.product, found.app) == (None, None)
    assert found.context.environment.slug == "production"


# --- lifecycle --------------------------------------------------------------------------------


def test_hold_asks_in_one_query_and_writes_nothing(workspace, django_assert_num_queries):
    """Requests with one key never update its row (they would wait for each other): the use is
    counted when the reads' usage records are rolled up, the latest address kept."""
    row, _ = make_access_key(workspace)
    now = timezone.now()
    with django_assert_num_queries(1):
        assert row.hold(at=now)
    row.refresh_from_db()
    assert (row.use_count, row.last_used_at) == (0, None)
    earlier = now - dt.timedelta(seconds=5)
    count_uses({row.usage_ref: CredentialUse(2, now, "2001:db8::1")})
    count_uses({row.usage_ref: CredentialUse(1, earlier, "192.0.2.4")})  # folded late
    row.refresh_from_db()
    assert row.use_count == 3
    assert (row.last_used_at, row.last_used_from) == (now, "2001:db8::1")


def test_hold_says_yes_exactly_when_the_key_is_active(workspace):
    """The plain SQL's own check agrees with `AccessKey.objects.active` at every moment."""
    now = timezone.now()
    second = dt.timedelta(seconds=1)
    for n, (expires_at, revoked) in enumerate(
        (expiry, revoked)
        for expiry in (None, now - second, now, now + second)
        for revoked in (False, True)
    ):
        row, _ = make_access_key(workspace, name=f"k{n}")
        AccessKey.objects.filter(pk=row.pk).update(
            expires_at=expires_at, revoked_at=now - second if revoked else None
        )
        active = AccessKey.objects.filter(pk=row.pk).active(now).exists()
        assert row.hold(at=now) is active, (expires_at, revoked)


def test_revoking_is_immediate_final_and_audited(workspace):
    user = UserFactory(username="olivia")
    row, key = make_access_key(workspace)
    row.revoke(by=user)
    assert row.is_revoked and row.display_status == "Revoked"
    assert AccessKey.objects.authenticate(key) is None
    assert not row.hold(at=timezone.now())
    with pytest.raises(ValidationError, match="already revoked"):
        row.revoke(by=user)
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_REVOKED)
    assert event.actor == user and event.detail["access_key"] == "ci-deploy"


def test_deleting_removes_the_row_and_keeps_the_trail(workspace):
    user = UserFactory(username="olivia")
    row, key = make_access_key(workspace)
    row.delete_key(by=user)
    assert not AccessKey.objects.exists()
    assert AccessKey.objects.authenticate(key) is None
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_DELETED)
    assert event.actor == user and event.detail["identifier"] == f"{row.identifier}…"
    with pytest.raises(ValidationError, match="already deleted"):
        row.delete_key(by=user)


def test_deleting_its_product_deletes_the_key_rather_than_widen_it(workspace):
    product = ProductFactory(workspace=workspace)
    make_access_key(workspace, product=product)
    product.delete()
    assert not AccessKey.objects.exists()
