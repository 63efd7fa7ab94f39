"""The Activity tab: the whole workspace's trail, filtered by kind in the URL."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.factories import AuditEventFactory, MembershipFactory, UserFactory
from tests.helpers import event_sentences, invitation_link

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
KINDS = {
    "tokens": ("OLD_TOKEN", AuditAction.CREATED),
    "members": ("zed", AuditAction.MEMBER_ADDED),
    "catalog": ("Payments", AuditAction.PRODUCT_CREATED),
    "keys": ("", AuditAction.KEY_ROTATED),
    "access_keys": ("ci-deploy", AuditAction.ACCESS_KEY_CREATED),
}


def activity(client, **params):
    response = client.get(reverse("audit:activity", args=["acme"]), params)
    return response.status_code, response.content.decode()


@pytest.fixture
def mixed_trail(workspace):
    AuditEventFactory(workspace=workspace, token_key="OLD_TOKEN", actor_name="olivia")
    AuditEvent.record(
        workspace,
        AuditAction.MEMBER_ADDED,
        actor_name="olivia",
        detail={"member": "zed", "role": "viewer"},
    )
    AuditEvent.record(
        workspace,
        AuditAction.PRODUCT_CREATED,
        actor_name="olivia",
        detail={"name": "Payments", "slug": "payments"},
    )
    AuditEvent.record(
        workspace, AuditAction.KEY_ROTATED, actor_name="system", detail={"master_key": "k2"}
    )
    AuditEvent.record(
        workspace,
        AuditAction.ACCESS_KEY_CREATED,
        actor_name="olivia",
        detail={"access_key": "ci-deploy", "identifier": "cfr_AbCdEf…"},
    )


def test_member_and_catalog_changes_made_on_the_pages_show_in_activity(
    owner_client, workspace, mailoutbox
):
    zed_client = Client()
    zed_client.force_login(UserFactory(username="zed"))
    owner_client.post(
        reverse("invitation_create", args=["acme"]), {"email": "zed@example.com", "role": "viewer"}
    )
    zed_client.get(invitation_link(mailoutbox[-1]))
    zed_client.post(reverse("invitation_accept"))
    zed = workspace.memberships.get(user__username="zed")
    owner_client.post(reverse("member_edit", args=["acme", zed.pk]), {"role": "editor"})
    owner_client.post(reverse("catalog_add", args=["acme", "products"]), {"name": "Payments"})

    status, page = activity(owner_client)

    assert status == 200
    assert event_sentences(page)[:4] == [
        "olivia added the product Payments",
        "olivia changed the role of zed from Viewer to Editor",
        "zed accepted an invitation as Viewer",
        "olivia invited zed@example.com as Viewer",
    ]


def test_an_access_key_event_names_the_key(owner_client, mixed_trail):
    _status, page = activity(owner_client, kind="access_keys")

    assert event_sentences(page) == ["olivia created the access key ci-deploy"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_kind_filter_shows_only_that_kind(owner_client, mixed_trail, kind):
    status, page = activity(owner_client, kind=kind)

    assert status == 200
    shown = {k for k, (_subject, action) in KINDS.items() if AuditAction(action).label in page}
    assert shown == {kind}
    assert f'<option value="{kind}" selected>' in page


def test_every_kind_shows_without_a_filter(viewer_client, mixed_trail):
    _status, page = activity(viewer_client)

    for _subject, action in KINDS.values():
        assert AuditAction(action).label in page
    assert '<option value="" selected>All activity</option>' in page


@pytest.mark.parametrize("bad", ["everything", "<script>x</script>", "TOKENS", "x" * 5000])
def test_a_bad_kind_is_named_in_a_message_and_all_activity_shows(owner_client, mixed_trail, bad):
    status, page = activity(owner_client, kind=bad)

    assert status == 200
    assert (
        "is not a kind of activity (Tokens, Members, Catalog and settings, Key rotation, "
        "Access keys, Activity exports). Showing all activity." in page
    )
    assert "Showing all activity." in page
    assert "<script>x" not in page
    for _subject, action in KINDS.values():
        assert AuditAction(action).label in page


def test_the_filtered_fragment_keeps_the_kind_in_its_page_links(owner_client, workspace):
    AuditEvent.objects.bulk_create(
        AuditEvent(workspace=workspace, action=AuditAction.MEMBER_ADDED, detail={"member": f"m{n}"})
        for n in range(60)
    )
    AuditEventFactory(workspace=workspace, token_key="HIDDEN_TOKEN")

    response = owner_client.get(
        reverse("audit:activity", args=["acme"]), {"kind": "members"}, headers=HTMX
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="activity-list"')
    assert "1–50 of 60 events" in html
    assert "?kind=members&amp;page=2" in html
    assert "HIDDEN_TOKEN" not in html


def test_an_empty_filter_says_so_and_offers_all_activity(owner_client, workspace):
    AuditEventFactory(workspace=workspace)

    _status, page = activity(owner_client, kind="keys")

    assert "No matching activity" in page
    assert "Nothing matching “Key rotation” has happened in Acme." in page


def test_another_workspaces_events_never_show_whatever_the_filter(owner_client, other_workspace):
    AuditEvent.record(other_workspace, AuditAction.MEMBER_ADDED, detail={"member": "globex_person"})

    for kind in ("", "members"):
        _status, page = activity(owner_client, kind=kind)
        assert "globex_person" not in page


@pytest.mark.parametrize("kind", ["", "members", "catalog", "bogus"])
def test_activity_query_count_is_constant_with_any_filter(
    owner_client, workspace, kind, django_assert_max_num_queries
):
    members = [MembershipFactory(workspace=workspace, role="viewer") for _ in range(3)]
    AuditEvent.objects.bulk_create(
        AuditEvent(
            workspace=workspace,
            action=action,
            actor=members[n % 3].user,
            detail={"member": f"m{n}", "name": f"Item {n}"},
        )
        for n in range(300)
        for action in (
            AuditAction.MEMBER_ROLE_CHANGED,
            AuditAction.APP_RENAMED,
            AuditAction.UPDATED,
        )
    )

    # Session, user, membership, the Who choices, count, the page of events, the catalog's
    # names, the workspace switcher: the same for 900 events as for 9.
    with django_assert_max_num_queries(8):
        status, _page = activity(owner_client, kind=kind)
    assert status == 200


def test_two_tokens_of_one_key_are_named_by_their_environments(
    owner_client, workspace, django_assert_max_num_queries
):
    from tests.factories import TokenFactory

    production, sandbox = (workspace.environments.get(slug=s) for s in ("production", "sandbox"))
    live = TokenFactory(workspace=workspace, key="STRIPE_SECRET", environments=[production])
    test = TokenFactory(workspace=workspace, key="STRIPE_SECRET", environments=[sandbox])
    alone = TokenFactory(workspace=workspace, key="ALONE_TOKEN")
    for token in [live, test, alone] + [
        TokenFactory(workspace=workspace, key=f"MANY_{n}", environments=[sandbox])
        for n in range(30)
    ]:
        AuditEvent.record(workspace, AuditAction.REVOKED, by=None, token=token)

    # The environments of the page's tokens whose key is shared: one more query, however many.
    with django_assert_max_num_queries(9):
        status, page = activity(owner_client)
    assert status == 200
    sentences = event_sentences(page)
    assert "system revoked STRIPE_SECRET (Production)" in sentences
    assert "system revoked STRIPE_SECRET (Sandbox)" in sentences
    assert "system revoked ALONE_TOKEN" in sentences
