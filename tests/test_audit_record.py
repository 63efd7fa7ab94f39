"""The one way to write an audit event: `AuditEvent.record` and `record_many`, each sending
`event_recorded` once per event inside the caller's transaction."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from audit.models import AuditAction, AuditEvent
from audit.signals import event_recorded
from notifications.models import WebhookDelivery
from tests.factories import TokenFactory, UserFactory, make_webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard():
    calls: list[tuple[AuditEvent, object]] = []

    def receiver(sender, *, event, token, **kwargs):
        assert sender is AuditEvent
        calls.append((event, token))

    event_recorded.connect(receiver, dispatch_uid="test-heard")
    yield calls
    event_recorded.disconnect(dispatch_uid="test-heard")


def test_record_writes_the_row_and_sends_the_signal_with_its_token(workspace, heard):
    token = TokenFactory(workspace=workspace, key="DB_URL")
    heard.clear()  # the factory's own creation event
    user = UserFactory(username="olivia")

    event = AuditEvent.record(workspace, AuditAction.REVOKED, by=user, token=token)

    assert AuditEvent.objects.get(pk=event.pk).token_key == "DB_URL"
    assert event.actor_name == "olivia" and event.token == token
    assert heard == [(event, token)]


def test_a_deletion_points_at_no_token_but_the_signal_still_names_it(workspace, heard):
    token = TokenFactory(workspace=workspace, key="DB_URL")
    heard.clear()

    event = AuditEvent.record(workspace, AuditAction.DELETED, token=token)

    assert event.token is None and event.token_key == "DB_URL"
    assert heard == [(event, token)]


def test_record_many_is_one_insert_and_one_signal_per_event_in_order(
    workspace, heard, django_assert_num_queries
):
    events = [
        AuditEvent.build(workspace, AuditAction.RESOLVED, actor_name=f"ci-{n}", detail={"n": n})
        for n in range(25)
    ]
    with django_assert_num_queries(1):
        saved = AuditEvent.record_many(events)

    assert [e.actor_name for e, _token in heard] == [f"ci-{n}" for n in range(25)]
    assert all(e.pk for e in saved)
    assert AuditEvent.objects.filter(action=AuditAction.RESOLVED).count() == 25


def test_record_many_of_nothing_writes_and_sends_nothing(heard, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert AuditEvent.record_many([]) == []
    assert heard == []


def test_record_many_refuses_a_saved_event(workspace):
    event = AuditEvent.record(workspace, AuditAction.KEY_ROTATED)
    with pytest.raises(ValueError, match="new events only"):
        AuditEvent.record_many([event])


def test_a_receiver_that_fails_rolls_the_change_back(workspace):
    def refuse(sender, **kwargs):
        raise RuntimeError("listener down")

    event_recorded.connect(refuse, dispatch_uid="test-refuse")
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            AuditEvent.record(workspace, AuditAction.KEY_ROTATED)
    finally:
        event_recorded.disconnect(dispatch_uid="test-refuse")
    assert not AuditEvent.objects.exists()


def test_build_keeps_the_trail_defaults(workspace):
    unsaved_user = UserFactory.build(username="ghost")
    event = AuditEvent.build(workspace, AuditAction.KEY_ROTATED, by=unsaved_user)
    assert event.pk is None and event.actor is None and event.actor_name == "system"
    assert event.detail == {} and event.created_at is not None


def test_webhooks_hear_of_events_written_in_bulk(workspace):
    tokens = [TokenFactory(workspace=workspace, key=f"K{n}") for n in range(3)]
    make_webhook(workspace)

    AuditEvent.record_many(
        AuditEvent.build(workspace, AuditAction.REVOKED, token=t) for t in tokens
    )

    bodies = [json.loads(d.body) for d in WebhookDelivery.objects.order_by("created_at", "id")]
    assert [(b["type"], b["token"]["key"]) for b in bodies] == [
        ("token.revoked", "K0"),
        ("token.revoked", "K1"),
        ("token.revoked", "K2"),
    ]
