"""The cap on distinct source names in a token's usage: past COFFER_USAGE_SOURCES names for one
token in one context (environment, product, app, who), a new name is counted under "(other)",
so a caller inventing names (an access key sending `?source=<random>` on every call) cannot grow
the usage table without bound. Names already recorded keep counting as themselves."""

from __future__ import annotations

import pytest

from tests.api_helpers import api_setup, post_resolve
from tests.factories import AppFactory, TokenFactory
from tokens.models import TokenUsage, UseContext
from tokens.references.resolve import resolve_text
from tokens.usage import OTHER_SOURCES

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def three_sources(settings):
    settings.COFFER_USAGE_SOURCES = 3


@pytest.fixture
def production(workspace):
    return workspace.environments.get(slug="production")


@pytest.fixture
def token(workspace):
    return TokenFactory(workspace=workspace, key="DB_PASSWORD")


def resolve(context: UseContext, source: str, actor: str = "ci") -> None:
    resolve_text("$Secret{DB_PASSWORD}", context, source=source, actor=actor)


def sources(token) -> dict[str, int]:
    return dict(token.usages.values_list("source", "use_count"))


def test_past_the_cap_new_sources_count_as_other(token, production):
    context = UseContext(production)
    for n in range(6):
        resolve(context, f"job-{n}.yaml")
    assert sources(token) == {
        "job-0.yaml": 1,
        "job-1.yaml": 1,
        "job-2.yaml": 1,
        OTHER_SOURCES: 3,
    }
    other = token.usages.get(source=OTHER_SOURCES)
    assert other.label == "Production · ci · other sources"


def test_known_sources_keep_counting_as_themselves(token, production):
    context = UseContext(production)
    for n in range(4):
        resolve(context, f"job-{n}.yaml")
    resolve(context, "job-1.yaml")
    resolve(context, "job-9.yaml")
    assert sources(token) == {"job-0.yaml": 1, "job-1.yaml": 2, "job-2.yaml": 1, OTHER_SOURCES: 2}


def test_the_cap_is_per_context_and_per_token(workspace, token, production):
    TokenFactory(workspace=workspace, key="OTHER_TOKEN")
    checkout = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    for n in range(3):
        resolve(UseContext(production), f"job-{n}.yaml")
    resolve(UseContext(production, app=checkout), "job-new.yaml")
    resolve(UseContext(production), "job-new.yaml", actor="someone-else")
    resolve_text("$Secret{OTHER_TOKEN}", UseContext(production), source="job-new.yaml", actor="ci")
    assert TokenUsage.objects.filter(source=OTHER_SOURCES).count() == 0
    assert TokenUsage.objects.filter(source="job-new.yaml").count() == 3


def test_the_table_stays_small_when_an_access_key_invents_names(client, workspace, settings):
    settings.COFFER_USAGE_SOURCES = 5
    setup = api_setup(workspace)
    for n in range(25):
        response = post_resolve(client, setup.key, "$Secret{DB_URL}", f"?source=random-{n}")
        assert response.status_code == 200
    rows = TokenUsage.objects.filter(token__key="DB_URL")
    assert rows.count() == 6
    assert rows.get(source=OTHER_SOURCES).use_count == 20
    assert sum(rows.values_list("use_count", flat=True)) == 25, "every use is still counted"


def test_the_default_cap_is_100():
    from config import settings as project_settings

    assert project_settings.COFFER_USAGE_SOURCES == 100
