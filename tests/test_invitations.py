"""Invitations (accounts/): owners invite by email and role; the link works once, for 7 days;
a person without an account signs up from it, a signed-in person accepts. Nobody joins without
accepting, and no page tells whether an account exists for an address."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation
from audit.models import AuditAction, AuditEvent
from tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory
from tests.helpers import HTMX, invitation_link, text, triggers
from workspaces.models import Membership, Role

pytestmark = pytest.mark.django_db

INVITE = reverse("invitation_create", args=["acme"])
ACCEPT = reverse("invitation_accept")
NEW_PASSWORD = "a-long-unusual-passphrase-42"


def invite(client, email="newbie@example.com", role="editor", headers=None):
    return client.post(INVITE, {"email": email, "role": role}, headers=headers or {})


def key_of(link: str) -> str:
    return link.rstrip("/").rsplit("/", 1)[1]


def sign_up(client, link, username="newbie", password=NEW_PASSWORD, again=None):
    client.get(link)
    return client.post(
        ACCEPT, {"username": username, "password1": password, "password2": again or password}
    )


# --- inviting -------------------------------------------------------------------------------


def test_invite_form_asks_for_email_and_role(owner_client, workspace):
    html = text(owner_client.get(INVITE, headers=HTMX))

    assert "Invite member" in html and "<html" not in html
    assert ">Email<" in html and ">Role<" in html


def test_owner_invites_and_sees_the_link_once_and_it_is_mailed(owner_client, workspace, mailoutbox):
    response = invite(owner_client, headers=HTMX)

    html = text(response)
    assert response.status_code == 200
    assert "Invitation sent to newbie@example.com" in html
    (message,) = mailoutbox
    assert message.to == ["newbie@example.com"]
    assert "olivia invited you to Acme" in message.subject
    link = invitation_link(message)
    assert f"http://testserver{link}" in html, "shown once to copy"
    invitation = Invitation.objects.get()
    assert invitation.role == Role.EDITOR and invitation.is_pending
    assert invitation.key_hash == hashlib.sha256(key_of(link).encode()).hexdigest()
    assert key_of(link) not in str(Invitation.objects.values().get()), "only a hash is stored"
    page = text(owner_client.get(reverse("members", args=["acme"])))
    assert "Pending invitations" in page and "newbie@example.com" in page
    assert key_of(link) not in page, "not on the page after its one display"


def test_inviting_says_nothing_about_existing_accounts(owner_client, workspace, mailoutbox):
    UserFactory(username="known", email="known@example.com")

    known = text(invite(owner_client, email="known@example.com", headers=HTMX))
    unknown = text(invite(owner_client, email="nobody@example.com", headers=HTMX))

    assert "Invitation sent to known@example.com" in known
    assert "Invitation sent to nobody@example.com" in unknown
    assert "known" not in roles(workspace), "nobody joins without accepting"


def roles(workspace) -> dict[str, str]:
    return dict(workspace.memberships.values_list("user__username", "role"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-address", "role": "viewer"}, "Enter a valid email address."),
        ({"email": "", "role": "viewer"}, "This field is required."),
        ({"email": "a@example.com", "role": "god"}, "Select a valid choice."),
    ],
)
def test_a_bad_invitation_is_refused_with_a_message(owner_client, workspace, data, message):
    response = owner_client.post(INVITE, data, headers=HTMX)

    assert response.status_code == 200 and message in text(response)
    assert not Invitation.objects.exists()


def test_a_members_address_or_a_pending_one_is_refused(owner_client, workspace):
    MembershipFactory(workspace=workspace, user__username="zed", role=Role.VIEWER)
    invite(owner_client, email="new@example.com")

    member = text(invite(owner_client, email="ZED@example.com", headers=HTMX))
    pending = text(invite(owner_client, email="new@example.com", headers=HTMX))

    assert "A member of Acme already uses this address." in member
    assert "This address has a pending invitation. Resend it from the list instead." in pending
    assert Invitation.objects.count() == 1


@pytest.mark.parametrize("member", ["editor_client", "viewer_client"])
def test_only_owners_invite(request, member, workspace):
    client = request.getfixturevalue(member)

    assert client.get(INVITE).status_code == 403
    assert invite(client).status_code == 403
    assert not Invitation.objects.exists()


def test_invitations_are_isolated_per_workspace(owner_client, workspace, other_workspace):
    theirs, _ = Invitation.create(
        other_workspace, email="x@example.com", role="viewer", by=UserFactory()
    )
    for name in ("invitation_resend", "invitation_revoke"):
        url = reverse(name, args=["acme", theirs.pk])
        assert owner_client.get(url).status_code == 404
        assert owner_client.post(url).status_code == 404
    assert "x@example.com" not in text(owner_client.get(reverse("members", args=["acme"])))
    assert Invitation.objects.get().is_pending


# --- accepting ----------------------------------------------------------------------------------


def test_a_newcomer_signs_up_from_the_link_and_joins_with_the_role(
    owner_client, workspace, mailoutbox
):
    invite(owner_client)
    link = invitation_link(mailoutbox[0])
    newcomer = Client()

    opened = newcomer.get(link)
    assert opened.status_code == 302 and opened["Location"] == ACCEPT, "the key leaves the URL"
    page = text(newcomer.get(ACCEPT))
    assert "Join Acme" in page and "newbie@example.com" in page and "Editor" in page
    assert key_of(link) not in page
    response = newcomer.post(
        ACCEPT, {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("tokens:list", args=["acme"])
    assert roles(workspace)["newbie"] == Role.EDITOR
    landed = text(newcomer.get(response["Location"]))
    assert "Welcome to Acme. You joined as Editor." in landed
    user = Membership.objects.get(user__username="newbie").user
    assert user.email == "newbie@example.com" and user.check_password(NEW_PASSWORD)
    assert Invitation.objects.get().accepted_by == user


def test_the_key_is_never_kept_in_a_session(owner_client, workspace, mailoutbox):
    from django.contrib.sessions.models import Session

    invite(owner_client)
    link = invitation_link(mailoutbox[0])
    sign_up(Client(), link, again=None, password="short")  # refused: the link still pending

    for session in Session.objects.all():
        assert key_of(link) not in str(session.get_decoded())


def test_a_signed_in_person_accepts(owner_client, workspace, mailoutbox, outsider_client):
    invite(owner_client, email="mallory@example.com", role="viewer")
    outsider_client.get(invitation_link(mailoutbox[0]))

    page = text(outsider_client.get(ACCEPT))
    response = outsider_client.post(ACCEPT)

    assert "Accept invitation" in page and "mallory" in page
    assert response.status_code == 302
    assert roles(workspace)["mallory"] == Role.VIEWER


def test_a_link_works_once(owner_client, workspace, mailoutbox):
    invite(owner_client)
    link = invitation_link(mailoutbox[0])
    sign_up(Client(), link)

    again = Client()
    again.get(link)
    page = text(again.get(ACCEPT))
    response = sign_up(again, link, username="second")

    assert "This invitation has already been used." in page
    assert "This invitation has already been used." in text(response)
    assert "second" not in roles(workspace)


def test_an_expired_link_says_so(owner_client, workspace, mailoutbox):
    invite(owner_client)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    client = Client()

    response = sign_up(client, invitation_link(mailoutbox[0]))

    assert "This invitation has expired." in text(response)
    assert "newbie" not in roles(workspace)


def test_links_last_seven_days(owner_client, workspace):
    invite(owner_client)
    invitation = Invitation.objects.get()

    assert invitation.expires_at - invitation.sent_at == timedelta(days=7)


def test_a_revoked_link_says_so(owner_client, workspace, mailoutbox):
    invite(owner_client)
    invitation = Invitation.objects.get()
    response = owner_client.post(
        reverse("invitation_revoke", args=["acme", invitation.pk]), headers=HTMX
    )
    assert response.status_code == 204
    assert triggers(response)["showToast"]["message"] == (
        "Invitation to newbie@example.com revoked."
    )

    page = text(sign_up(Client(), invitation_link(mailoutbox[0])))

    assert "This invitation was revoked" in page
    assert "newbie" not in roles(workspace)
    assert "Pending invitations" not in text(owner_client.get(reverse("members", args=["acme"])))


def test_resending_mails_a_new_link_and_the_old_one_stops(owner_client, workspace, mailoutbox):
    invite(owner_client)
    invitation = Invitation.objects.get()
    response = owner_client.post(
        reverse("invitation_resend", args=["acme", invitation.pk]), headers=HTMX
    )
    assert "Invitation resent to newbie@example.com" in text(response)
    old, new = (invitation_link(m) for m in mailoutbox)
    assert old != new

    old_client = Client()
    assert "not valid" in text(old_client.get(old))
    assert old_client.get(ACCEPT).status_code == 404, "the old link opened nothing"
    assert sign_up(Client(), new).status_code == 302
    assert roles(workspace)["newbie"] == Role.EDITOR


@pytest.mark.parametrize("key", ["nonsense", "x" * 43, "a" * 200])
def test_an_unknown_link_says_so(key, db):
    response = Client().get(reverse("invitation_open", args=[key]))

    assert response.status_code == 200, "not a 4xx: Django would log the path, a near-key"
    assert "This invitation link is not valid." in text(response)


def test_the_accept_page_without_a_link_says_what_to_do(db):
    response = Client().get(ACCEPT)

    assert response.status_code == 404
    assert "Open the invitation link from your mail" in text(response)


@pytest.mark.parametrize(
    ("username", "password", "again", "message"),
    [
        ("olivia", NEW_PASSWORD, None, "That username is taken. Choose another."),
        ("new bie", NEW_PASSWORD, None, "Enter a valid username."),
        ("newbie", "short", None, "This password is too short."),
        ("newbie", NEW_PASSWORD, "something-else-entirely", "The two passwords differ."),
        ("", NEW_PASSWORD, None, "This field is required."),
    ],
)
def test_a_bad_sign_up_is_refused_and_the_link_still_works(
    owner_client, workspace, mailoutbox, username, password, again, message
):
    invite(owner_client)
    client = Client()
    response = sign_up(client, invitation_link(mailoutbox[0]), username, password, again)

    assert response.status_code == 200 and message in text(response)
    assert Invitation.objects.get().is_pending
    ok = client.post(
        ACCEPT, {"username": "fresh", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert ok.status_code == 302 and roles(workspace)["fresh"] == Role.EDITOR


def test_a_member_already_in_the_workspace_is_told(owner_client, workspace, mailoutbox):
    MembershipFactory(workspace=workspace, user__username="zed", role=Role.VIEWER)
    invite(owner_client, email="zeds-other-address@example.com")  # the link reached zed
    zed = Client()
    zed.post(reverse("login"), {"username": "zed", "password": DEFAULT_PASSWORD})
    zed.get(invitation_link(mailoutbox[0]))

    response = zed.post(ACCEPT)

    assert "You are already a member of Acme." in text(response)
    assert roles(workspace)["zed"] == Role.VIEWER, "an invitation never changes a role"


def test_invitations_are_audited(owner_client, workspace, mailoutbox):
    invite(owner_client)
    first = Invitation.objects.get()
    owner_client.post(reverse("invitation_revoke", args=["acme", first.pk]))
    invite(owner_client, email="other@example.com", role="viewer")
    sign_up(Client(), invitation_link(mailoutbox[-1]), username="other")

    actions = list(
        AuditEvent.objects.filter(workspace=workspace)
        .order_by("id")
        .values_list("action", "actor_name")
    )
    assert actions == [
        (AuditAction.MEMBER_INVITED, "olivia"),
        (AuditAction.INVITATION_REVOKED, "olivia"),
        (AuditAction.MEMBER_INVITED, "olivia"),
        (AuditAction.INVITATION_ACCEPTED, "other"),
    ]
    for message in mailoutbox:
        key = key_of(invitation_link(message))
        assert not AuditEvent.objects.filter(detail__icontains=key).exists()


def test_open_sign_up_is_off_by_default(db, settings):
    assert settings.COFFER_OPEN_SIGNUP is False
    response = Client().get(reverse("account_signup"))
    assert "Sign-up is closed" in text(response) or "Sign Up Closed" in text(response)


def test_the_members_page_lists_pending_invitations_in_few_queries(
    owner_client, workspace, django_assert_max_num_queries
):
    for n in range(5):
        Invitation.create(workspace, email=f"p{n}@example.com", role="viewer", by=UserFactory())

    with django_assert_max_num_queries(12):
        page = text(owner_client.get(reverse("members", args=["acme"])))
    assert page.count("Resend the invitation to") == 5


def test_open_sign_up_works_when_turned_on(db, settings):
    settings.COFFER_OPEN_SIGNUP = True
    client = Client()
    assert "Create a Coffer account" in text(client.get(reverse("account_signup")))
    assert "Sign up" in text(client.get(reverse("login")))

    response = client.post(
        reverse("account_signup"),
        {
            "username": "solo",
            "email": "solo@example.com",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
        },
    )

    assert response.status_code == 302
    user = UserFactory._meta.model.objects.get(username="solo")
    assert user.email == "solo@example.com" and not user.memberships.exists()
