"""JWT access tokens (joserfc, HS256) and opaque random tokens stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

ALGORITHM = "HS256"
API_TOKEN_PREFIX = "lpt_"


class InvalidToken(Exception):
    """The token is malformed, tampered with, expired or of the wrong type."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: str
    expires_at: int


def _signing_key(secret_key: str) -> OctKey:
    # A key of its own for JWTs, so that the same SECRET_KEY never signs two kinds of thing.
    return OctKey.import_key(hashlib.sha256(b"llm-portal/jwt\x00" + secret_key.encode()).digest())


def create_access_token(*, secret_key: str, user_id: int, session_id: str, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "sid": session_id,
        "typ": "access",
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": ALGORITHM}, claims, _signing_key(secret_key), algorithms=[ALGORITHM])


def decode_access_token(token: str, *, secret_key: str) -> AccessClaims:
    """Verify signature, algorithm (only HS256: `alg: none` and others are refused), expiry and type."""
    try:
        decoded = jwt.decode(token, _signing_key(secret_key), algorithms=[ALGORITHM])
        registry = jwt.JWTClaimsRegistry(
            exp={"essential": True}, sub={"essential": True}, sid={"essential": True}, typ={"value": "access"}
        )
        registry.validate(decoded.claims)
        return AccessClaims(
            user_id=int(decoded.claims["sub"]),
            session_id=str(decoded.claims["sid"]),
            expires_at=int(decoded.claims["exp"]),
        )
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise InvalidToken(str(error)) from error


def new_opaque_token(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Opaque tokens carry 256 random bits, so a plain SHA-256 is a safe way to store and look them up."""
    return hashlib.sha256(token.encode()).hexdigest()
