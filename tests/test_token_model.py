"""The token rules of issue 3, through the model methods the UI, the admin and the resolver use."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, transaction
from django.forms.models import model_to_dict
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditAction, AuditEvent
from keys.models import WorkspaceKey
from tests.factories import AppFactory, ProductFactory, UserFactory
from tokens.models import EXPIRING_SOON_DAYS, ExpiryState, Token, TokenStatus, TokenType, UseContext

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----\n"
)


def make(workspace, key="API_KEY", value="a-secret-value-of-some-length", **kwargs) -> Token:
    kwargs.setdefault("environments", list(workspace.environments.all()))
    return Token.objects.create_token(workspace=workspace, key=key, value=value, **kwargs)


def errors_of(excinfo) -> dict[str, list[str]]:
    return excinfo.value.message_dict


def tomorrow() -> dt.date:
    return timezone.now().date() + dt.timedelta(days=1)


def midnight_utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


# --- key ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["A", "_", "a1", "PAYMENT_API_KEY", "_private9", "K" * 128])
def test_key_following_the_grammar_is_accepted(workspace, key):
    assert make(workspace, key=key).key == key


@pytest.mark.parametrize(
    "key",
    ["", "1ABC", "A-B", "A B", "ÄPFEL", "KEY\n", "KEY.X", "$Secret", "K" * 129, "a\x00b"],
)
def test_key_breaking_the_grammar_or_length_is_refused(workspace, key):
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, key=key)
    assert "key" in errors_of(excinfo)
    assert not Token.objects.exists()


def test_keys_are_case_sensitive(workspace):
    make(workspace, key="api_key")
    make(workspace, key="API_KEY")
    assert sorted(Token.objects.values_list("key", flat=True)) == ["API_KEY", "api_key"]


def test_a_key_already_valid_in_the_environment_is_a_validation_error(workspace):
    make(workspace, key="STRIPE")
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, key="STRIPE")
    assert errors_of(excinfo)["environments"] == [
        "STRIPE is already valid in Production and Sandbox (every product and app); choose "
        "other environments or narrow the scope."
    ]
    assert Token.objects.count() == 1


def test_same_key_in_another_workspace_is_fine(workspace, other_workspace):
    make(workspace, key="STRIPE")
    make(other_workspace, key="STRIPE")
    assert Token.objects.filter(key="STRIPE").count() == 2


def test_renaming_to_a_key_valid_in_the_same_environments_is_a_validation_error(workspace):
    make(workspace, key="ONE")
    two = make(workspace, key="TWO")
    with pytest.raises(ValidationError) as excinfo:
        two.update(key="ONE")
    assert errors_of(excinfo)["environments"][0].startswith("ONE is already valid in Production")
    two.refresh_from_db()
    assert two.key == "TWO"


def test_the_database_stores_two_tokens_of_one_key(workspace):
    """No unique constraint on (workspace, key) any more: the overlap rule keeps them apart."""
    token = make(workspace, key="DUP")
    copy = Token(workspace=workspace, key="DUP", ciphertext=bytes(token.ciphertext))
    copy.save(force_insert=True)
    assert Token.objects.filter(key="DUP").count() == 2


@pytest.mark.parametrize("key", ["1BAD", "BAD KEY", "BAD\n", "K" * 129, ""])
def test_database_refuses_a_bad_key_even_without_the_model_methods(workspace, key):
    # PostgreSQL's varchar(128) refuses a long key as a DataError before the check constraint.
    with pytest.raises((IntegrityError, DataError)), transaction.atomic():
        Token.objects.create(workspace=workspace, key=key, ciphertext=b"x" * 40)


# --- value --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""])
def test_value_is_required_on_create(workspace, value):
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, value=value)
    assert errors_of(excinfo)["value"] == ["Enter the token value."]


@pytest.mark.parametrize(
    "value",
    ["x", " ", "é" * 32_768, "a" * 65_536, "日本" * 100, PEM, PEM.replace("\n", "\r\n")],
    ids=["1-byte", "space", "64KiB-2-byte-chars", "64KiB-ascii", "cjk", "pem", "pem-crlf"],
)
def test_value_from_one_byte_to_64_kib_is_kept_byte_for_byte(workspace, value):
    token = make(workspace, value=value)
    assert Token.objects.get(pk=token.pk).reveal().encode() == value.encode()


@pytest.mark.parametrize("value", ["a" * 65_537, "é" * 32_768 + "a"])
def test_value_over_64_kib_is_refused(workspace, value):
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, value=value)
    assert "the limit is 64 KiB (65,536 bytes)" in errors_of(excinfo)["value"][0]


def test_value_that_is_not_utf8_text_is_refused(workspace):
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, value="abc\ud800")
    assert errors_of(excinfo)["value"] == ["The value must be valid UTF-8 text."]


def test_blank_value_on_edit_keeps_the_value_and_version(workspace):
    token = make(workspace, value="original-value-1234")
    before = bytes(token.ciphertext)
    assert token.update(description="now described", value="") == ["description"]
    token.update(description="again", value=None)
    assert token.reveal() == "original-value-1234"
    assert token.value_version == 0
    assert bytes(token.ciphertext) == before


def test_new_value_increments_the_version(workspace):
    token = make(workspace, value="first-value")
    token.set_value("second-value")
    assert (token.value_version, token.reveal()) == (1, "second-value")
    assert token.update(value="third-value") == ["value"]
    assert (token.value_version, Token.objects.get(pk=token.pk).reveal()) == (2, "third-value")


def test_same_value_twice_gives_different_ciphertexts(workspace):
    one = make(workspace, key="ONE", value="same-value")
    two = make(workspace, key="TWO", value="same-value")
    assert bytes(one.ciphertext) != bytes(two.ciphertext)
    assert bytes(one.ciphertext)[:12] != bytes(two.ciphertext)[:12]  # fresh nonces


# --- hint ---------------------------------------------------------------------------------


def test_values_of_16_characters_or_more_get_a_last_4_hint(workspace):
    token = make(workspace, value="0123456789ab" + "wxyz")
    assert token.hint == "••••wxyz"
    token.set_value("0123456789abcdef-new!")
    assert token.hint == "••••new!"


@pytest.mark.parametrize(
    "value",
    [
        "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
        "sixteen-chars-and-nul\x00ab",
        "a" * 20 + "\tb c",
    ],
)
def test_values_ending_in_whitespace_or_control_characters_get_no_hint(workspace, value):
    token = make(workspace, value=value)
    assert (token.hint, token.value_hint) == ("", "")
    assert Token.objects.get(pk=token.pk).reveal() == value


def test_values_under_16_characters_get_no_hint(workspace):
    token = make(workspace, value="0123456789abcde")
    assert (token.hint, token.value_hint) == ("", "")


# --- expiry -------------------------------------------------------------------------------


def test_no_expiry_date_and_no_period_never_expires(workspace):
    token = make(workspace)
    assert token.expires_at is None
    assert not token.is_expired(timezone.now() + dt.timedelta(days=100_000))
    assert Token.objects.active().get() == token


def test_expiry_date_ends_the_token_at_midnight_utc(workspace):
    day = tomorrow()
    token = make(workspace, expiry_date=day)
    assert token.expires_at == midnight_utc(day)
    assert not token.is_expired(midnight_utc(day) - dt.timedelta(microseconds=1))
    assert token.is_expired(midnight_utc(day))


@pytest.mark.parametrize("days_from_today", [0, -1, -400])
def test_expiry_date_must_be_in_the_future(workspace, days_from_today):
    day = timezone.now().date() + dt.timedelta(days=days_from_today)
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, expiry_date=day)
    assert "must be in the future" in errors_of(excinfo)["expiry_date"][0]
    token = make(workspace, key="LATER")
    with pytest.raises(ValidationError):
        token.update(expiry_date=day)


def test_an_expiry_date_that_has_passed_does_not_block_other_edits(workspace):
    token = make(workspace, expiry_date=tomorrow())
    yesterday = timezone.now().date() - dt.timedelta(days=1)
    Token.objects.filter(pk=token.pk).update(
        expiry_date=yesterday, expires_at=midnight_utc(yesterday)
    )
    token.refresh_from_db()
    assert token.update(description="still editable", expiry_date=yesterday) == ["description"]
    assert token.display_status == "Expired"


@pytest.mark.parametrize("days", [7, 30, 60, 90, 180, 365, 1, 45, 3650])
def test_period_counts_from_when_the_value_was_set(workspace, days):
    token = make(workspace, period_days=days)
    assert token.expires_at == token.value_set_at + dt.timedelta(days=days)


@pytest.mark.parametrize("days", [0, -1, 3651, 1.5, True])
def test_period_outside_1_to_3650_whole_days_is_refused(workspace, days):
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, period_days=days)
    assert "1 to 3650" in errors_of(excinfo)["period_days"][0]


def test_a_new_value_restarts_the_period(workspace):
    token = make(workspace, period_days=30)
    Token.objects.filter(pk=token.pk).update(value_set_at=timezone.now() - dt.timedelta(days=29))
    token.refresh_from_db()
    token.update(description="edit without a new value")
    assert token.expires_at == token.value_set_at + dt.timedelta(days=30)
    assert token.expires_at < timezone.now() + dt.timedelta(days=2)
    token.set_value("fresh-value")
    assert token.expires_at == token.value_set_at + dt.timedelta(days=30)
    assert token.expires_at > timezone.now() + dt.timedelta(days=29)


def test_with_date_and_period_the_earlier_wins(workspace):
    day = tomorrow()
    date_first = make(workspace, key="DATE_FIRST", expiry_date=day, period_days=30)
    assert date_first.expires_at == midnight_utc(day)
    period_first = make(
        workspace, key="PERIOD_FIRST", expiry_date=day + dt.timedelta(days=90), period_days=7
    )
    assert period_first.expires_at == period_first.value_set_at + dt.timedelta(days=7)


def test_effective_expiry_is_stored_and_queried(workspace):
    expired = make(workspace, key="OLD", period_days=1)
    Token.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(hours=1))
    fresh = make(workspace, key="NEW", period_days=1)
    assert list(Token.objects.active()) == [fresh]
    assert list(Token.objects.expired()) == [expired]
    expired.refresh_from_db()
    assert expired.display_status == "Expired"
    assert expired.unusable_reason(UseContext(environment=workspace.environments.first()))
    assert expired.unusable_reason(
        UseContext(environment=workspace.environments.first())
    ).startswith("token expired on ")


def test_changing_the_period_recomputes_the_expiry_from_the_value_set_time(workspace):
    token = make(workspace, period_days=30)
    token.update(period_days=7)
    assert token.expires_at == token.value_set_at + dt.timedelta(days=7)
    token.update(period_days=None)
    assert token.expires_at is None


# --- scope and environments ---------------------------------------------------------------


@pytest.fixture
def catalog(workspace):
    return {
        "payments": ProductFactory(workspace=workspace, name="Payments", slug="payments"),
        "store": ProductFactory(workspace=workspace, name="Storefront", slug="storefront"),
        "checkout": AppFactory(workspace=workspace, name="Checkout", slug="checkout"),
        "mobile": AppFactory(workspace=workspace, name="Mobile", slug="mobile"),
        "production": workspace.environments.get(slug="production"),
        "sandbox": workspace.environments.get(slug="sandbox"),
    }


def test_empty_scope_lets_any_product_or_app_of_the_workspace_use_it(workspace, catalog):
    token = make(workspace)
    for product, app in [(catalog["payments"], None), (None, catalog["mobile"]), (None, None)]:
        context = UseContext(environment=catalog["production"], product=product, app=app)
        assert token.is_usable_by(context)


def test_scoped_token_is_usable_by_its_product_or_its_app(workspace, catalog):
    token = make(workspace, products=[catalog["payments"]], apps=[catalog["checkout"]])
    production = catalog["production"]
    assert token.is_usable_by(UseContext(production, product=catalog["payments"]))
    assert token.is_usable_by(UseContext(production, app=catalog["checkout"]))
    assert token.is_usable_by(
        UseContext(production, product=catalog["store"], app=catalog["checkout"])
    )
    assert token.unusable_reason(UseContext(production, product=catalog["store"])) == (
        "not in scope for storefront"
    )
    assert token.unusable_reason(UseContext(production, app=catalog["mobile"])) == (
        "not in scope for mobile"
    )
    assert token.unusable_reason(UseContext(production)) == "not in scope: no product or app given"


def test_token_is_usable_only_in_its_environments(workspace, catalog):
    token = make(workspace, environments=[catalog["sandbox"]])
    assert token.is_usable_by(UseContext(catalog["sandbox"]))
    assert token.unusable_reason(UseContext(catalog["production"])) == (
        "unknown token, or not available in this context"
    )


def test_a_use_from_another_workspace_is_refused_even_with_empty_scope(workspace, other_workspace):
    token = make(workspace)
    foreign_product = ProductFactory(workspace=other_workspace, slug="foreign")
    context = UseContext(workspace.environments.first(), product=foreign_product)
    assert token.unusable_reason(context) == "foreign is not in this token's workspace"
    assert not token.is_usable_by(UseContext(other_workspace.environments.first()))


def test_at_least_one_environment_is_required(workspace):
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, environments=[])
    assert errors_of(excinfo)["environments"] == ["Choose at least one environment."]
    token = make(workspace)
    with pytest.raises(ValidationError):
        token.update(environments=[])
    assert token.environments.count() == 2


@pytest.mark.parametrize("field", ["products", "apps", "environments"])
def test_objects_of_another_workspace_are_refused(workspace, other_workspace, field):
    foreign = {
        "products": lambda: ProductFactory(workspace=other_workspace),
        "apps": lambda: AppFactory(workspace=other_workspace),
        "environments": lambda: other_workspace.environments.first(),
    }[field]()
    with pytest.raises(ValidationError) as excinfo:
        make(workspace, **{field: [foreign]})
    assert "of this workspace" in errors_of(excinfo)[field][0]
    assert not Token.objects.exists()
    token = make(workspace)
    with pytest.raises(ValidationError):
        token.update(**{field: [foreign]})
    assert foreign not in getattr(token, field).all()


def test_editing_scope_and_environments_is_recorded_by_name(workspace, catalog):
    token = make(workspace)
    changed = token.update(products=[catalog["payments"]], environments=[catalog["sandbox"]])
    assert changed == ["products", "environments"]
    assert list(token.products.all()) == [catalog["payments"]]
    assert list(token.environments.all()) == [catalog["sandbox"]]


# --- revoke and delete --------------------------------------------------------------------


def test_revoke_is_final(workspace):
    user = UserFactory()
    token = make(workspace)
    token.revoke(by=user)
    assert (token.status, token.revoked_by, token.display_status) == (
        TokenStatus.REVOKED,
        user,
        "Revoked",
    )
    assert token.revoked_at is not None
    with pytest.raises(ValidationError, match="revoked tokens cannot be edited"):
        token.update(description="changed")
    with pytest.raises(ValidationError, match="revoked tokens cannot be edited"):
        token.set_value("a-new-value")
    with pytest.raises(ValidationError, match="already revoked"):
        token.revoke(by=user)
    assert token.unusable_reason(UseContext(workspace.environments.first())) == "token revoked"
    assert list(Token.objects.for_workspace(workspace)) == [token]  # still listed
    assert not Token.objects.active().exists()


def test_a_revoked_token_can_be_deleted(workspace):
    token = make(workspace)
    token.revoke()
    token.delete_token()
    assert not Token.objects.exists()


def test_delete_removes_the_token_and_its_ciphertext(workspace):
    token = make(workspace, value="to-be-deleted-value")
    ciphertext = bytes(token.ciphertext)
    token.delete_token(by=UserFactory())
    assert not Token.objects.filter(pk=token.pk).exists()
    assert not [t for t in Token.objects.all() if bytes(t.ciphertext) == ciphertext]
    with pytest.raises(ValidationError, match="already deleted"):
        token.delete_token()


def test_an_edit_does_not_overwrite_what_changed_since_the_token_was_loaded(workspace):
    stale = make(workspace)
    used_at = timezone.now()
    Token.objects.filter(pk=stale.pk).update(last_used_at=used_at, description="set elsewhere")
    stale.update(type=TokenType.BEARER_TOKEN)
    fresh = Token.objects.get(pk=stale.pk)
    assert (fresh.last_used_at, fresh.description, fresh.type) == (
        used_at,
        "set elsewhere",
        TokenType.BEARER_TOKEN,
    )


# --- audit trail --------------------------------------------------------------------------


def test_every_change_is_audited_with_actor_workspace_key_and_time(workspace):
    user = UserFactory(username="alice")
    token = make(workspace, key="AUDITED", by=user)
    token.update(description="why", period_days=30, by=user)
    token.update(key="RENAMED", by=user)
    token.set_value("another-value", by=user)
    token.revoke(by=user)
    token.delete_token(by=user)
    events = list(AuditEvent.objects.order_by("created_at", "id"))
    assert [(e.action, e.token_key, e.actor, e.actor_name, e.workspace) for e in events] == [
        (AuditAction.CREATED, "AUDITED", user, "alice", workspace),
        (AuditAction.UPDATED, "AUDITED", user, "alice", workspace),
        (AuditAction.UPDATED, "RENAMED", user, "alice", workspace),
        (AuditAction.UPDATED, "RENAMED", user, "alice", workspace),
        (AuditAction.REVOKED, "RENAMED", user, "alice", workspace),
        (AuditAction.DELETED, "RENAMED", user, "alice", workspace),
    ]
    assert [e.detail for e in events] == [
        {},
        {"changed": ["description", "period_days"]},
        {"changed": ["key"], "previous_key": "AUDITED"},
        {"changed": ["value"]},
        {},
        {},
    ]
    assert all(e.created_at <= timezone.now() for e in events)


def test_an_edit_that_changes_nothing_records_nothing(workspace):
    token = make(workspace, description="same")
    assert token.update(description="same", key="API_KEY") == []
    assert AuditEvent.objects.filter(action=AuditAction.UPDATED).count() == 0


def test_a_rejected_change_changes_nothing_and_records_nothing(workspace):
    token = make(workspace, description="before")
    snapshot = model_to_dict(Token.objects.get(pk=token.pk))
    with pytest.raises(ValidationError):
        token.update(description="after", key="bad key", value="new-value")
    assert model_to_dict(Token.objects.get(pk=token.pk)) == snapshot
    assert token.description == "before"
    assert AuditEvent.objects.count() == 1  # the creation only


def test_no_value_hint_or_ciphertext_ever_goes_into_the_audit_trail(workspace):
    # Tails that no id, date or word in the trail can contain (the hints are the last four).
    values = ["first-audited-value-Qz7x", "second-audited-value-Wv9k"]
    token = make(workspace, value=values[0])
    hints = [token.value_hint]
    ciphertexts = [bytes(token.ciphertext)]
    token.update(value=values[1], description="d", by=UserFactory())
    hints.append(token.value_hint)
    ciphertexts.append(bytes(token.ciphertext))
    token.revoke()
    token.delete_token()
    events = [model_to_dict(e) | {"str": str(e)} for e in AuditEvent.objects.all()]
    dump = json.dumps(events, default=str)
    assert AuditEvent.objects.count() == 4
    for secret in values + hints + [c.hex() for c in ciphertexts]:
        assert secret not in dump
    for ciphertext in ciphertexts:
        assert ciphertext[:16].hex() not in dump


def test_a_workspace_data_key_is_made_once_and_only_wrapped(workspace):
    make(workspace, key="ONE")
    make(workspace, key="TWO")
    record = WorkspaceKey.objects.get(workspace=workspace)
    assert record.kek_id == "test1"
    assert len(bytes(record.wrapped_dek)) == 12 + 32 + 16  # nonce + wrapped 256-bit key + tag


# --- properties ---------------------------------------------------------------------------

# The workspace fixture is shared by all examples; each example rolls its own work back.
FIXTURES_OK = [HealthCheck.function_scoped_fixture]
KEY_SHAPES = st.text(max_size=140) | st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,135}\Z")


@given(key=KEY_SHAPES)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_key_is_stored_exactly_when_it_follows_the_grammar_else_explained(workspace, key):
    valid = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) is not None and len(key) <= 128
    with transaction.atomic():
        try:
            token = make(workspace, key=key)
        except ValidationError as error:
            assert not valid
            assert error.message_dict["key"][0]
        else:
            assert valid
            assert Token.objects.get(pk=token.pk).key == key
        transaction.set_rollback(True)


@given(value=st.text(max_size=400))
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_text_value_comes_back_byte_for_byte_or_is_refused(workspace, value):
    with transaction.atomic():
        try:
            token = make(workspace, value=value)
        except ValidationError as error:
            assert value == ""
            assert error.message_dict["value"] == ["Enter the token value."]
        else:
            assert Token.objects.get(pk=token.pk).reveal().encode() == value.encode()
        transaction.set_rollback(True)


def test_expiry_state_and_the_querysets_say_the_same(workspace):
    """The table's badges (expiry_state) and its status filter (the queryset) agree on every
    token, including the edges: exactly now, exactly EXPIRING_SOON_DAYS ahead, revoked."""
    now = timezone.now()
    moments = {
        "NEVER": None,
        "GONE": now - dt.timedelta(days=1),
        "JUST_NOW": now,
        "IN_AN_HOUR": now + dt.timedelta(hours=1),
        "AT_THE_EDGE": now + dt.timedelta(days=EXPIRING_SOON_DAYS),
        "PAST_THE_EDGE": now + dt.timedelta(days=EXPIRING_SOON_DAYS, seconds=1),
        "REVOKED_SOON": now + dt.timedelta(days=2),
    }
    for key, moment in moments.items():
        token = make(workspace, key=key)
        Token.objects.filter(pk=token.pk).update(expires_at=moment)
    Token.objects.get(key="REVOKED_SOON").revoke()
    tokens = Token.objects.for_workspace(workspace)
    states = {token.key: token.expiry_state(now) for token in tokens}
    assert states == {
        "NEVER": ExpiryState.NONE,
        "GONE": ExpiryState.EXPIRED,
        "JUST_NOW": ExpiryState.EXPIRED,
        "IN_AN_HOUR": ExpiryState.SOON,
        "AT_THE_EDGE": ExpiryState.SOON,
        "PAST_THE_EDGE": ExpiryState.NONE,
        "REVOKED_SOON": ExpiryState.NONE,
    }
    expected = {state: {k for k, s in states.items() if s is state} for state in ExpiryState}
    assert {t.key for t in tokens.expired(now)} == expected[ExpiryState.EXPIRED]
    assert {t.key for t in tokens.expiring(now)} == expected[ExpiryState.SOON]
    assert {t.key for t in tokens.revoked()} == {"REVOKED_SOON"}
    labels = {token.key: token.status_label(now) for token in tokens}
    assert labels["GONE"] == labels["JUST_NOW"] == "Expired"
    assert labels["REVOKED_SOON"] == "Revoked"
    assert labels["IN_AN_HOUR"] == "Active"
