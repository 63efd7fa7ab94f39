"""The Tokens page's search and filters when the query string is not valid.

A search or filter the page cannot apply (too long, a NUL byte, an unknown type, status or
environment) is never silently dropped: the table says which one was not applied and what it
shows instead (the tokens matching the remaining filters, or all of them).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import TokenFactory
from tokens.models import TokenType
from tokens.table import SEARCH_MAX_LENGTH, TokenFilterForm

SHOWING_ALL = "Showing all tokens."
SHOWING_OTHERS = "Showing the tokens that match the other filters."


@pytest.fixture
def tokens(workspace):
    return [
        TokenFactory(workspace=workspace, key="STRIPE_SECRET", type=TokenType.API_KEY),
        TokenFactory(workspace=workspace, key="GITHUB_BEARER", type=TokenType.BEARER_TOKEN),
    ]


def tokens_page(client, workspace, htmx: bool = False, **query):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.get(reverse("tokens:list", args=[workspace.slug]), query, headers=headers)


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "fragment"])
def test_a_search_over_the_limit_says_it_was_not_applied(workspace, owner_client, tokens, htmx):
    response = tokens_page(owner_client, workspace, htmx, q="STRIPE" + "x" * SEARCH_MAX_LENGTH)
    page = response.content.decode()
    assert response.status_code == 200
    assert f"The search is longer than {SEARCH_MAX_LENGTH} characters, so it was not" in page
    assert SHOWING_ALL in page
    assert "STRIPE_SECRET" in page and "GITHUB_BEARER" in page


def test_a_search_at_the_limit_is_applied_without_a_message(workspace, owner_client, tokens):
    query = "STRIPE".ljust(SEARCH_MAX_LENGTH, "_")
    page = tokens_page(owner_client, workspace, q=query).content.decode()
    assert "was not applied" not in page
    assert "No tokens match" in page


def test_a_search_with_a_nul_byte_says_it_was_not_applied(workspace, owner_client, tokens):
    response = tokens_page(owner_client, workspace, htmx=True, q="STRIPE\x00")
    page = response.content.decode()
    assert response.status_code == 200
    assert "The search contains a NUL character, so it was not applied" in page
    assert SHOWING_ALL in page


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("type", "That type does not exist"),
        ("status", "That status does not exist"),
        ("env", "That environment is not in this workspace"),
    ],
)
def test_an_unknown_filter_value_says_it_was_not_applied(
    workspace, owner_client, tokens, name, message
):
    page = tokens_page(owner_client, workspace, **{name: "mars"}).content.decode()
    assert f"{message}, so it was not applied: choose one from the list." in page
    assert SHOWING_ALL in page


def test_the_valid_filters_still_apply_beside_a_bad_one(workspace, owner_client, tokens):
    page = tokens_page(owner_client, workspace, q="STRIPE", status="weird").content.decode()
    assert "That status does not exist" in page
    assert SHOWING_OTHERS in page
    assert "STRIPE_SECRET" in page
    assert "GITHUB_BEARER" not in page


def test_valid_filters_show_no_message(workspace, owner_client, tokens):
    page = tokens_page(
        owner_client, workspace, q="GITHUB", type="bearer_token", status="active", env="production"
    ).content.decode()
    assert "not applied" not in page
    assert "GITHUB_BEARER" in page


def test_a_bad_sort_or_page_size_falls_back_quietly(workspace, owner_client, tokens):
    page = tokens_page(owner_client, workspace, sort="price", per_page="7").content.decode()
    assert "not applied" not in page
    assert "STRIPE_SECRET" in page


def test_every_bad_filter_is_named_once(workspace):
    filters = TokenFilterForm(
        {"q": "\x00" * 300, "type": "nope", "status": "weird", "env": "mars"}, workspace=workspace
    )
    problems = filters.problems
    assert len(problems) == 4
    assert problems[0].startswith("The search")
    assert not filters.is_filtered


def test_the_message_costs_no_extra_query(
    workspace, owner_client, tokens, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):  # the other tokens of the keys shown; pending usage?
        tokens_page(owner_client, workspace, q="x" * 500, type="nope")
