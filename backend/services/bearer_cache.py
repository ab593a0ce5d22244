"""A short-lived, in-process cache of resolved bearer credentials: the gateway's hot path without a database read.

Resolving a token costs a thread hop and one or two queries (≈ 0.5 ms of CPU, more latency under load) on every
request. Here a resolved credential is kept for `AUTH_CACHE_SECONDS` (default 5; 0: no cache) under a keyed hash
of the token (the token itself is never stored), with only immutable facts: the user's id and role, the sign-in
session or API token it came from, the token's expiry, and a snapshot of the user's column values from which each
hit builds a fresh, detached `User` (no ORM object is shared between requests or threads).

Invalidation is by generation: any change that can end or alter an access (logout, revoked sessions, a revoked API
token, a user disabled, enabled, deleted, given another role or password) bumps it, and an entry of an older
generation is never used. The services call `invalidate()` where they make such changes, and a listener on every
ORM session does the same after any commit that changed a user, a sign-in session or an API token, so that a path
added later cannot forget it. The bump happens after the commit, and an entry records the generation seen before
its database read: a read that raced with a revocation is never cached as current.

The limit: the cache is per process. Another instance of the portal (several behind a load balancer) learns of a
revocation made elsewhere only when its own entry ends, at most `AUTH_CACHE_SECONDS` later. Set it to 0 where that
window is not acceptable.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import UOWTransaction, make_transient_to_detached

from backend.config import get_settings
from backend.models.auth import ApiToken, AuthSession
from backend.models.user import User

MAX_ENTRIES = 10_000
_USER_FIELDS = tuple(attr.key for attr in inspect(User).column_attrs)


@dataclass(frozen=True)
class CachedCredential:
    key: tuple[str, bytes]
    generation: int
    fresh_until: float  # time.monotonic()
    lifetime: float  # seconds, from the database read to fresh_until
    expires_at: float | None  # the token's own end (epoch seconds); None: an API token, which has none
    user_id: int
    role: str
    session_id: str | None
    token_id: int | None
    user_fields: tuple[tuple[str, Any], ...]  # immutable column values of the user, as read

    def user(self) -> User:
        """A new `User` per call, detached (as one loaded by a closed session): services may add it to theirs."""
        user = User(**dict(self.user_fields))
        make_transient_to_detached(user)
        return user


def user_snapshot(user: User) -> tuple[tuple[str, Any], ...]:
    return tuple((name, getattr(user, name)) for name in _USER_FIELDS)


class BearerCache:
    def __init__(self) -> None:
        # Keyed per process, so that the keys in memory match nothing stored (API token hashes are plain SHA-256).
        self._salt = secrets.token_bytes(32)
        self._entries: dict[tuple[str, bytes], CachedCredential] = {}
        self._lock = threading.Lock()
        self.generation = 0

    def key(self, token: str) -> tuple[str, bytes]:
        digest = hashlib.blake2b(token.encode(), key=self._salt, digest_size=32).digest()
        return get_settings().effective_database_url, digest

    def get(self, token: str) -> CachedCredential | None:
        """The live entry for `token`, or None: none, disabled, of an older generation, stale, or expired."""
        if not self._entries:
            return None
        key = self.key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if (entry.generation != self.generation or entry.fresh_until <= time.monotonic()
                or (entry.expires_at is not None and entry.expires_at <= time.time())):
            self._entries.pop(key, None)
            return None
        return entry

    def put(self, token: str, *, generation: int, user: User, session_id: str | None, token_id: int | None,
            expires_at: float | None) -> None:
        """Keep what a resolution read, unless the cache is off or a change came since `generation` was taken."""
        ttl = get_settings().auth_cache_seconds
        if ttl <= 0 or user.id is None:
            return
        key = self.key(token)
        entry = CachedCredential(
            key=key, generation=generation, fresh_until=time.monotonic() + ttl, lifetime=ttl, expires_at=expires_at,
            user_id=user.id, role=str(user.role), session_id=session_id, token_id=token_id,
            user_fields=user_snapshot(user),
        )
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = entry

    def discard(self, token: str) -> None:
        self._entries.pop(self.key(token), None)

    def invalidate(self) -> None:
        """Forget every entry: something that decides who may call changed (call it after the commit)."""
        with self._lock:
            self.generation += 1
            self._entries.clear()


cache = BearerCache()


def invalidate() -> None:
    cache.invalidate()


# --- the safety net: any committed change to a user, a sign-in session or an API token ---------------------------

_CHANGED = "bearer_cache_changed"
# Written on every sign-in and (at most once a minute) on every use of an API token: they change no one's access.
_IGNORED: dict[type, set[str]] = {
    User: {"last_login_at", "updated_at"}, AuthSession: {"ip", "user_agent"}, ApiToken: {"last_used_at"},
}


def _changes_access(obj: object) -> bool:
    ignored = _IGNORED.get(type(obj))
    if ignored is None:
        return False
    state = inspect(obj)
    return any(attr.history.has_changes() for attr in state.attrs if attr.key not in ignored)


@event.listens_for(OrmSession, "after_flush")
def _note_changes(session: OrmSession, _flush: UOWTransaction) -> None:
    if session.info.get(_CHANGED):
        return
    if any(type(obj) in _IGNORED for obj in session.deleted) or any(_changes_access(obj) for obj in session.dirty):
        session.info[_CHANGED] = True


@event.listens_for(OrmSession, "after_commit")
def _invalidate_after_commit(session: OrmSession) -> None:
    # A flush rolled back leaves the mark for the session's next commit: one needless invalidation, never a missed one.
    if session.info.pop(_CHANGED, False):
        cache.invalidate()

