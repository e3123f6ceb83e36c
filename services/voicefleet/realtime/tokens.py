"""Resume tokens: HMAC-signed proof that a client may resume a session.

A token names the session, the tenant (a digest of the client key that opened it), a version that increases each
time a token is issued (so an older token stops working once a newer one was handed out, when the store checks
it), and an expiry. Pure functions: the caller passes the current time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson


class TokenError(ValueError):
    """A token that cannot be accepted; `code` is the `error.code` the client sees."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ResumeToken:
    session_id: str
    tenant: str
    version: int
    expires_at: float


def tenant_of(client_key: str) -> str:
    """A stable, non-reversible tenant id for a client key."""
    return hashlib.sha256(b"voicefleet-tenant:" + client_key.encode()).hexdigest()[:24]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(token: ResumeToken, secret: bytes) -> str:
    payload = orjson.dumps(
        {"sid": token.session_id, "ten": token.tenant, "ver": token.version, "exp": int(token.expires_at)}
    )
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(text: str, secret: bytes, *, now: float, tenant: str | None = None) -> ResumeToken:
    """The token's contents, or TokenError when it is malformed, forged, expired, or another tenant's."""
    try:
        payload_part, mac_part = text.split(".", 1)
        payload = _unb64(payload_part)
        mac = _unb64(mac_part)
    except (ValueError, UnicodeError) as exc:
        raise TokenError("invalid_resume_token", "The resume token is malformed.") from exc
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    if not secret or not hmac.compare_digest(mac, expected):
        raise TokenError("invalid_resume_token", "The resume token is not valid.")
    try:
        data = orjson.loads(payload)
        token = ResumeToken(str(data["sid"]), str(data["ten"]), int(data["ver"]), float(data["exp"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise TokenError("invalid_resume_token", "The resume token is malformed.") from exc
    if token.expires_at < now:
        raise TokenError("resume_token_expired", "The resume token has expired.")
    if tenant is not None and not hmac.compare_digest(token.tenant, tenant):
        raise TokenError("invalid_resume_token", "The resume token belongs to another client.")
    return token
