"""Each audit event reads as one sentence, and its details as labelled lines: never `None`,
never a machine name, never a value (audit/wording.py)."""

from __future__ import annotations

import pytest

from audit.models import AuditAction, AuditEvent
from audit.wording import CatalogNames, detail_lines, sentence
from tests.helpers import event_sentences, text, url

pytestmark = pytest.mark.django_db

NAMES = CatalogNames(
    environment={"production": "Production"}, product={"payments": "Payments"}, app={}
)
API = {"access_key": "ci-deploy", "identifier": "cfr_AbCd…", "client_address": "10.0.0.7"}
KEY_ACTOR = "access key ci-deploy (cfr_AbCd…)"

# (action, actor name, token key, detail, the sentence)
CASES = [
    (AuditAction.CREATED, "olivia", "DB_URL", {}, "olivia created DB_URL"),
    (
        AuditAction.UPDATED,
        "olivia",
        "DB_URL",
        {"changed": ["value"]},
        "olivia changed the value of DB_URL",
    ),
    (
        AuditAction.UPDATED,
        "olivia",
        "DB_URL",
        {"changed": ["key", "description"], "previous_key": "DB_URI"},
        "olivia renamed DB_URI to DB_URL and changed its description",
    ),
    (AuditAction.UPDATED, "olivia", "DB_URL", {}, "olivia edited DB_URL"),
    (AuditAction.REVOKED, "olivia", "DB_URL", {}, "olivia revoked DB_URL"),
    (AuditAction.DELETED, "olivia", "DB_URL", {}, "olivia deleted DB_URL"),
    (
        AuditAction.RESOLVED,
        KEY_ACTOR,
        "",
        {
            **API,
            "keys": ["PROD_DB_PASSWORD"],
            "environment": "production",
            "product": None,
            "app": None,
            "source": "<values>",
        },
        "ci-deploy resolved PROD_DB_PASSWORD in Production from 10.0.0.7",
    ),
    (
        AuditAction.RESOLVED,
        "deployer",
        "",
        {
            "keys": ["A", "B", "C", "D", "E"],
            "environment": "staging",
            "product": "payments",
            "source": "deploy.yaml",
        },
        "deployer resolved A, B, C and 2 more in staging for Payments",
    ),
    (
        AuditAction.VERSION_RESTORED,
        "olivia",
        "DB_URL",
        {"restored_version": 1, "new_version": 3},
        "olivia restored version 2 of DB_URL",
    ),
    (
        AuditAction.VERSION_DESTROYED,
        "olivia",
        "DB_URL",
        {"destroyed_version": 0},
        "olivia destroyed version 1 of DB_URL",
    ),
    (
        AuditAction.KEY_ROTATED,
        "system",
        "",
        {"from_master_key": "k1", "to_master_key": "k2"},
        "system rotated the master key from k1 to k2",
    ),
    (
        AuditAction.MEMBER_ADDED,
        "olivia",
        "",
        {"member": "zed", "role": "viewer"},
        "olivia added zed as Viewer",
    ),
    (
        AuditAction.MEMBER_ROLE_CHANGED,
        "olivia",
        "",
        {"member": "zed", "from": "viewer", "to": "editor"},
        "olivia changed the role of zed from Viewer to Editor",
    ),
    (AuditAction.MEMBER_REMOVED, "olivia", "", {"member": "zed"}, "olivia removed zed"),
    (
        AuditAction.MEMBER_INVITED,
        "olivia",
        "",
        {"email": "z@example.com", "role": "editor"},
        "olivia invited z@example.com as Editor",
    ),
    (
        AuditAction.INVITATION_ACCEPTED,
        "zed",
        "",
        {"member": "zed", "role": "editor"},
        "zed accepted an invitation as Editor",
    ),
    (
        AuditAction.INVITATION_REVOKED,
        "olivia",
        "",
        {"email": "z@example.com", "role": "editor"},
        "olivia revoked the invitation of z@example.com",
    ),
    (AuditAction.MEMBER_LEFT, "zed", "", {"member": "zed"}, "zed left the workspace"),
    (
        AuditAction.PRODUCT_CREATED,
        "olivia",
        "",
        {"name": "Payments", "slug": "payments"},
        "olivia added the product Payments",
    ),
    (
        AuditAction.APP_RENAMED,
        "olivia",
        "",
        {"name": "Pay", "renamed": ["Checkout", "Pay"]},
        "olivia renamed the app “Checkout” to “Pay”",
    ),
    (
        AuditAction.ENVIRONMENT_RENAMED,
        "olivia",
        "",
        {"name": "QA", "slug_changed": ["qa", "q"]},
        "olivia changed the slug of the environment QA from qa to q",
    ),
    (
        AuditAction.ENVIRONMENT_DELETED,
        "olivia",
        "",
        {"name": "QA", "slug": "qa"},
        "olivia deleted the environment QA",
    ),
    (
        AuditAction.WORKSPACE_CREATED,
        "olivia",
        "",
        {"name": "Acme", "slug": "acme"},
        "olivia created the workspace Acme",
    ),
    (
        AuditAction.WORKSPACE_RENAMED,
        "olivia",
        "",
        {"renamed": ["Acme", "Acme Inc"]},
        "olivia renamed the workspace “Acme” to “Acme Inc”",
    ),
    (
        AuditAction.TWO_FACTOR_REQUIREMENT_CHANGED,
        "olivia",
        "",
        {"required": True},
        "olivia required two-factor authentication",
    ),
    (
        AuditAction.SSO_REQUIREMENT_CHANGED,
        "olivia",
        "",
        {"required": False},
        "olivia made single sign-on optional",
    ),
    (
        AuditAction.ACCESS_KEY_CREATED,
        "olivia",
        "",
        {"access_key": "ci-deploy"},
        "olivia created the access key ci-deploy",
    ),
    (
        AuditAction.ACCESS_KEY_REVOKED,
        "olivia",
        "",
        {"access_key": "ci-deploy"},
        "olivia revoked the access key ci-deploy",
    ),
    (
        AuditAction.ACCESS_KEY_DELETED,
        "olivia",
        "",
        {"access_key": "ci-deploy"},
        "olivia deleted the access key ci-deploy",
    ),
    (
        AuditAction.ACCESS_KEY_CHECKED,
        KEY_ACTOR,
        "",
        {**API, "environment": "production"},
        "ci-deploy checked references in Production from 10.0.0.7",
    ),
    (
        AuditAction.ACCESS_KEY_CALL_FAILED,
        KEY_ACTOR,
        "",
        {**API, "reason": "output too large"},
        "ci-deploy made an API call that failed from 10.0.0.7: output too large",
    ),
    (
        AuditAction.WORKLOAD_IDENTITY_CREATED,
        "olivia",
        "",
        {"workload_identity": "gh"},
        "olivia added the workload identity gh",
    ),
    (
        AuditAction.WORKLOAD_IDENTITY_DELETED,
        "olivia",
        "",
        {"workload_identity": "gh"},
        "olivia deleted the workload identity gh",
    ),
    (
        AuditAction.WORKLOAD_IDENTITY_EXCHANGED,
        "workload identity gh",
        "",
        {"workload_identity": "gh", "client_address": "10.0.0.9", "environment": "production"},
        "workload identity gh signed in in Production from 10.0.0.9",
    ),
    (
        AuditAction.ACTIVITY_EXPORTED,
        "olivia",
        "",
        {"format": "csv", "events": 1},
        "olivia exported 1 event as CSV",
    ),
]


def event(workspace, action, actor, key, detail) -> AuditEvent:
    return AuditEvent(
        workspace=workspace, action=action, actor_name=actor, token_key=key, detail=detail
    )


@pytest.mark.parametrize(("action", "actor", "key", "detail", "said"), CASES)
def test_each_event_reads_as_a_sentence(workspace, action, actor, key, detail, said):
    assert sentence(event(workspace, action, actor, key, detail), NAMES) == said


def test_every_action_has_its_own_sentence():
    phrased = {case[0] for case in CASES}
    assert {str(a) for a in AuditAction} - {str(a) for a in phrased} <= {
        "product.renamed",
        "product.deleted",
        "app.created",
        "app.deleted",
        "environment.created",
    }  # the catalog's other changes share one phrase with those tested


@pytest.mark.parametrize(("action", "actor", "key", "detail", "said"), CASES)
def test_details_never_say_none_nor_a_machine_name(workspace, action, actor, key, detail, said):
    lines = detail_lines(event(workspace, action, actor, key, detail), NAMES)
    shown = " ".join(f"{line.label} {line.text} {' '.join(line.keys)}" for line in lines)
    assert "None" not in shown and "<values>" not in shown
    assert shown.startswith("When ") and "Action " in shown


def test_an_unknown_action_still_reads(workspace):
    old = event(workspace, "token.archived", "olivia", "DB_URL", {})
    assert sentence(old) == "olivia did “token.archived” on DB_URL"


def test_the_page_shows_the_sentence_and_its_details_with_names(workspace, owner_client):
    AuditEvent.record(
        workspace,
        AuditAction.RESOLVED,
        actor_name=KEY_ACTOR,
        detail={
            **API,
            "keys": ["PROD_DB_PASSWORD"],
            "references": 2,
            "environment": "production",
            "product": None,
            "app": None,
            "source": "<values>",
        },
    )

    page = text(owner_client.get(url("audit:activity", workspace)))

    assert event_sentences(page) == [
        "ci-deploy resolved PROD_DB_PASSWORD in Production from 10.0.0.7"
    ]
    assert '<code class="event-key" title="PROD_DB_PASSWORD">PROD_DB_PASSWORD</code>' in page
    assert "<dt>Recorded as</dt><dd>access key ci-deploy (cfr_AbCd…)</dd>" in page
    assert "<dt>Source</dt><dd>API values request</dd>" in page
    assert "<dt>Environment</dt><dd>Production</dd>" in page
    assert "None" not in page[page.index('id="activity-list"') :]
    assert "<dt>Product</dt>" not in page and "<dt>App</dt>" not in page, "empty: left out"
