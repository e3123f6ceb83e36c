"""Resume tokens: signed, bound to a tenant, expiring."""

from __future__ import annotations

import pytest

from voicefleet.realtime.tokens import ResumeToken, TokenError, sign, tenant_of, verify

SECRET = b"fleet-secret"


def test_a_token_verifies_with_the_secret_and_tenant_it_was_made_for() -> None:
    token = sign(ResumeToken("vf_1", tenant_of("key-a"), 3, 1000.0), SECRET)
    assert verify(token, SECRET, now=999.0, tenant=tenant_of("key-a")) == ResumeToken(
        "vf_1", tenant_of("key-a"), 3, 1000.0
    )


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"), "invalid_resume_token"),
        (lambda t: "garbage", "invalid_resume_token"),
        (
            lambda t: sign(ResumeToken("vf_1", tenant_of("key-a"), 3, 1000.0), b"another-secret"),
            "invalid_resume_token",
        ),
    ],
)
def test_forged_tokens_are_refused(mutate: object, code: str) -> None:
    token = sign(ResumeToken("vf_1", tenant_of("key-a"), 3, 1000.0), SECRET)
    with pytest.raises(TokenError) as refused:
        verify(mutate(token), SECRET, now=10.0)  # type: ignore[operator]
    assert refused.value.code == code


def test_expired_and_foreign_tokens_are_refused() -> None:
    token = sign(ResumeToken("vf_1", tenant_of("key-a"), 1, 1000.0), SECRET)
    with pytest.raises(TokenError) as expired:
        verify(token, SECRET, now=1000.5)
    assert expired.value.code == "resume_token_expired"
    with pytest.raises(TokenError) as foreign:
        verify(token, SECRET, now=10.0, tenant=tenant_of("key-b"))
    assert foreign.value.code == "invalid_resume_token"
    with pytest.raises(TokenError):
        verify(token, b"", now=10.0)  # no secret configured: nothing verifies
