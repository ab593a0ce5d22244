"""SwanLab settings that admins change at run time, and the connection test of a SwanLab cloud API key.

Mode (`local`, `cloud` or `disabled`), the cloud's API host and its API key are `app_setting` rows; a mode never
saved is `SWANLAB_MODE` from the environment. The key is encrypted with the same Fernet helper as the providers'
keys and leaves this module only for the connection test and the training worker's login: pages see a masked hint,
the API and the audit log only whether one is set.

The connection test makes the call `swanlab.login` makes (SwanLab 0.10, `swanlab/sdk/internal/pkg/client`):
`POST {api host}/api/login/api_key` with the bare key in the `authorization` header, answered with
`{sid, expiredAt, userInfo: {username, name}}` or, for a wrong key, an error status with `{code, message}`.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlmodel import Session, col, select

from backend.config import get_settings
from backend.errors import Forbidden, Invalid
from backend.i18n import N_, gettext
from backend.models.admin import AppSetting
from backend.models.base import utcnow
from backend.models.tracking import SwanLabConnectionTest, SwanLabMode, SwanLabSettingsUpdate
from backend.models.user import Role, User
from backend.security.crypto import DecryptionFailed, decrypt_secret, encrypt_secret, mask_secret
from backend.services import audit

# SwanLab's public cloud as the SDK knows it (`Settings.api_host` / `Settings.web_host`): the API, and where people
# open runs. A private SwanLab server serves both from one address.
DEFAULT_CLOUD_HOST = "https://api.swanlab.cn"
DEFAULT_WEB_HOST = "https://swanlab.cn"
LOGIN_PATH = "/api/login/api_key"
TEST_TIMEOUT = 10.0  # seconds, as `swanlab.login`'s default

MODE_ROW = "swanlab_mode"
HOST_ROW = "swanlab_cloud_host"
KEY_ROW = "swanlab_api_key"  # the Fernet ciphertext
HINT_ROW = "swanlab_api_key_hint"
ROWS = (MODE_ROW, HOST_ROW, KEY_ROW, HINT_ROW)


@dataclass(frozen=True)
class SwanLabSettings:
    mode: SwanLabMode
    cloud_host: str
    key_set: bool
    key_hint: str | None = None  # for pages: enough to recognise the key, never enough to use it

    @property
    def web_host(self) -> str:
        return web_host(self.cloud_host)


@dataclass(frozen=True)
class ConnectionResult:
    """How a connection test went. `problem` is a message id (with `params`), translated where it is shown."""

    ok: bool
    latency_ms: int
    host: str
    username: str | None = None
    problem: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def error(self, language: str | None = None) -> str | None:
        return None if self.problem is None else gettext(self.problem, language=language, **self.params)


def default_mode() -> SwanLabMode:
    """`SWANLAB_MODE` from the environment (`local` or `disabled`: the cloud needs a key, which only admins save):
    what applies while an admin saved no mode."""
    disabled = get_settings().swanlab_mode.strip().lower() == SwanLabMode.disabled
    return SwanLabMode.disabled if disabled else SwanLabMode.local


def normalize_host(value: str | None) -> str:
    """A SwanLab API host as the SDK writes it (`nrc.fmt`): scheme, host and port only, https unless told; empty is
    the public cloud."""
    text = (value or "").strip()
    if not text:
        return DEFAULT_CLOUD_HOST
    has_scheme = "://" in text
    parsed = urlsplit(text if has_scheme else f"//{text}")
    if has_scheme and parsed.scheme.lower() not in ("http", "https"):
        raise Invalid("The SwanLab host must be an http:// or https:// address")
    try:
        port = parsed.port
    except ValueError as error:
        raise Invalid("Not a valid SwanLab host: {host}", host=text) from error
    if not parsed.hostname or any(c.isspace() for c in text):
        raise Invalid("Not a valid SwanLab host: {host}", host=text)
    hostname = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    result = f"{parsed.scheme.lower() if has_scheme else 'https'}://{hostname}"
    if port is not None:
        result += f":{port}"
    if result == DEFAULT_CLOUD_HOST.replace("https://", "http://"):  # the SDK talks https to its own cloud
        result = DEFAULT_CLOUD_HOST
    return result


def web_host(cloud_host: str) -> str:
    """Where a browser opens runs: swanlab.cn for the public cloud, the same address for a private server."""
    return DEFAULT_WEB_HOST if cloud_host == DEFAULT_CLOUD_HOST else cloud_host


def _rows(session: Session) -> dict[str, Any]:
    found = session.exec(select(AppSetting).where(col(AppSetting.key).in_(ROWS))).all()
    return {row.key: row.value for row in found if row.value not in (None, "")}


def load(session: Session) -> SwanLabSettings:
    rows = _rows(session)
    try:
        mode = SwanLabMode(rows[MODE_ROW]) if MODE_ROW in rows else default_mode()
    except ValueError:
        mode = default_mode()
    return SwanLabSettings(mode=mode, cloud_host=str(rows.get(HOST_ROW) or DEFAULT_CLOUD_HOST),
                           key_set=KEY_ROW in rows, key_hint=rows.get(HINT_ROW) if KEY_ROW in rows else None)


def current_mode(session: Session) -> SwanLabMode:
    return load(session).mode


def api_key(session: Session) -> str | None:
    """The stored cloud key in clear, for the connection test and the training worker's login only."""
    ciphertext = _rows(session).get(KEY_ROW)
    if not ciphertext:
        return None
    try:
        return decrypt_secret(str(ciphertext), secret_key=get_settings().effective_secret_key)
    except DecryptionFailed as error:
        raise Invalid("The SwanLab API key cannot be decrypted (SECRET_KEY changed?); enter it again") from error


def _require_admin(user: User) -> None:
    if user.role != Role.admin:
        raise Forbidden("Only an administrator may do this")


def read(session: Session, *, user: User) -> SwanLabSettings:
    _require_admin(user)
    return load(session)


def _put(session: Session, key: str, value: str | None) -> None:
    row = session.get(AppSetting, key) or AppSetting(key=key, value=None)
    row.value = value
    row.updated_at = utcnow()
    session.add(row)


def update(session: Session, *, user: User, changes: SwanLabSettingsUpdate, ip: str | None = None) -> SwanLabSettings:
    """Save what an admin changed (audited as `swanlab.update`; the key never goes into the record)."""
    _require_admin(user)
    current = load(session)
    detail: dict[str, Any] = {}
    mode = changes.mode if changes.mode is not None else current.mode
    host = normalize_host(changes.cloud_host) if changes.cloud_host is not None else current.cloud_host
    key_set = current.key_set if changes.api_key is None else bool(changes.api_key)
    if mode == SwanLabMode.cloud and not key_set:
        raise Invalid("Cloud mode needs a SwanLab API key")
    if changes.mode is not None and (changes.mode != current.mode or MODE_ROW not in _rows(session)):
        _put(session, MODE_ROW, changes.mode.value)
        if changes.mode != current.mode:
            detail["mode"] = {"from": current.mode.value, "to": changes.mode.value}
    if changes.cloud_host is not None and host != current.cloud_host:
        _put(session, HOST_ROW, host)
        detail["cloud_host"] = {"from": current.cloud_host, "to": host}
    if changes.api_key is not None:
        if changes.api_key:
            _put(session, KEY_ROW, encrypt_secret(changes.api_key, secret_key=get_settings().effective_secret_key))
            _put(session, HINT_ROW, mask_secret(changes.api_key))
            detail["api_key"] = "replaced" if current.key_set else "set"
        elif current.key_set:
            _put(session, KEY_ROW, None)
            _put(session, HINT_ROW, None)
            detail["api_key"] = "removed"
    if detail:
        audit.record(session, action="swanlab.update", user=user, target="swanlab", ip=ip, detail=detail)
    session.commit()
    return load(session)


# --- the connection test ----------------------------------------------------------------------------------------


def _tls_problem(error: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or ""
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])[:300]
    return response.reason_phrase or ""


async def check_connection(*, host: str, api_key: str, timeout: float = TEST_TIMEOUT,
                           transport: httpx.AsyncBaseTransport | None = None) -> ConnectionResult:
    """Log in to the SwanLab server at `host` with `api_key` as the SDK does; never raises for a failed login."""
    started = time.perf_counter()

    def result(problem: str | None = None, username: str | None = None, **params: Any) -> ConnectionResult:
        return ConnectionResult(ok=problem is None, latency_ms=round((time.perf_counter() - started) * 1000),
                                host=host, username=username, problem=problem, params={"host": host, **params})

    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport,
                                     follow_redirects=False) as client:
            response = await client.post(host + LOGIN_PATH, headers={"authorization": api_key})
    except httpx.TimeoutException:
        return result(N_("{host} did not answer within {seconds} s"), seconds=f"{timeout:g}")
    except httpx.TransportError as error:
        tls = _tls_problem(error)
        if tls is not None:
            reason = getattr(tls, "reason", None) or str(tls)
            return result(N_("TLS error talking to {host}: {reason}"), reason=str(reason))
        return result(N_("Cannot reach {host}: {reason}"), reason=str(error) or type(error).__name__)
    status = response.status_code
    if status in (401, 403):
        return result(N_("{host} refused the API key: {detail}"), detail=_server_message(response) or str(status))
    if status == 404:
        return result(N_("{host} has no SwanLab login API (HTTP 404): check the host"))
    if status >= 300:
        return result(N_("{host} answered HTTP {status}: {detail}"), status=status,
                      detail=_server_message(response))
    try:
        body = response.json()
        username = body["userInfo"]["username"]
        if not body.get("sid"):
            raise KeyError("sid")
    except (ValueError, KeyError, TypeError):
        return result(N_("{host} answered, but not as a SwanLab server does: check the host"))
    return result(username=str(username))


async def test_connection(session: Session, *, user: User, candidate: SwanLabConnectionTest | None = None,
                          ip: str | None = None) -> ConnectionResult:
    """Test a host and key (those given, else the saved ones); audited as `swanlab.test`, without the key."""
    _require_admin(user)
    candidate = candidate or SwanLabConnectionTest()
    host = normalize_host(candidate.cloud_host) if candidate.cloud_host else load(session).cloud_host
    key = (candidate.api_key or "").strip() or api_key(session)
    if not key:
        raise Invalid("There is no SwanLab API key to test: enter one")
    outcome = await check_connection(host=host, api_key=key)
    audit.record(session, action="swanlab.test", user=user, target=host, ip=ip,
                 detail={"ok": outcome.ok, "latency_ms": outcome.latency_ms, "error": outcome.error("en")})
    session.commit()
    return outcome
