"""The Workload identities tab (`identities:list`, `:create`, `:delete`): who sees it, who
changes it, sudo mode, presets, refusals, deletion."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from identities.models import WorkloadIdentity
from tests.factories import make_workload_identity
from tests.helpers import HTMX, age_authentication, text, triggers

pytestmark = pytest.mark.django_db
GITHUB = "https://token.actions.githubusercontent.com"


def identity_url(name: str, workspace, identity=None) -> str:
    args = [workspace.slug] + ([identity.pk] if identity is not None else [])
    return reverse(f"identities:{name}", args=args)


def form_data(workspace, **overrides) -> dict:
    data = {
        "name": "gh-deploy",
        "description": "",
        "issuer": GITHUB,
        "audience": "https://coffer.example",
        "conditions": "repository = acme/app\nref = refs/heads/main",
        "environment": workspace.environments.get(slug="production").pk,
        "product": "",
        "app": "",
        "expiry": "never",
        "expiry_date": "",
        "allowed_addresses": "",
    }
    return data | overrides


def test_the_tab_sits_beside_access_keys(workspace, viewer_client):
    page = text(viewer_client.get(identity_url("list", workspace)))
    assert 'aria-current="page" href="/w/acme/tokens/workload-identities/"' in page
    assert 'href="/w/acme/tokens/access-keys/"' in page


def test_viewers_see_the_list_without_actions(workspace, viewer_client):
    make_workload_identity(workspace, issuer=GITHUB)
    page = text(viewer_client.get(identity_url("list", workspace)))
    assert "gh-deploy" in page and "repository = acme/app" in page
    assert "Add workload identity" not in page and "Delete gh-deploy" not in page


def test_owner_sees_actions_and_the_exchange_url(workspace, owner_client):
    make_workload_identity(workspace, issuer=GITHUB)
    page = text(owner_client.get(identity_url("list", workspace)))
    assert "Add workload identity" in page and 'aria-label="Delete gh-deploy"' in page
    assert "http://testserver/api/v1/auth/oidc" in page


def test_other_workspace_gets_404(workspace, outsider_client):
    assert outsider_client.get(identity_url("list", workspace)).status_code == 404


def test_other_workspaces_identities_are_not_listed(workspace, other_workspace, owner_client):
    make_workload_identity(other_workspace, issuer=GITHUB, name="globex-secret-job")
    assert "globex-secret-job" not in text(owner_client.get(identity_url("list", workspace)))


def test_query_count_does_not_grow_with_identities(
    workspace, owner_client, django_assert_max_num_queries
):
    counts = []
    for total in (1, 20):
        for n in range(WorkloadIdentity.objects.count(), total):
            make_workload_identity(workspace, issuer=GITHUB, name=f"id-{n}")
        with django_assert_max_num_queries(8) as queries:
            owner_client.get(identity_url("list", workspace))
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_owner_adds_an_identity(workspace, owner_client):
    response = owner_client.post(
        identity_url("create", workspace), form_data(workspace), headers=HTMX
    )
    assert response.status_code == 204
    assert "identitiesChanged" in triggers(response)
    identity = WorkloadIdentity.objects.get(workspace=workspace)
    assert identity.reference == "acme/gh-deploy"
    assert identity.conditions == [
        {"claim": "repository", "pattern": "acme/app"},
        {"claim": "ref", "pattern": "refs/heads/main"},
    ]
    assert identity.expires_at is None and identity.created_by == owner_client.user
    event = AuditEvent.objects.get(action=AuditAction.WORKLOAD_IDENTITY_CREATED)
    assert event.actor == owner_client.user and event.subject == "gh-deploy"


def test_adding_asks_for_the_password_again_after_the_window(workspace, owner_client):
    age_authentication(owner_client, 3600)
    response = owner_client.post(identity_url("create", workspace), form_data(workspace))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("reauthenticate"))
    assert not WorkloadIdentity.objects.exists()


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_only_owners_add_or_delete(workspace, role_client, role):
    identity = make_workload_identity(workspace, issuer=GITHUB)
    client = role_client[role]
    assert (
        client.post(identity_url("create", workspace), form_data(workspace, name="x")).status_code
        == 403
    )
    response = client.post(
        identity_url("delete", workspace, identity), {"confirm_name": "gh-deploy"}
    )
    assert response.status_code == 403
    assert WorkloadIdentity.objects.count() == 1


def test_presets_fill_in_the_issuer_and_the_usual_claims(workspace, owner_client):
    github = text(owner_client.get(identity_url("create", workspace) + "?preset=github"))
    assert f'value="{GITHUB}"' in github
    for claim in (
        "repository = my-org/my-repo",
        "ref = refs/heads/main",
        "environment = production",
    ):
        assert claim in github
    gitlab = text(owner_client.get(identity_url("create", workspace) + "?preset=gitlab"))
    assert 'value="https://gitlab.com"' in gitlab and "project_path = my-group/my-project" in gitlab


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"issuer": "http://token.example.com"}, "must start with https://"),
        ({"issuer": GITHUB + "/"}, "no query, fragment or trailing slash"),
        ({"conditions": "repository acme/app"}, "claim = pattern"),
        ({"conditions": "repository = *"}, "not only wildcards"),
        ({"conditions": "bad claim! = x"}, "A claim name is 1-64 letters"),
        ({"name": "a/b"}, "without “/”"),
        ({"allowed_addresses": "10.0.0.300"}, "is not an IPv4 or IPv6 address"),
    ],
)
def test_bad_input_is_refused_with_a_message(workspace, owner_client, overrides, message):
    response = owner_client.post(
        identity_url("create", workspace), form_data(workspace, **overrides), headers=HTMX
    )
    assert response.status_code == 200
    assert message in text(response)
    assert not WorkloadIdentity.objects.exists()


def test_a_plain_http_issuer_needs_the_development_setting(workspace, owner_client, settings):
    data = form_data(workspace, issuer="http://127.0.0.1:8999")
    owner_client.post(identity_url("create", workspace), data, headers=HTMX)
    assert not WorkloadIdentity.objects.exists()
    settings.COFFER_OIDC_ALLOW_INSECURE_ISSUERS = True
    owner_client.post(identity_url("create", workspace), data, headers=HTMX)
    assert WorkloadIdentity.objects.get().issuer == "http://127.0.0.1:8999"


def test_a_duplicate_name_is_refused(workspace, owner_client):
    make_workload_identity(workspace, issuer=GITHUB)
    response = owner_client.post(
        identity_url("create", workspace), form_data(workspace), headers=HTMX
    )
    assert "already exists in this workspace" in text(response)


def test_delete_needs_the_typed_name_then_deletes(workspace, owner_client):
    identity = make_workload_identity(workspace, issuer=GITHUB)
    url = identity_url("delete", workspace, identity)
    refused = owner_client.post(url, {"confirm_name": "nope"}, headers=HTMX)
    assert "Type the name exactly as shown" in text(refused)
    assert WorkloadIdentity.objects.exists()

    response = owner_client.post(url, {"confirm_name": "gh-deploy"}, headers=HTMX)
    assert response.status_code == 204 and "identitiesChanged" in triggers(response)
    assert not WorkloadIdentity.objects.exists()
    event = AuditEvent.objects.get(action=AuditAction.WORKLOAD_IDENTITY_DELETED)
    assert event.actor == owner_client.user


def test_an_environment_with_an_identity_cannot_be_deleted(workspace):
    make_workload_identity(workspace, issuer=GITHUB)
    production = workspace.environments.get(slug="production")
    assert "used by 1 workload identity (gh-deploy)" in production.deletion_blocker()
