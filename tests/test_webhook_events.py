"""Which changes become webhook events, and what a payload holds: keys, ids, people, slugs;
never a value, hint, ciphertext or access key. Every event comes from the audit trail."""

from __future__ import annotations

import json

import pytest

from notifications.models import EventType, WebhookDelivery
from tests.factories import (
    ProductFactory,
    TokenFactory,
    UserFactory,
    make_access_key,
    make_webhook,
)
from tests.helpers import SECRET

pytestmark = pytest.mark.django_db

NEW_VALUE = "a-brand-new-secret-value-9f8e7d6c"


def events() -> list[dict]:
    return [json.loads(d.body) for d in WebhookDelivery.objects.order_by("created_at", "id")]


def test_each_token_change_is_one_event(workspace):
    make_webhook(workspace)
    alice = UserFactory(username="alice")
    token = TokenFactory(workspace=workspace, key="API_KEY", value=SECRET, by=alice)
    token.update(by=alice, description="now described")
    token.update(by=alice, value=NEW_VALUE)
    token.update(by=alice, value=SECRET + "x", key="API_KEY_2")
    token.revoke(by=alice)
    token.delete_token(by=alice)

    got = events()

    assert [e["type"] for e in got] == [
        "token.created",
        "token.updated",
        "token.value_changed",
        "token.updated",
        "token.value_changed",
        "token.revoked",
        "token.deleted",
    ]
    assert got[1]["changed"] == ["description"]
    assert got[3]["changed"] == ["key"] and got[3]["previous_key"] == "API_KEY"
    assert got[3]["token"]["key"] == "API_KEY_2"
    assert {e["actor"] for e in got} == {"alice"}
    assert {e["token"]["id"] for e in got} == {str(token.pk)}
    assert len({e["id"] for e in got}) == len(got), "each event has its own id"


def test_payloads_never_hold_a_value_hint_or_ciphertext(workspace):
    make_webhook(workspace)
    token = TokenFactory(workspace=workspace, key="API_KEY", value=SECRET)
    token.update(value=NEW_VALUE)
    token.revoke()
    bodies = "\n".join(WebhookDelivery.objects.values_list("body", flat=True))
    token.refresh_from_db()
    for needle in (SECRET, NEW_VALUE, token.value_hint, token.hint, bytes(token.ciphertext).hex()):
        assert needle not in bodies
    assert "API_KEY" in bodies, "control: the payloads were scanned"


def test_access_key_created_and_revoked(workspace):
    make_webhook(workspace)
    product = ProductFactory(workspace=workspace, slug="payments")
    key, secret = make_access_key(workspace, name="ci-deploy", product=product)
    key.revoke()
    got = events()
    assert [e["type"] for e in got] == ["access_key.created", "access_key.revoked"]
    assert got[0]["access_key"] == {"name": "ci-deploy", "identifier": key.identifier}
    assert got[0]["context"] == {"environment": "production", "product": "payments"}
    assert secret not in json.dumps(got)


def test_only_subscribed_active_webhooks_of_the_workspace_get_an_event(workspace, other_workspace):
    revokes, _ = make_webhook(workspace, events=[EventType.TOKEN_REVOKED])
    make_webhook(workspace, events=[EventType.TOKEN_CREATED], active=False)
    make_webhook(other_workspace)
    token = TokenFactory(workspace=workspace)
    token.revoke()
    assert list(WebhookDelivery.objects.values_list("webhook", "event_type")) == [
        (revokes.pk, "token.revoked")
    ]


def test_deliveries_are_enqueued_only_when_the_change_commits(
    workspace, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    make_webhook(workspace)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        TokenFactory(workspace=workspace)
        assert DBTaskResult.objects.count() == 0, "nothing is queued before the commit"
    # One enqueue (the change feed's marker, api/feed.py, is a no-op beside it).
    assert len([c for c in callbacks if not hasattr(c, "marker")]) == 1
    (task,) = DBTaskResult.objects.all()
    assert task.task_path == "notifications.tasks.deliver_webhook"
    assert task.args_kwargs["args"] == [str(WebhookDelivery.objects.get().pk)]


def test_an_event_costs_the_same_queries_for_one_webhook_or_five(workspace):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for webhooks in (1, 5):
        WebhookDelivery.objects.all().delete()
        while workspace.webhooks.count() < webhooks:
            make_webhook(workspace)
        token = TokenFactory(workspace=workspace)
        with CaptureQueriesContext(connection) as queries:
            token.revoke()
        counts.append(len(queries))
        assert WebhookDelivery.objects.filter(event_type="token.revoked").count() == webhooks
    assert counts[0] == counts[1]
