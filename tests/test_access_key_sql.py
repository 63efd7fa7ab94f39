"""The access key's plain SQL (access/models.py: the lookup on every API request, its row
conversion and `hold`'s SELECT) proven equal to the ORM's answers on generated keys: the
same instance, field by field, as `AccessKey.objects.select_related(...)`, and the key held
exactly when `AccessKey.objects.active(at)` has it."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from access.models import AccessKey
from tests.factories import AppFactory, ProductFactory, make_access_key

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
moments = st.one_of(
    st.none(),
    st.sampled_from([NOW - dt.timedelta(seconds=1), NOW, NOW + dt.timedelta(seconds=1)]),
    st.datetimes(
        min_value=dt.datetime(2000, 1, 1),
        max_value=dt.datetime(2100, 1, 1),
        timezones=st.just(dt.UTC),
    ),
)
networks = st.lists(st.sampled_from(["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"]), unique=True)
addresses = st.one_of(st.none(), st.sampled_from(["203.0.113.9", "2001:db8::1"]))
FIXTURES_OK = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

FIELDS = [field.attname for field in AccessKey._meta.concrete_fields]


@FIXTURES_OK
@given(
    scoped=st.booleans(),
    app=st.booleans(),
    revoked_at=moments,
    expires_at=moments,
    last_used_at=moments,
    last_used_from=addresses,
    allowed=networks,
    description=st.text(st.characters(categories=["L", "N", "Zs"]), max_size=20),
    use_count=st.integers(min_value=0, max_value=2**40),
    at=st.sampled_from([NOW, NOW + dt.timedelta(days=400)]),
)
def test_the_lookup_and_the_use_agree_with_the_orm(
    workspace,
    scoped,
    app,
    revoked_at,
    expires_at,
    last_used_at,
    last_used_from,
    allowed,
    description,
    use_count,
    at,
):
    context = {}
    if scoped:
        context["product"] = ProductFactory(workspace=workspace)
    if app:
        context["app"] = AppFactory(workspace=workspace)
    row, key = make_access_key(
        workspace,
        name=f"k{AccessKey.objects.count()}",
        description=description,
        allowed_networks=allowed,
        **context,
    )
    AccessKey.objects.filter(pk=row.pk).update(
        revoked_at=revoked_at,
        expires_at=expires_at,
        last_used_at=last_used_at,
        last_used_from=last_used_from,
        use_count=use_count,
    )
    by_orm = AccessKey.objects.select_related("workspace", "environment", "product", "app").get(
        pk=row.pk
    )

    # The lookup: the same instance as the ORM's, field by field and relation by relation,
    # when the key is usable now; None otherwise.
    found, _ = AccessKey.objects.authenticate_reading(key)
    if by_orm.is_usable():
        assert found is not None
        for name in FIELDS:
            assert getattr(found, name) == getattr(by_orm, name), name
        for relation in ("workspace", "environment", "product", "app"):
            mine, theirs = getattr(found, relation), getattr(by_orm, relation)
            assert (mine is None) == (theirs is None), relation
            if theirs is not None:
                for field in type(theirs)._meta.concrete_fields:
                    assert getattr(mine, field.attname) == getattr(theirs, field.attname)
    else:
        assert found is None

    # The hold: yes exactly when the ORM's rule says the key is active at `at`.
    active = AccessKey.objects.active(at).filter(pk=row.pk).exists()
    assert by_orm.hold(at=at) is active
