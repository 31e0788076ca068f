"""Personal tokens and who they make a request: pure rules, no broker."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from admin.api.access import Denied, authenticate
from admin.api.tokens import TokenRecord, TokenRefused, check, hash_token, issue, token_id_of
from vb2po.settings import AdminSettings

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=timezone.utc)
ADMIN = AdminSettings(
    enabled=True,
    groups=[{"name": "integrators", "permissions": ["integration"]},
            {"name": "invoice-overview", "permissions": ["fetch.client"]},
            {"name": "file-import", "permissions": ["fetch.all"]}],
    users=[{"name": "alice", "groups": ["integrators", "invoice-overview"]}, {"name": "bob", "groups": []}],
)


def fresh(user: str = "alice", **kw):
    return issue(user, created_by="test", now=NOW, ttl=timedelta(days=1), **kw)


def test_a_token_is_recognisable_and_only_its_hash_is_kept():
    issued = fresh()
    assert issued.token.startswith("vb2po_") and token_id_of(issued.token) == issued.record.token_id
    assert issued.token not in issued.record.encode().decode()
    assert issued.record.sha256 == hash_token(issued.token)
    assert "sha256" not in issued.record.public(NOW)


def test_a_token_record_survives_the_topic_round_trip():
    record = fresh().record.revoke("carl", NOW)
    assert TokenRecord.decode(record.encode()) == record


@pytest.mark.parametrize("presented, kind", [
    (None, "missing"), ("", "missing"), ("Bearer nonsense", "invalid"), ("vb2po_0123456789ab_" + "x" * 43, "invalid"),
])
def test_missing_and_malformed_tokens_authenticate_nobody(presented, kind):
    with pytest.raises(TokenRefused) as refused:
        check(presented, fresh().record, NOW)
    assert refused.value.kind == kind


def test_a_token_with_the_right_id_but_the_wrong_secret_is_invalid():
    a, b = fresh(), fresh()
    forged = f"vb2po_{a.record.token_id}_{b.token.split('_', 2)[2]}"
    with pytest.raises(TokenRefused, match="invalid"):
        check(forged, a.record, NOW)


def test_an_expired_token_is_refused_from_its_expiry_on():
    issued = fresh()
    assert check(issued.token, issued.record, issued.record.expires_at - timedelta(seconds=1))
    with pytest.raises(TokenRefused) as refused:
        check(issued.token, issued.record, issued.record.expires_at)
    assert refused.value.kind == "expired"


def test_a_revoked_token_is_refused_even_before_it_expires():
    issued = fresh()
    with pytest.raises(TokenRefused) as refused:
        check(issued.token, issued.record.revoke("alice", NOW), NOW)
    assert refused.value.kind == "revoked"


def test_permissions_come_from_the_groups_of_the_user():
    issued = fresh("alice")
    who = authenticate(ADMIN, issued.token, issued.record, NOW)
    assert who.permissions == {"integration", "fetch.client"}
    who.require("fetch.client")
    with pytest.raises(Denied, match="fetch.all"):
        who.require("fetch.all")


def test_a_user_without_groups_is_authenticated_but_may_do_nothing():
    issued = fresh("bob")
    who = authenticate(ADMIN, issued.token, issued.record, NOW)
    for permission in ("integration", "fetch.client", "fetch.all"):
        with pytest.raises(Denied):
            who.require(permission)


def test_a_token_of_a_user_no_longer_declared_authenticates_nobody():
    issued = fresh("mallory")
    with pytest.raises(TokenRefused) as refused:
        authenticate(ADMIN, issued.token, issued.record, NOW)
    assert refused.value.kind == "unknown_user"


def test_settings_refuse_a_user_in_an_undeclared_group():
    with pytest.raises(ValueError, match="unknown group"):
        AdminSettings(groups=[{"name": "a", "permissions": ["integration"]}], users=[{"name": "u", "groups": ["b"]}])


def test_settings_refuse_an_unknown_permission():
    with pytest.raises(ValueError):
        AdminSettings(groups=[{"name": "a", "permissions": ["superuser"]}])
