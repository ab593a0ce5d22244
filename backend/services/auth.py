"""Accounts and sign-in: registration, login, sessions, refresh-token rotation, access and API tokens."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, partial

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from backend.config import get_settings
from backend.db import session_scope
from backend.errors import Conflict, Forbidden, Invalid, NotFound, TooManyRequests, Unauthorized
from backend.i18n import N_
from backend.models.auth import ApiToken, ApiTokenCreated, AuthSession, RefreshToken, TokenPair
from backend.models.base import utcnow
from backend.models.user import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, USERNAME_PATTERN, Role, User
from backend.security import passwords, tokens
from backend.security.ratelimit import FailureLimiter, make_failure_limiter
from backend.services import audit, bearer_cache, events, refresh_ahead, settings_store

WRONG_CREDENTIALS = N_("Wrong username or password")
SESSION_EXPIRED = N_("Your session has expired; please sign in again")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, and the sign-in session (None for a personal API token)."""

    user: User
    session_id: str | None


# --- validation -----------------------------------------------------------------------------------------------


def validate_username(username: str) -> str:
    username = username.strip()
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise Invalid("Username must be 3 to 64 letters, digits or . _ - @")
    return username


def validate_password(password: str) -> str:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise Invalid("Password must be at least {min} characters", min=PASSWORD_MIN_LENGTH)
    if len(password) > PASSWORD_MAX_LENGTH:
        raise Invalid("Password must be at most {max} characters", max=PASSWORD_MAX_LENGTH)
    return password


# --- accounts -------------------------------------------------------------------------------------------------


def user_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(User)).one()


def registration_open(session: Session) -> bool:
    """Open when the settings allow it, and always while there is no user at all (the first becomes admin)."""
    return settings_store.load(session).allow_registration or user_count(session) == 0


def get_user_by_name(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username.strip())).first()


def register(session: Session, *, username: str, password: str, ip: str | None = None) -> User:
    username = validate_username(username)
    validate_password(password)
    if not registration_open(session):
        raise Forbidden("Registration is closed; ask an administrator for an account")
    if get_user_by_name(session, username) is not None:
        raise Conflict("The username {username} is taken", username=username)
    role = Role.admin if user_count(session) == 0 else settings_store.load(session).default_role
    user = User(username=username, password_hash=passwords.hash_password(password), role=role)
    session.add(user)
    session.flush()
    audit.record(session, action="auth.register", user=user, target=f"user:{user.id}", ip=ip, detail={"role": role})
    session.commit()
    return user


def ensure_admin(session: Session, *, username: str, password: str) -> User | None:
    """On start-up: create the admin named by ADMIN_USERNAME / ADMIN_PASSWORD unless that user exists."""
    if not username:
        return None
    existing = get_user_by_name(session, username)
    if existing is not None:
        return existing
    user = User(
        username=validate_username(username),
        password_hash=passwords.hash_password(validate_password(password)),
        role=Role.admin,
    )
    session.add(user)
    session.flush()
    audit.record(session, action="auth.register", user=user, target=f"user:{user.id}", detail={"role": "admin"})
    session.commit()
    return user


# --- login ----------------------------------------------------------------------------------------------------


@cache
def login_limiter() -> FailureLimiter:
    settings = get_settings()
    return make_failure_limiter(
        redis_url=settings.redis_url,
        limit=settings.login_max_failures,
        window_seconds=settings.login_window_seconds,
    )


def _limiter_keys(username: str, ip: str | None) -> list[str]:
    keys = [f"user:{username.strip().lower()}"]
    if ip:
        keys.append(f"ip:{ip}")
    return keys


def authenticate(session: Session, *, username: str, password: str, ip: str | None = None) -> User:
    """Check the password under the failed-login limit; raise `TooManyRequests`, `Unauthorized` or `Forbidden`."""
    limiter = login_limiter()
    keys = _limiter_keys(username, ip)
    wait = max(limiter.retry_after(key) for key in keys)
    if wait:
        raise TooManyRequests("Too many failed sign-in attempts; try again in {seconds} s", retry_after=wait,
                              seconds=wait)
    user = get_user_by_name(session, username) if username.strip() else None
    if not passwords.verify_password(user.password_hash if user else None, password) or user is None:
        for key in keys:
            limiter.record_failure(key)
        audit.record(session, action="auth.login_failed", user=user, username=username.strip()[:64], ip=ip)
        session.commit()
        raise Unauthorized(WRONG_CREDENTIALS)
    if user.disabled:
        audit.record(session, action="auth.login_failed", user=user, ip=ip, detail={"reason": "disabled"})
        session.commit()
        raise Forbidden("This account is disabled; ask an administrator")
    limiter.reset(keys[0])
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return user


def start_session(
    session: Session, *, user: User, kind: str, ip: str | None = None, user_agent: str | None = None
) -> AuthSession:
    """Record a successful sign-in (audited as `auth.login`) and open its session."""
    settings = get_settings()
    auth_session = AuthSession(
        id=uuid.uuid4().hex,
        user_id=user.id,  # type: ignore[arg-type]
        kind=kind,
        expires_at=utcnow() + timedelta(days=settings.refresh_token_days),
        ip=ip,
        user_agent=(user_agent or "")[:255] or None,
    )
    user.last_login_at = utcnow()
    session.add(auth_session)
    session.add(user)
    audit.record(session, action="auth.login", user=user, ip=ip, detail={"via": kind})
    session.commit()
    return auth_session


def _issue_tokens(session: Session, *, auth_session: AuthSession, user_id: int) -> TokenPair:
    settings = get_settings()
    refresh = tokens.new_opaque_token()
    session.add(
        RefreshToken(
            session_id=auth_session.id,
            token_hash=tokens.hash_token(refresh),
            expires_at=auth_session.expires_at,
        )
    )
    session.commit()
    ttl = settings.access_token_minutes * 60
    access = tokens.create_access_token(
        secret_key=settings.effective_secret_key, user_id=user_id, session_id=auth_session.id, ttl_seconds=ttl
    )
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=ttl)


def login(
    session: Session, *, username: str, password: str, ip: str | None = None, user_agent: str | None = None
) -> TokenPair:
    user = authenticate(session, username=username, password=password, ip=ip)
    auth_session = start_session(session, user=user, kind="api", ip=ip, user_agent=user_agent)
    return _issue_tokens(session, auth_session=auth_session, user_id=user.id)  # type: ignore[arg-type]


def refresh(session: Session, *, refresh_token: str, ip: str | None = None) -> TokenPair:
    """Rotate: the presented token is spent and a new one of the same family issued.

    A token presented a second time means it was stolen (or the legitimate client was): the whole family is
    revoked, so neither copy works any more.
    """
    if not refresh_token:
        raise Unauthorized("A refresh token is required")
    token_hash = tokens.hash_token(refresh_token)
    stored = session.exec(select(RefreshToken).where(RefreshToken.token_hash == token_hash)).first()
    if stored is None:
        raise Unauthorized("Invalid refresh token")
    auth_session = session.get(AuthSession, stored.session_id)
    user = session.get(User, auth_session.user_id) if auth_session else None
    if auth_session is None or user is None:
        raise Unauthorized("Invalid refresh token")
    now = utcnow()
    if stored.used_at is not None:
        if auth_session.revoked_at is None:
            _revoke_sessions(session, [auth_session], reason="refresh_reuse")
            audit.record(session, action="auth.refresh_reuse", user=user, ip=ip, target=f"session:{auth_session.id}")
            session.commit()
            bearer_cache.invalidate()
        raise Unauthorized("This refresh token was already used; every session of its sign-in has been revoked")
    if auth_session.revoked_at is not None or stored.expires_at <= now or user.disabled:
        raise Unauthorized(SESSION_EXPIRED)
    # Conditional update: of two concurrent refreshes with the same token, exactly one wins.
    spent = session.exec(  # type: ignore[call-overload]
        update(RefreshToken).where(col(RefreshToken.id) == stored.id, col(RefreshToken.used_at).is_(None))
        .values(used_at=now)
    )
    if spent.rowcount != 1:
        session.rollback()
        return refresh(session, refresh_token=refresh_token, ip=ip)
    return _issue_tokens(session, auth_session=auth_session, user_id=user.id)  # type: ignore[arg-type]


def logout(session: Session, *, principal: Principal, ip: str | None = None) -> None:
    if principal.session_id:
        auth_session = session.get(AuthSession, principal.session_id)
        if auth_session is not None and auth_session.revoked_at is None:
            _revoke_sessions(session, [auth_session], reason="logout")
    audit.record(session, action="auth.logout", user=principal.user, ip=ip)
    session.commit()
    bearer_cache.invalidate()


def _revoke_sessions(session: Session, auth_sessions: list[AuthSession], *, reason: str) -> None:
    now = utcnow()
    for auth_session in auth_sessions:
        auth_session.revoked_at = now
        auth_session.revoked_reason = reason
        session.add(auth_session)


def revoke_all_sessions(session: Session, *, user_id: int, reason: str, keep: str | None = None) -> None:
    """End every sign-in of a user (but `keep`), and tell open pages at once."""
    active = session.exec(
        select(AuthSession).where(AuthSession.user_id == user_id, col(AuthSession.revoked_at).is_(None))
    ).all()
    _revoke_sessions(session, [s for s in active if s.id != keep], reason=reason)
    session.commit()
    bearer_cache.invalidate()
    if keep is None:
        events.user_signed_out(user_id)


# --- resolving credentials ------------------------------------------------------------------------------------


def session_user(session: Session, *, session_id: str) -> User:
    """The user of a live sign-in session; `Unauthorized` when it was revoked, expired or its user disabled."""
    return _session_user(session, session_id=session_id)[0]


def _session_user(session: Session, *, session_id: str) -> tuple[User, datetime]:
    """`session_user`, and when the session ends."""
    auth_session = session.get(AuthSession, session_id)
    if auth_session is None or auth_session.revoked_at is not None or auth_session.expires_at <= utcnow():
        raise Unauthorized(SESSION_EXPIRED)
    user = session.get(User, auth_session.user_id)
    if user is None or user.disabled:
        raise Unauthorized(SESSION_EXPIRED)
    return user, auth_session.expires_at


def page_access_token(session: Session, *, session_id: str) -> str:
    """A short-lived access token for the signed-in page's own scripts (a resumable upload talks to the API)."""
    user = session_user(session, session_id=session_id)
    settings = get_settings()
    return tokens.create_access_token(secret_key=settings.effective_secret_key, user_id=user.id,  # type: ignore[arg-type]
                                      session_id=session_id, ttl_seconds=settings.access_token_minutes * 60)


def cached_principal(token: str) -> Principal | None:
    """`resolve_bearer`'s answer while the credential cache holds it (no database: the event loop may call it).
    Used in the second half of its lifetime, the entry is read again in the background (from the event loop)."""
    entry = _cached_credential(token)
    return None if entry is None else Principal(user=entry.user(), session_id=entry.session_id)


def keep_credential_fresh(token: str) -> None:
    """Use `token`'s cache entry without a request (its caller is busy with a long answer): refreshed when due."""
    _cached_credential(token)


def _cached_credential(token: str) -> bearer_cache.CachedCredential | None:
    entry = bearer_cache.cache.get(token)
    if entry is not None and refresh_ahead.due(entry.fresh_until, entry.lifetime, time.monotonic()):
        refresh_ahead.in_background(("credential", entry.key), partial(refresh_bearer, token))
    return entry


def resolve_bearer(session: Session, *, token: str) -> Principal:
    """An access token or a personal API token → who is calling (from the credential cache while it may)."""
    if (cached := cached_principal(token)) is not None:
        return cached
    return _resolve_bearer(session, token)


def refresh_bearer(token: str) -> None:
    """Resolve a cached token again (a worker thread, off any request); one that no longer resolves leaves the
    cache, so that its next request is refused as usual."""
    with session_scope() as session:
        try:
            _resolve_bearer(session, token)
        except Unauthorized:
            bearer_cache.cache.discard(token)


def _resolve_bearer(session: Session, token: str) -> Principal:
    """From the database, and into the cache."""
    generation = bearer_cache.cache.generation  # before reading: a change committed meanwhile voids what is read
    token_id: int | None = None
    if token.startswith(tokens.API_TOKEN_PREFIX):
        user, token_id = _api_token_user(session, token)
        session_id, expires_at = None, None
    else:
        try:
            claims = tokens.decode_access_token(token, secret_key=get_settings().effective_secret_key)
        except tokens.InvalidToken as error:
            raise Unauthorized("Invalid or expired access token") from error
        user, session_ends = _session_user(session, session_id=claims.session_id)
        if user.id != claims.user_id:
            raise Unauthorized("Invalid or expired access token")
        session_id, expires_at = claims.session_id, min(float(claims.expires_at), session_ends.timestamp())
    bearer_cache.cache.put(token, generation=generation, user=user, session_id=session_id, token_id=token_id,
                           expires_at=expires_at)
    return Principal(user=user, session_id=session_id)


def _api_token_user(session: Session, token: str) -> tuple[User, int]:
    row = session.exec(
        select(ApiToken, User).join(User, col(User.id) == ApiToken.user_id)
        .where(ApiToken.token_hash == tokens.hash_token(token))
    ).first()
    if row is None:
        raise Unauthorized("Invalid or revoked API token")
    api_token, user = row
    if api_token.revoked_at is not None or user.disabled:
        raise Unauthorized("Invalid or revoked API token")
    now = utcnow()
    # Written at most once a minute, so that a busy script does not turn every request into a write.
    if api_token.last_used_at is None or now - api_token.last_used_at > timedelta(minutes=1):
        api_token.last_used_at = now
        session.add(api_token)
        session.commit()
    return user, api_token.id  # type: ignore[return-value]


# --- passwords ------------------------------------------------------------------------------------------------


def change_password(
    session: Session, *, user: User, current_password: str, new_password: str, keep_session: str | None,
    ip: str | None = None,
) -> None:
    if not passwords.verify_password(user.password_hash, current_password):
        raise Invalid("The current password is wrong")
    validate_password(new_password)
    user.password_hash = passwords.hash_password(new_password)
    user.updated_at = utcnow()
    session.add(user)
    audit.record(session, action="user.password_change", user=user, target=f"user:{user.id}", ip=ip)
    session.commit()
    bearer_cache.invalidate()
    # Other sign-ins may be someone who knew the old password.
    revoke_all_sessions(session, user_id=user.id, reason="password_change", keep=keep_session)  # type: ignore[arg-type]


# --- personal API tokens --------------------------------------------------------------------------------------


def create_api_token(session: Session, *, user: User, name: str, ip: str | None = None) -> ApiTokenCreated:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise Invalid("A token name must be 1 to 100 characters")
    plaintext = tokens.new_opaque_token(tokens.API_TOKEN_PREFIX)
    api_token = ApiToken(
        user_id=user.id,  # type: ignore[arg-type]
        name=name,
        token_hash=tokens.hash_token(plaintext),
        prefix=plaintext[: len(tokens.API_TOKEN_PREFIX) + 4],
    )
    session.add(api_token)
    session.flush()
    audit.record(session, action="token.create", user=user, target=f"token:{api_token.id}", ip=ip,
                 detail={"name": name})
    session.commit()
    return ApiTokenCreated(**api_token.model_dump(), token=plaintext)


def list_api_tokens(session: Session, *, user: User) -> list[ApiToken]:
    query = (
        select(ApiToken)
        .where(ApiToken.user_id == user.id, col(ApiToken.revoked_at).is_(None))
        .order_by(col(ApiToken.created_at).desc(), col(ApiToken.id).desc())
    )
    return list(session.exec(query).all())


def revoke_api_token(session: Session, *, user: User, token_id: int, ip: str | None = None) -> None:
    api_token = session.get(ApiToken, token_id)
    if api_token is None or api_token.user_id != user.id or api_token.revoked_at is not None:
        raise NotFound("No such API token")
    api_token.revoked_at = utcnow()
    session.add(api_token)
    audit.record(session, action="token.revoke", user=user, target=f"token:{api_token.id}", ip=ip,
                 detail={"name": api_token.name})
    session.commit()
    bearer_cache.invalidate()

