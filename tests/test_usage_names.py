"""Where usage or activity shows the source of a use, it reads as a person would say it: "API
values request", "API resolve request", "resolve of deploy.yaml"; never `<values>`,
`<request>`, `<stdin>` or `<string>` (issue: usage names)."""

from __future__ import annotations

import pytest
from django.template import Context, Template

from audit.models import source_label
from tests.api_helpers import api_setup, get_values, post_resolve
from tests.helpers import event_sentences, text, url
from tokens.models import Token, TokenUsage

pytestmark = pytest.mark.django_db

MACHINE_NAMES = ("<values>", "<request>", "<stdin>", "<string>")


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("<values>", "API values request"),
        ("<request>", "API resolve request"),
        ("<stdin>", "resolve of standard input"),
        ("<string>", "resolve of a text"),
        ("deploy.yaml", "resolve of deploy.yaml"),
        ("config/app.env", "resolve of config/app.env"),
        ("", ""),
        (None, ""),
    ],
)
def test_a_source_reads_as_a_person_would_say_it(source, said):
    assert source_label(source) == said
    rendered = Template("{% load audit_extras %}{{ source|source_label }}").render(
        Context({"source": source})
    )
    assert rendered == said


def machine_names_in(page: str) -> list[str]:
    escaped = [name.replace("<", "&lt;").replace(">", "&gt;") for name in MACHINE_NAMES]
    return [name for name in (*MACHINE_NAMES, *escaped) if name in page]


def test_the_token_page_and_activity_name_api_uses_in_words(client, owner_client, workspace):
    setup = api_setup(workspace)
    assert get_values(client, setup.key, "?keys=DB_URL").status_code == 200
    assert post_resolve(client, setup.key, "$Secret{DB_URL}").status_code == 200
    assert (
        post_resolve(client, setup.key, "$Secret{DB_URL}", "?source=deploy.yaml").status_code == 200
    )
    assert {u.source for u in TokenUsage.objects.all()} == {"<values>", "<request>", "deploy.yaml"}

    token_page = text(owner_client.get(url("detail", workspace, Token.objects.get(key="DB_URL"))))
    activity = text(owner_client.get(url("audit:activity", workspace)))

    for said in ("API values request", "API resolve request", "resolve of deploy.yaml"):
        assert said in token_page, f"usage: {said}"
        assert f"<dt>Source</dt><dd>{said}</dd>" in activity, f"activity: {said}"
    assert machine_names_in(token_page) == []
    assert machine_names_in(activity) == []
    assert (
        event_sentences(activity)[0]
        == "deploy resolved DB_URL in Production for Payments / Checkout from 127.0.0.1"
    )


def test_a_command_resolve_is_named_by_its_file(workspace, owner_client, tmp_path):
    from tests.factories import TokenFactory
    from tokens.models import UseContext
    from tokens.references.resolve import resolve_text

    token = TokenFactory(workspace=workspace, key="DB_PASSWORD")
    production = workspace.environments.get(slug="production")
    resolve_text("$Secret{DB_PASSWORD}", UseContext(production), source="deploy.yaml", actor="ci")
    resolve_text("$Secret{DB_PASSWORD}", UseContext(production), actor="ci")  # no source given

    page = text(owner_client.get(url("detail", workspace, token)))

    assert "Production · ci · resolve of deploy.yaml" in page
    assert "Production · ci · resolve of a text" in page
    assert machine_names_in(page) == []
