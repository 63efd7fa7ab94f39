"""The Tokens page's forms: the create/edit form, the typed delete confirmation, the filters."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from tests.factories import AppFactory, ProductFactory, TokenFactory, UserFactory, token_form_data
from tokens.forms import DeleteTokenForm, TokenForm
from tokens.models import VALUE_MAX_BYTES, Token, TokenType
from tokens.table import TokenFilterForm
from tokens.uploads import CappedUploadHandler

pytestmark = pytest.mark.django_db

SECRET = "form-test-secret-value-0123456789"


def data(workspace, **overrides) -> dict:
    return token_form_data(workspace, **({"value": SECRET} | overrides))


def tomorrow() -> dt.date:
    return timezone.now().date() + dt.timedelta(days=1)


def test_labels_are_the_product_documents(workspace):
    form = TokenForm(workspace=workspace)
    assert [form[name].label for name in form.fields] == [
        "Token Key",
        "Token Value",
        "Or load the value from a file",
        "Description",
        "Type",
        "Expiry Date",
        "Period",
        "Custom days",
        "Products",
        "Apps",
        "Environments",
    ]


def test_type_offers_the_four_document_types(workspace):
    labels = [label for _, label in TokenForm(workspace=workspace).fields["type"].choices]
    assert labels == ["Credential", "API Key", "Bearer Token", "OAuth Token"]


def test_period_offers_presets_and_custom(workspace):
    labels = [label for _, label in TokenForm(workspace=workspace).fields["period"].choices]
    assert labels == [
        "No period",
        "7 days",
        "30 days",
        "60 days",
        "90 days",
        "180 days",
        "365 days",
        "Custom",
    ]


def test_value_is_a_password_input_never_rendered_back(workspace):
    form = TokenForm(data(workspace, environments=[]), workspace=workspace)
    assert not form.is_valid()
    html = str(form["value"])
    assert 'type="password"' in html
    assert 'autocomplete="new-password"' in html
    assert SECRET not in form.as_div()


def test_valid_form_creates_the_token_through_the_model(workspace):
    user = UserFactory()
    product = ProductFactory(workspace=workspace)
    form = TokenForm(data(workspace, products=[product.pk]), workspace=workspace)
    assert form.is_valid(), form.errors
    token = form.save(by=user)
    assert token.key == "PAYMENT_API_KEY"
    assert token.reveal() == SECRET
    assert list(token.products.all()) == [product]
    assert token.created_by == user


def test_key_is_stripped_of_surrounding_spaces(workspace):
    form = TokenForm(data(workspace, key="  SPACED_KEY  "), workspace=workspace)
    assert form.is_valid(), form.errors
    assert form.save(by=None).key == "SPACED_KEY"


def test_value_is_required_on_create(workspace):
    form = TokenForm(data(workspace, value=""), workspace=workspace)
    assert not form.is_valid()
    assert form.errors["value"] == ["Enter the token value."]


def test_value_keeps_surrounding_whitespace(workspace):
    form = TokenForm(data(workspace, value="  padded value \n"), workspace=workspace)
    assert form.is_valid(), form.errors
    assert form.save(by=None).reveal() == "  padded value \n"


def test_an_environment_is_required(workspace):
    form = TokenForm(data(workspace, environments=[]), workspace=workspace)
    assert not form.is_valid()
    assert form.errors["environments"] == ["Choose at least one environment."]


def test_products_of_another_workspace_are_rejected(workspace, other_workspace):
    foreign = ProductFactory(workspace=other_workspace)
    form = TokenForm(data(workspace, products=[foreign.pk]), workspace=workspace)
    assert not form.is_valid()
    assert "products" in form.errors
    assert not Token.objects.exists()


@pytest.mark.parametrize(
    ("period", "custom", "expected"),
    [
        ("", "", None),
        ("30", "", 30),
        ("365", "", 365),
        ("custom", "45", 45),
        ("", "12", 12),  # without JavaScript both inputs show: a number alone is a period
        ("90", "90", 90),
    ],
)
def test_period_choices_become_days(workspace, period, custom, expected):
    form = TokenForm(data(workspace, period=period, period_custom=custom), workspace=workspace)
    assert form.is_valid(), form.errors
    assert form.save(by=None).period_days == expected


@pytest.mark.parametrize(
    ("period", "custom", "message"),
    [
        ("custom", "", "Enter the number of days for a Custom period."),
        ("30", "45", "Choose Custom in Period to use your own number of days, or clear this box."),
        ("custom", "0", "Ensure this value is greater than or equal to 1."),
        ("custom", "3651", "Ensure this value is less than or equal to 3650."),
        ("custom", "abc", "Enter a whole number."),
    ],
)
def test_bad_periods_are_explained(workspace, period, custom, message):
    form = TokenForm(data(workspace, period=period, period_custom=custom), workspace=workspace)
    assert not form.is_valid()
    assert form.errors["period_custom"] == [message]


def test_unknown_period_preset_is_rejected(workspace):
    form = TokenForm(data(workspace, period="14"), workspace=workspace)
    assert not form.is_valid()
    assert "period" in form.errors


def test_model_rules_are_checked_with_the_fields_so_every_problem_shows_at_once(workspace):
    TokenFactory(workspace=workspace, key="PAYMENT_API_KEY")
    yesterday = timezone.now().date() - dt.timedelta(days=1)
    form = TokenForm(
        data(workspace, key="9 lives", expiry_date=yesterday.isoformat(), environments=[]),
        workspace=workspace,
    )
    assert not form.is_valid()
    assert form.errors["key"][0].startswith("A Token Key starts with")
    assert "Expiry Date must be in the future" in form.errors["expiry_date"][0]
    assert form.errors["environments"] == ["Choose at least one environment."]


def test_key_grammar_is_the_models(workspace):
    form = TokenForm(data(workspace, key="9 lives"), workspace=workspace)
    assert not form.is_valid()
    assert form.errors["key"][0].startswith("A Token Key starts with a letter or underscore")


def test_a_rule_broken_between_validation_and_saving_comes_back_as_a_field_error(workspace):
    form = TokenForm(data(workspace), workspace=workspace)
    assert form.is_valid()
    TokenFactory(workspace=workspace, key="PAYMENT_API_KEY")  # someone else was quicker
    assert form.save(by=None) is None
    assert form.errors["environments"] == [
        "PAYMENT_API_KEY is already valid in Production and Sandbox (every product and app); "
        "choose other environments or narrow the scope."
    ]


def test_an_expired_tokens_old_expiry_date_does_not_block_other_edits(workspace):
    token = TokenFactory(workspace=workspace, key="OLD", expiry_date=tomorrow())
    Token.objects.filter(pk=token.pk).update(expiry_date=timezone.now().date())
    token.refresh_from_db()
    submitted = {**TokenForm.initial_from(token), "value": "", "description": "still editable"}
    submitted["environments"] = [env.pk for env in submitted["environments"]]
    submitted["expiry_date"] = token.expiry_date.isoformat()
    form = TokenForm(submitted, workspace=workspace, token=token)
    assert form.is_valid(), form.errors


def test_edit_form_is_prefilled_with_everything_but_the_value(workspace):
    product, app = ProductFactory(workspace=workspace), AppFactory(workspace=workspace)
    token = TokenFactory(
        workspace=workspace,
        key="OLD_KEY",
        value=SECRET,
        description="Something",
        type=TokenType.OAUTH_TOKEN,
        expiry_date=tomorrow(),
        period_days=45,
        products=[product],
        apps=[app],
    )
    form = TokenForm(workspace=workspace, token=token)
    assert form["key"].value() == "OLD_KEY"
    assert form["type"].value() == TokenType.OAUTH_TOKEN
    assert form["period"].value() == "custom"
    assert form["period_custom"].value() == 45
    assert form["expiry_date"].value() == tomorrow()
    assert form["products"].value() == [product.pk]
    assert not form.fields["value"].required
    assert SECRET not in form.as_div()
    assert "$Secret{OLD_KEY}" in form.fields["key"].help_text


def test_edit_with_blank_value_keeps_it(workspace):
    token = TokenFactory(workspace=workspace, key="KEEP", value=SECRET)
    initial = TokenForm.initial_from(token)
    submitted = data(workspace, **{**initial, "key": "KEEP", "value": "", "description": "New"})
    submitted["environments"] = [env.pk for env in initial["environments"]]
    form = TokenForm(submitted, workspace=workspace, token=token)
    assert form.is_valid(), form.errors
    form.save(by=None)
    token.refresh_from_db()
    assert token.description == "New"
    assert token.reveal() == SECRET
    assert form.changed == ["description"]


def test_edit_reports_a_key_change(workspace):
    token = TokenFactory(workspace=workspace, key="OLD_KEY")
    form = TokenForm(data(workspace, key="NEW_KEY"), workspace=workspace, token=token)
    assert form.key_changed
    assert not TokenForm(
        data(workspace, key="OLD_KEY"), workspace=workspace, token=token
    ).key_changed


def test_delete_confirmation_needs_the_exact_key(workspace):
    token = TokenFactory(workspace=workspace, key="DOOMED")
    assert DeleteTokenForm({"confirm_key": "DOOMED"}, token=token).is_valid()
    for typed in ("", "doomed", "DOOME", "OTHER"):
        form = DeleteTokenForm({"confirm_key": typed}, token=token)
        assert not form.is_valid()
        assert form.errors["confirm_key"] == [
            "Type the key exactly as shown (DOOMED) to delete it."
        ]
    assert 'data-confirm-match="DOOMED"' in str(DeleteTokenForm(token=token)["confirm_key"])


def test_filters_ignore_unknown_values(workspace):
    filters = TokenFilterForm(
        {"type": "nope", "status": "weird", "env": "mars", "sort": "price", "per_page": "7"},
        workspace=workspace,
    )
    assert filters.values == {}
    assert filters.sort_key == "key"
    assert filters.page_size == 25
    assert not filters.is_filtered


def test_filters_keep_valid_non_default_values_only(workspace):
    filters = TokenFilterForm(
        {"q": "pay", "type": "api_key", "env": "production", "sort": "-key", "per_page": "25"},
        workspace=workspace,
    )
    assert filters.values == {"q": "pay", "type": "api_key", "env": "production", "sort": "-key"}
    assert filters.is_filtered


def test_filter_apply_searches_key_and_description(workspace):
    TokenFactory(workspace=workspace, key="STRIPE_SECRET")
    TokenFactory(workspace=workspace, key="OTHER", description="used by stripe webhooks")
    TokenFactory(workspace=workspace, key="UNRELATED")
    filters = TokenFilterForm({"q": "Stripe"}, workspace=workspace)
    keys = [t.key for t in filters.apply(Token.objects.for_workspace(workspace))]
    assert keys == ["OTHER", "STRIPE_SECRET"]


# --- the value from a file --------------------------------------------------------------

PEM = (
    b"-----BEGIN PRIVATE KEY-----\r\n"
    b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\r\n"
    b"  indented line, trailing spaces   \n"
    b"-----END PRIVATE KEY-----\n"
)


def upload(content: bytes, name: str = "deploy-key.pem") -> dict:
    return {"value_file": SimpleUploadedFile(name, content, content_type="application/x-pem-file")}


def test_value_file_is_an_optional_file_input_with_help(workspace):
    form = TokenForm(workspace=workspace)
    html = str(form["value_file"])
    assert 'type="file"' in html
    assert 'class="form-control"' in html
    assert not form.fields["value_file"].required
    assert form.fields["value_file"].help_text == (
        "For multi-line values such as PEM keys; the file's exact contents become the value. "
        "Up to 64 KiB of UTF-8 text."
    )


def test_a_pem_file_becomes_the_value_byte_for_byte(workspace):
    form = TokenForm(data(workspace, value=""), upload(PEM), workspace=workspace)
    assert form.is_valid(), form.errors
    token = form.save(by=None)
    assert token.reveal().encode() == PEM  # CRLF, LF, spaces and the final newline all kept


def test_a_file_of_exactly_64_kib_is_accepted(workspace):
    content = b"a\n" * (VALUE_MAX_BYTES // 2)
    form = TokenForm(data(workspace, value=""), upload(content), workspace=workspace)
    assert form.is_valid(), form.errors
    assert form.save(by=None).reveal().encode() == content


def test_a_typed_value_and_a_file_together_are_refused(workspace):
    form = TokenForm(data(workspace), upload(PEM), workspace=workspace)
    assert not form.is_valid()
    assert form.errors["value_file"] == ["Type a value or choose a file, not both."]
    assert "value" not in form.errors
    assert not Token.objects.exists()


def test_a_file_over_64_kib_gets_the_models_size_message(workspace):
    form = TokenForm(
        data(workspace, value=""), upload(b"x" * (VALUE_MAX_BYTES + 1)), workspace=workspace
    )
    assert not form.is_valid()
    assert form.errors["value_file"] == [
        "The value is 65,537 bytes; the limit is 64 KiB (65,536 bytes)."
    ]
    assert "value" not in form.errors


def handled_upload(content: bytes, handler: CappedUploadHandler | None = None) -> dict:
    """`content` passed through the upload handler as a request would, chunk by chunk; the
    handler's largest holding is kept on `handler.peak`."""
    handler = handler or CappedUploadHandler()
    handler.new_file("value_file", "deploy-key.pem", "application/x-pem-file", None)
    handler.peak = 0
    for start in range(0, len(content), handler.chunk_size):
        assert (
            handler.receive_data_chunk(content[start : start + handler.chunk_size], start) is None
        )
        handler.peak = max(handler.peak, handler.kept)
    return {"value_file": handler.file_complete(len(content))}


def test_the_upload_handler_never_holds_more_than_64_kib_of_a_5_mb_file():
    handler = CappedUploadHandler()
    upload_file = handled_upload(b"x" * 5_000_000, handler)["value_file"]
    assert handler.peak <= VALUE_MAX_BYTES
    assert handler.kept == 0  # what it held is dropped once the file is over the limit
    assert upload_file.oversized
    assert upload_file.size == 5_000_000  # the real size, for an honest message
    with pytest.raises(ValueError):
        upload_file.read()  # no partial contents to mistake for the file


def test_a_5_mb_file_through_the_handler_gets_its_real_size_in_the_message(workspace):
    form = TokenForm(
        data(workspace, value=""), handled_upload(b"x" * 5_000_000), workspace=workspace
    )
    assert not form.is_valid()
    assert form.errors["value_file"] == [
        "The value is 5,000,000 bytes; the limit is 64 KiB (65,536 bytes)."
    ]
    assert "value" not in form.errors
    assert not Token.objects.exists()


def test_one_byte_over_64_kib_through_the_handler_is_refused(workspace):
    upload_file = handled_upload(b"x" * (VALUE_MAX_BYTES + 1))["value_file"]
    assert upload_file.oversized
    form = TokenForm(data(workspace, value=""), {"value_file": upload_file}, workspace=workspace)
    assert form.errors["value_file"] == [
        "The value is 65,537 bytes; the limit is 64 KiB (65,536 bytes)."
    ]


def test_a_64_kib_pem_through_the_handler_is_kept_byte_for_byte(workspace):
    content = (PEM * (VALUE_MAX_BYTES // len(PEM) + 1))[:VALUE_MAX_BYTES]
    upload_file = handled_upload(content)["value_file"]
    assert not upload_file.oversized
    form = TokenForm(data(workspace, value=""), {"value_file": upload_file}, workspace=workspace)
    assert form.is_valid(), form.errors
    assert form.save(by=None).reveal().encode() == content


def test_a_file_that_is_not_utf8_is_refused(workspace):
    form = TokenForm(
        data(workspace, value=""), upload(b"\xff\xfe\x00k\x00e\x00y"), workspace=workspace
    )
    assert not form.is_valid()
    assert form.errors["value_file"] == ["The file must be UTF-8 text."]
    assert "value" not in form.errors


def test_an_empty_file_is_refused(workspace):
    form = TokenForm(data(workspace, value=""), upload(b""), workspace=workspace)
    assert not form.is_valid()
    assert form.errors["value_file"] == ["The file is empty."]
    assert "value" not in form.errors


def test_neither_a_typed_value_nor_a_file_asks_for_the_value(workspace):
    form = TokenForm(data(workspace, value=""), {}, workspace=workspace)
    assert not form.is_valid()
    assert form.errors["value"] == ["Enter the token value."]
    assert "value_file" not in form.errors


def test_edit_with_a_file_replaces_the_value(workspace):
    token = TokenFactory(workspace=workspace, key="TLS_KEY", value=SECRET)
    initial = TokenForm.initial_from(token)
    submitted = data(workspace, **{**initial, "key": "TLS_KEY", "value": ""})
    submitted["environments"] = [env.pk for env in initial["environments"]]
    form = TokenForm(submitted, upload(PEM), workspace=workspace, token=token)
    assert form.is_valid(), form.errors
    form.save(by=None)
    token.refresh_from_db()
    assert token.reveal().encode() == PEM
    assert token.value_version == 1
    assert form.changed == ["value"]


def test_the_file_is_never_rendered_back(workspace):
    form = TokenForm(
        data(workspace, value="", environments=[]),
        upload(PEM, "secret-name.pem"),
        workspace=workspace,
    )
    assert not form.is_valid()
    html = form.as_div()
    assert "secret-name.pem" not in html
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" not in html
    assert form.file_was_submitted


# --- password managers ------------------------------------------------------------------------


class InputAttributes(HTMLParser):
    """The attributes of each <input>, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str | None]] = {}

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "input" and (name := dict(attrs).get("name")):
            self.inputs[name] = dict(attrs)


PASSWORD_MANAGER_OPT_OUTS = {
    "data-1p-ignore": "",  # 1Password
    "data-lpignore": "true",  # LastPass
    "data-bwignore": "",  # Bitwarden
    "data-form-type": "other",  # Dashlane
}


@pytest.mark.parametrize("page", ["create", "edit"])
def test_password_managers_are_asked_not_to_save_the_token_value(workspace, owner_client, page):
    args = [workspace.slug] + ([TokenFactory(workspace=workspace).pk] if page == "edit" else [])
    response = owner_client.get(reverse(f"tokens:{page}", args=args), headers={"HX-Request": "1"})
    parser = InputAttributes()
    parser.feed(response.content.decode())
    value, key = parser.inputs["value"], parser.inputs["key"]

    assert value["type"] == "password"
    assert value["autocomplete"] == "new-password"  # "off" is ignored on password inputs
    for attribute, expected in PASSWORD_MANAGER_OPT_OUTS.items():
        assert attribute in value and attribute in key, attribute
        assert (value[attribute] or "") == expected, attribute
        assert (key[attribute] or "") == expected, f"key {attribute}"
    assert key["autocomplete"] == "off"
    assert "Token Value" in response.content.decode()
