"""The Django admin for tokens (tokens/admin.py): useful, write-only for values, same rules."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from tests.factories import ProductFactory
from tokens.models import Token, TokenStatus, TokenType

VALUE = "admin-test-secret-value-7f3a9c"
PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n"
    "-----END PRIVATE KEY-----\n"
)


def make(workspace, key="API_KEY", value=VALUE, **kwargs) -> Token:
    kwargs.setdefault("environments", list(workspace.environments.all()))
    return Token.objects.create_token(workspace=workspace, key=key, value=value, **kwargs)


def admin_user():
    return get_user_model().objects.get(username="admin")


def changelist_url(**query: str) -> str:
    url = reverse("admin:tokens_token_changelist")
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def change_url(token: Token) -> str:
    return reverse("admin:tokens_token_change", args=[token.pk])


def form_data(token: Token, **changes) -> dict:
    data = {
        "key": token.key,
        "description": token.description,
        "type": token.type,
        "expiry_date": token.expiry_date.isoformat() if token.expiry_date else "",
        "period_days": token.period_days or "",
        "products": [p.pk for p in token.products.all()],
        "apps": [a.pk for a in token.apps.all()],
        "environments": [e.pk for e in token.environments.all()],
        "new_value": "",
        "_save": "Save",
    }
    return data | changes


def add_data(into, **changes) -> dict:
    data = {
        "workspace": into.pk,
        "key": "NEW_TOKEN",
        "new_value": VALUE,
        "description": "made in the admin",
        "type": TokenType.BEARER_TOKEN,
        "expiry_date": "",
        "period_days": "30",
        "products": [],
        "apps": [],
        "environments": [e.pk for e in into.environments.all()],
        "_save": "Save",
    }
    return data | changes


def assert_no_secret(response, *secrets: str) -> None:
    content = response.content.decode()
    for secret in secrets:
        assert secret not in content


# --- list ---------------------------------------------------------------------------------


def test_list_shows_key_workspace_type_status_expiry_and_last_used(
    admin_client, workspace, other_workspace
):
    day = timezone.now().date() + dt.timedelta(days=10)
    make(workspace, key="STRIPE_KEY", type=TokenType.API_KEY, expiry_date=day)
    revoked = make(other_workspace, key="OLD_TOKEN", value="old-token-secret-value-123")
    revoked.revoke()
    response = admin_client.get(changelist_url())
    assert response.status_code == 200
    content = response.content.decode()
    for text in ["STRIPE_KEY", "Acme", "API Key", "Active", "OLD_TOKEN", "Globex", "Revoked"]:
        assert text in content
    for column in ["Token Key", "Workspace", "Type", "Status", "Expires", "Last used"]:
        assert f">{column}<" in content or f">{column}</a>" in content
    assert_no_secret(response, VALUE, "old-token-secret-value-123")


def test_list_needs_a_constant_number_of_queries(
    admin_client, workspace, other_workspace, django_assert_max_num_queries
):
    for number in range(40):
        make(workspace if number % 2 else other_workspace, key=f"KEY_{number}")
    with django_assert_max_num_queries(12):
        response = admin_client.get(changelist_url())
    assert response.content.decode().count('class="action-select"') == 40


def test_list_search_and_filters(admin_client, workspace, other_workspace):
    make(workspace, key="STRIPE_KEY", type=TokenType.API_KEY)
    make(other_workspace, key="GITHUB_TOKEN", type=TokenType.OAUTH_TOKEN)
    revoked = make(workspace, key="REVOKED_ONE", type=TokenType.CREDENTIAL)
    revoked.revoke()
    expired = make(workspace, key="EXPIRED_ONE", period_days=1)
    Token.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(hours=1))

    def keys(**query: str) -> set[str]:
        content = admin_client.get(changelist_url(**query)).content.decode()
        found = {"STRIPE_KEY", "GITHUB_TOKEN", "REVOKED_ONE", "EXPIRED_ONE"}
        return {key for key in found if f">{key}</a>" in content}

    assert keys(q="stripe") == {"STRIPE_KEY"}
    assert keys(q="globex") == {"GITHUB_TOKEN"}
    assert keys(workspace__id__exact=str(other_workspace.pk)) == {"GITHUB_TOKEN"}
    assert keys(type__exact="oauth_token") == {"GITHUB_TOKEN"}
    assert keys(status="active") == {"STRIPE_KEY", "GITHUB_TOKEN"}
    assert keys(status="expired") == {"EXPIRED_ONE"}
    assert keys(status="revoked") == {"REVOKED_ONE"}


# --- change page --------------------------------------------------------------------------


def test_change_page_shows_a_hint_but_never_the_value_or_ciphertext(admin_client, workspace):
    token = make(workspace)
    response = admin_client.get(change_url(token))
    assert response.status_code == 200
    content = response.content.decode()
    assert f"Hidden (hint ••••{VALUE[-4:]}, version 1, set " in content
    assert '<textarea name="new_value"' in content
    textarea = content.split('<textarea name="new_value"')[1].split("</textarea>")[0]
    assert textarea.split(">", 1)[1].strip() == ""  # renders empty
    ciphertext = bytes(token.ciphertext)
    assert_no_secret(response, VALUE, ciphertext.hex(), ciphertext[:12].hex())
    assert 'name="workspace"' not in content  # a token never moves to another workspace


def test_setting_a_new_value_goes_through_the_model(admin_client, workspace):
    token = make(workspace)
    new_value = "replacement-secret-value-0042"
    response = admin_client.post(change_url(token), form_data(token, new_value=new_value))
    assert response.status_code == 302
    token.refresh_from_db()
    assert (token.reveal(), token.value_version) == (new_value, 1)
    event = AuditEvent.objects.get(action=AuditAction.UPDATED)
    assert (event.detail, event.actor) == ({"changed": ["value"]}, admin_user())
    assert_no_secret(admin_client.get(response.url), new_value, VALUE)


def test_a_blank_new_value_keeps_the_value(admin_client, workspace):
    token = make(workspace)
    response = admin_client.post(change_url(token), form_data(token, description="described"))
    assert response.status_code == 302
    token.refresh_from_db()
    assert (token.reveal(), token.value_version, token.description) == (VALUE, 0, "described")
    assert AuditEvent.objects.get(action=AuditAction.UPDATED).detail == {"changed": ["description"]}


def test_a_multi_line_key_pasted_in_the_admin_is_kept_with_its_line_breaks(admin_client, workspace):
    token = make(workspace)
    browser_sent = PEM.replace("\n", "\r\n")  # what a browser submits for a textarea
    admin_client.post(change_url(token), form_data(token, new_value=browser_sent))
    assert Token.objects.get(pk=token.pk).reveal().encode() == PEM.encode()


@pytest.mark.parametrize(
    ("changes", "field_error"),
    [
        ({"key": "OTHER"}, "OTHER is already valid in Production and Sandbox (every product"),
        ({"key": "bad key"}, "A Token Key starts with a letter or underscore"),
        ({"environments": []}, "Choose at least one environment."),
        ({"period_days": "3651"}, "The Period is a whole number of days, 1 to 3650."),
        ({"expiry_date": "2000-01-01"}, "The Expiry Date must be in the future"),
        ({"new_value": "x" * 65_537}, "the limit is 64 KiB (65,536 bytes)"),
    ],
)
def test_rule_errors_show_in_the_form_and_change_nothing(
    admin_client, workspace, changes, field_error
):
    make(workspace, key="OTHER")
    token = make(workspace)
    response = admin_client.post(change_url(token), form_data(token, **changes))
    assert response.status_code == 200
    assert field_error in response.content.decode()
    token.refresh_from_db()
    assert (token.key, token.value_version, token.environments.count()) == ("API_KEY", 0, 2)
    assert not AuditEvent.objects.filter(action=AuditAction.UPDATED).exists()
    assert_no_secret(response, VALUE, "x" * 100)


def test_a_scope_of_another_workspace_is_refused_in_the_admin(
    admin_client, workspace, other_workspace
):
    token = make(workspace)
    foreign = ProductFactory(workspace=other_workspace)
    response = admin_client.post(change_url(token), form_data(token, products=[foreign.pk]))
    assert response.status_code == 200
    assert not token.products.exists()


def test_a_key_may_have_a_token_per_environment_in_the_admin(admin_client, workspace):
    sandbox = workspace.environments.get(slug="sandbox")
    make(workspace, key="SHARED", environments=[workspace.environments.get(slug="production")])
    token = make(workspace, environments=[sandbox])
    response = admin_client.post(change_url(token), form_data(token, key="SHARED"))
    assert response.status_code == 302
    assert Token.objects.filter(key="SHARED").count() == 2


# --- add ----------------------------------------------------------------------------------


def test_adding_a_token_goes_through_create_token(admin_client, workspace):
    response = admin_client.post(reverse("admin:tokens_token_add"), add_data(workspace))
    assert response.status_code == 302
    token = Token.objects.get(key="NEW_TOKEN")
    assert (token.reveal(), token.type, token.period_days) == (VALUE, "bearer_token", 30)
    assert token.expires_at == token.value_set_at + dt.timedelta(days=30)
    assert token.environments.count() == 2
    event = AuditEvent.objects.get()
    assert (event.action, event.actor, event.token_key) == (
        AuditAction.CREATED,
        admin_user(),
        "NEW_TOKEN",
    )
    assert_no_secret(admin_client.get(response.url), VALUE)


def test_add_page_never_echoes_the_value_after_an_error(admin_client, workspace):
    make(workspace, key="NEW_TOKEN", value="existing-secret-value")
    response = admin_client.post(reverse("admin:tokens_token_add"), add_data(workspace))
    assert response.status_code == 200
    assert "NEW_TOKEN is already valid in Production and Sandbox" in response.content.decode()
    assert_no_secret(response, VALUE, "existing-secret-value")
    assert Token.objects.count() == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"new_value": ""}, "Enter the token value."),
        ({"workspace": ""}, "This field is required."),
        ({"environments": []}, "Choose at least one environment."),
    ],
)
def test_add_errors_show_in_the_form(admin_client, workspace, changes, message):
    response = admin_client.post(reverse("admin:tokens_token_add"), add_data(workspace, **changes))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Token.objects.exists()


def test_adding_with_environments_of_another_workspace_is_refused(
    admin_client, workspace, other_workspace
):
    foreign = [e.pk for e in other_workspace.environments.all()]
    response = admin_client.post(
        reverse("admin:tokens_token_add"), add_data(workspace, environments=foreign)
    )
    assert response.status_code == 200
    assert "Choose environments of this workspace." in response.content.decode()
    assert not Token.objects.exists()


# --- revoke and delete --------------------------------------------------------------------


def test_revoke_action_revokes_through_the_model(admin_client, workspace):
    one, two = make(workspace, key="ONE"), make(workspace, key="TWO")
    untouched = make(workspace, key="THREE")
    response = admin_client.post(
        changelist_url(),
        {"action": "revoke_selected", ACTION_CHECKBOX_NAME: [one.pk, two.pk]},
        follow=True,
    )
    assert "Revoked 2 token(s): ONE, TWO." in response.content.decode()
    statuses = dict(Token.objects.values_list("key", "status"))
    assert statuses == {"ONE": "revoked", "TWO": "revoked", "THREE": "active"}
    events = AuditEvent.objects.filter(action=AuditAction.REVOKED)
    assert {(e.token_key, e.actor) for e in events} == {
        ("ONE", admin_user()),
        ("TWO", admin_user()),
    }
    assert untouched.status == TokenStatus.ACTIVE


def test_revoking_an_already_revoked_token_says_so(admin_client, workspace):
    token = make(workspace, key="ONCE")
    token.revoke()
    response = admin_client.post(
        changelist_url(),
        {"action": "revoke_selected", ACTION_CHECKBOX_NAME: [token.pk]},
        follow=True,
    )
    assert "Already revoked, left as they were: ONCE." in response.content.decode()
    assert AuditEvent.objects.filter(action=AuditAction.REVOKED).count() == 1


def test_a_revoked_token_is_read_only_in_the_admin_but_can_be_deleted(admin_client, workspace):
    token = make(workspace)
    token.revoke()
    page = admin_client.get(change_url(token))
    assert page.status_code == 200
    assert 'name="new_value"' not in page.content.decode()
    assert 'name="key"' not in page.content.decode()
    refused = admin_client.post(change_url(token), form_data(token, description="changed"))
    assert refused.status_code == 403
    deleted = admin_client.post(
        reverse("admin:tokens_token_delete", args=[token.pk]), {"post": "yes"}
    )
    assert deleted.status_code == 302
    assert not Token.objects.exists()


def test_deleting_in_the_admin_goes_through_delete_token(admin_client, workspace):
    one, two, three = (make(workspace, key=k) for k in ["ONE", "TWO", "THREE"])
    admin_client.post(reverse("admin:tokens_token_delete", args=[one.pk]), {"post": "yes"})
    admin_client.post(
        changelist_url(),
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [two.pk, three.pk], "post": "yes"},
    )
    assert not Token.objects.exists()
    events = AuditEvent.objects.filter(action=AuditAction.DELETED)
    assert {(e.token_key, e.actor) for e in events} == {
        (key, admin_user()) for key in ["ONE", "TWO", "THREE"]
    }


# --- the audit trail ----------------------------------------------------------------------


def test_audit_trail_is_listed_and_read_only(admin_client, workspace):
    token = make(workspace, key="AUDITED")
    token.update(description="new", by=admin_user())
    event = AuditEvent.objects.filter(action=AuditAction.UPDATED).get()
    listing = admin_client.get(reverse("admin:audit_auditevent_changelist"))
    assert listing.status_code == 200
    assert "AUDITED" in listing.content.decode()
    assert ">description<" in listing.content.decode()
    assert 'value="delete_selected"' not in listing.content.decode()
    assert_no_secret(listing, VALUE, f"••••{VALUE[-4:]}")
    assert admin_client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    view = admin_client.get(reverse("admin:audit_auditevent_change", args=[event.pk]))
    assert view.status_code == 200
    assert 'name="token_key"' not in view.content.decode()
    assert 'name="_save"' not in view.content.decode()
    assert (
        admin_client.post(
            reverse("admin:audit_auditevent_change", args=[event.pk]), {"token_key": "X"}
        ).status_code
        == 403
    )
    delete_url = reverse("admin:audit_auditevent_delete", args=[event.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk, token_key="AUDITED").exists()


def test_error_reports_would_hide_the_new_value(admin_client, workspace):
    response = admin_client.post(reverse("admin:tokens_token_add"), add_data(workspace))
    assert response.wsgi_request.sensitive_post_parameters == ("new_value",)
