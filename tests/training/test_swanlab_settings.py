"""SwanLab settings admins save: the mode (the environment's until saved), the cloud host as the SDK writes it, the API
key encrypted at rest and never in the audit log; the connection test against a fake SwanLab server (right key,
wrong key, unreachable, slow, TLS, not SwanLab); and what a training run gets from them in each mode, down to the
worker logging in to the cloud (or logging locally when that fails)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlmodel import select

from backend import db
from backend.config import reset_settings
from backend.errors import Forbidden, Invalid
from backend.models.admin import AppSetting
from backend.models.audit import AuditEvent
from backend.models.tracking import SwanLabConnectionTest, SwanLabMode, SwanLabSettingsUpdate
from backend.models.training import JobStatus, TrainingJob
from backend.models.user import Role, User
from backend.security.crypto import decrypt_secret
from backend.services import swanlab_settings, tracking
from jobs import worker
from tests.fakes.swanlab_server import FakeSwanLab, start_swanlab
from tests.training.conftest import new_job

KEY = "sk-swanlab-0123456789abcdef"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSwanLab]:
    with start_swanlab(api_key=KEY, username="ada") as server:
        yield server


@pytest.fixture
def cloud(fake: FakeSwanLab) -> FakeSwanLab:
    fake.requests.clear()
    fake.delay, fake.status = 0.0, None
    return fake


@pytest.fixture
def admin(database: None) -> User:
    with db.session_scope() as session:
        user = User(username="root", password_hash="x", role=Role.admin)
        session.add(user)
        session.commit()
        return user


@pytest.fixture
def sdk_logged_out() -> Iterator[None]:
    """The SDK's login lives in the process: leave none behind for the next test."""
    yield
    from swanlab.sdk.internal.core_python import client

    if client.exists():
        client.reset()


def save(admin: User, **changes: object) -> swanlab_settings.SwanLabSettings:
    with db.session_scope() as session:
        return swanlab_settings.update(session, user=admin, changes=SwanLabSettingsUpdate(**changes))  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the settings -------------------------------------------------------------------------------------------------


def test_the_environment_decides_until_an_admin_saves(admin: User, monkeypatch: pytest.MonkeyPatch) -> None:
    with db.session_scope() as session:
        assert swanlab_settings.load(session) == swanlab_settings.SwanLabSettings(
            mode=SwanLabMode.local, cloud_host="https://api.swanlab.cn", key_set=False)
        monkeypatch.setenv("SWANLAB_MODE", "disabled")
        reset_settings()
        assert swanlab_settings.load(session).mode == SwanLabMode.disabled
        monkeypatch.setenv("SWANLAB_MODE", "cloud")  # not from the environment: the key is an admin setting
        reset_settings()
        assert swanlab_settings.load(session).mode == SwanLabMode.local
    assert save(admin, mode="local").mode == SwanLabMode.local  # saved: the environment no longer decides
    with db.session_scope() as session:
        assert tracking.status(session).mode == "local"


def test_the_key_is_encrypted_masked_and_kept_out_of_the_audit_log(admin: User) -> None:
    with pytest.raises(Invalid, match="Cloud mode needs a SwanLab API key"):
        save(admin, mode="cloud")
    saved = save(admin, mode="cloud", cloud_host="swanlab.example.com:8443/some/page", api_key=f"  {KEY} ")
    assert (saved.mode, saved.cloud_host, saved.key_set) == (SwanLabMode.cloud, "https://swanlab.example.com:8443",
                                                             True)
    assert saved.key_hint == "sk-…cdef" and saved.web_host == saved.cloud_host
    with db.session_scope() as session:
        stored = {row.key: row.value for row in session.exec(select(AppSetting)).all()}
        assert KEY not in repr(stored)
        assert decrypt_secret(stored["swanlab_api_key"], secret_key=db_secret()) == KEY
        assert swanlab_settings.api_key(session) == KEY
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "swanlab.update")).all()
    assert events[0].detail == {"mode": {"from": "local", "to": "cloud"}, "api_key": "set",
                                "cloud_host": {"from": "https://api.swanlab.cn",
                                               "to": "https://swanlab.example.com:8443"}}
    assert KEY not in repr(SwanLabSettingsUpdate(api_key=KEY))  # nor in a log line of the request

    with pytest.raises(Invalid, match="Cloud mode needs a SwanLab API key"):
        save(admin, api_key="")  # cloud mode keeps its key
    cleared = save(admin, mode="local", api_key="", cloud_host="")
    assert (cleared.key_set, cleared.key_hint, cleared.cloud_host) == (False, None, "https://api.swanlab.cn")
    with db.session_scope() as session:
        assert swanlab_settings.api_key(session) is None
        details = [e.detail for e in session.exec(select(AuditEvent).where(AuditEvent.action == "swanlab.update"))]
    assert details[-1]["api_key"] == "removed" and KEY not in repr(details)


def db_secret() -> str:
    from backend.config import get_settings

    return get_settings().effective_secret_key


def test_a_plain_user_may_not_read_or_change_them(owner: User) -> None:
    with db.session_scope() as session, pytest.raises(Forbidden):
        swanlab_settings.read(session, user=owner)
    with db.session_scope() as session, pytest.raises(Forbidden):
        swanlab_settings.update(session, user=owner, changes=SwanLabSettingsUpdate(mode=SwanLabMode.disabled))


@pytest.mark.parametrize("given", ["api.swanlab.cn", "http://api.swanlab.cn/x",
                                   " https://swanlab.example.com:8443/a?b ", "10.0.0.1:5092", "HTTP://Foo.COM"])
def test_hosts_are_written_as_the_sdk_writes_them(given: str) -> None:
    from swanlab.sdk.internal.settings import resolve_hosts

    api_host, web_host, _ = resolve_hosts(api_host=given.strip())
    assert swanlab_settings.normalize_host(given) == api_host
    assert swanlab_settings.web_host(swanlab_settings.normalize_host(given)) == web_host


def test_an_ipv6_host_keeps_its_brackets() -> None:  # the SDK's own formatting drops them
    assert swanlab_settings.normalize_host("http://[::1]:8000/x") == "http://[::1]:8000"


@pytest.mark.parametrize("given", ["ftp://swanlab.example.com", "http://", "https://host:99999", "two words"])
def test_a_host_that_is_none_is_refused(given: str) -> None:
    with pytest.raises(Invalid):
        swanlab_settings.normalize_host(given)


# --- the connection test ----------------------------------------------------------------------------------------


def check(host: str, key: str = KEY, timeout: float = 5.0) -> swanlab_settings.ConnectionResult:
    return asyncio.run(swanlab_settings.check_connection(host=host, api_key=key, timeout=timeout))


def test_the_right_key_logs_in_as_the_sdk_does(cloud: FakeSwanLab) -> None:
    result = check(cloud.url)
    assert (result.ok, result.username, result.error()) == (True, "ada", None)
    assert 0 <= result.latency_ms < 5000
    login = cloud.logins[-1]
    assert (login.method, login.headers["authorization"]) == ("POST", KEY)


def test_a_wrong_key_a_missing_server_and_a_slow_one_say_what_went_wrong(cloud: FakeSwanLab) -> None:
    wrong = check(cloud.url, key="sk-wrong")
    assert not wrong.ok and wrong.error() == f"{cloud.url} refused the API key: api key is invalid"
    assert wrong.error("zh") != wrong.error("en") and cloud.url in (wrong.error("zh") or "")

    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = check(closed)
    assert not unreachable.ok and (unreachable.error() or "").startswith(f"Cannot reach {closed}: ")

    cloud.delay = 3.0
    slow = check(cloud.url, timeout=0.3)
    assert not slow.ok and slow.error() == f"{cloud.url} did not answer within 0.3 s"
    assert slow.latency_ms < 2500
    cloud.delay = 0.0

    tls = check(cloud.url.replace("http://", "https://"))  # TLS to a server that speaks plain HTTP
    assert not tls.ok and (tls.error() or "").startswith("TLS error talking to https://127.0.0.1:")


def test_a_server_that_is_not_swanlab_or_fails_is_named(cloud: FakeSwanLab) -> None:
    cloud.status = 404
    assert "has no SwanLab login API (HTTP 404)" in (check(cloud.url).error() or "")
    cloud.status = 500
    assert check(cloud.url).error() == f"{cloud.url} answered HTTP 500: the server is having a bad day"
    cloud.status = None


def test_the_saved_key_or_a_new_one_is_tested_and_audited(admin: User, cloud: FakeSwanLab) -> None:
    async def run(candidate: SwanLabConnectionTest | None = None) -> swanlab_settings.ConnectionResult:
        with db.session_scope() as session:
            return await swanlab_settings.test_connection(session, user=admin, candidate=candidate)

    with pytest.raises(Invalid, match="no SwanLab API key to test"):
        asyncio.run(run(SwanLabConnectionTest(cloud_host=cloud.url)))
    save(admin, mode="cloud", cloud_host=cloud.url, api_key=KEY)
    assert asyncio.run(run()).ok
    candidate = asyncio.run(run(SwanLabConnectionTest(api_key="sk-typed-not-saved")))
    assert not candidate.ok and cloud.logins[-1].headers["authorization"] == "sk-typed-not-saved"
    with db.session_scope() as session:
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "swanlab.test")).all()
    assert [e.detail["ok"] for e in events] == [True, False]  # type: ignore[index]
    assert all(e.target == cloud.url for e in events)
    assert KEY not in repr([e.detail for e in events])


# --- what a training run gets -------------------------------------------------------------------------------------


def test_run_options_in_each_mode(admin: User, isolated_settings: Path) -> None:
    def options() -> tracking.RunOptions:
        with db.session_scope() as session:
            return tracking.run_options(session, name="tiny #1", description="lora of tiny")

    local = options()
    assert local.mode == SwanLabMode.local and local.login is None
    assert local.callback == {"mode": "local", "log_dir": str(isolated_settings / "swanlab"),
                              "project": "llm-portal", "experiment_name": "tiny #1", "description": "lora of tiny"}

    save(admin, mode="cloud", cloud_host="swanlab.example.com", api_key=KEY)
    cloud = options()
    assert cloud.callback == {**local.callback, "mode": "cloud"}
    assert cloud.login == tracking.CloudLogin(host="https://swanlab.example.com", api_key=KEY)
    assert KEY not in repr(cloud)  # the key is in the worker's memory only: not in the callback, not in a log line

    from swanlab.sdk.internal.settings import Settings

    assert Settings.model_validate({"mode": cloud.callback["mode"]}).mode == "online"  # the SDK's name for it

    save(admin, mode="disabled")
    assert not options() and options().callback == {}
    with db.session_scope() as session:
        assert tracking.run_options(session, name="x", mode=SwanLabMode.local).callback["mode"] == "local"


def job_of(job_id: int) -> TrainingJob:
    with db.session_scope() as session:
        job = session.get(TrainingJob, job_id)
        assert job is not None
        return job


def test_the_worker_logs_in_to_the_cloud_before_the_run(admin: User, dataset_id: int, tiny_model: Path,
                                                        cloud: FakeSwanLab, sdk_logged_out: None) -> None:
    from swanlab.integration.transformers import SwanLabCallback

    save(admin, mode="cloud", cloud_host=cloud.url, api_key=KEY)
    job = job_of(new_job(admin, dataset_id, tiny_model, max_steps=2))
    callbacks = worker.tracking_callbacks(job)
    assert [type(c) for c in callbacks] == [SwanLabCallback, worker.CloudRunLink]
    assert callbacks[0]._init_kwargs["mode"] == "cloud"  # type: ignore[attr-defined]
    assert cloud.logins[-1].headers["authorization"] == KEY  # the SDK's own login, with the saved key

    save(admin, mode="disabled")
    assert worker.tracking_callbacks(job) == []


def test_a_run_whose_cloud_login_fails_logs_locally(admin: User, dataset_id: int, tiny_model: Path,
                                                    cloud: FakeSwanLab, sdk_logged_out: None,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    save(admin, mode="cloud", cloud_host=cloud.url, api_key="sk-revoked-meanwhile")
    job_id = new_job(admin, dataset_id, tiny_model, max_steps=2)
    with caplog.at_level(logging.WARNING, logger="jobs.worker"):
        assert worker.run_job(job_id) == JobStatus.succeeded
    assert f"SwanLab cloud login at {cloud.url} failed" in caplog.text and "logs locally instead" in caplog.text
    assert "sk-revoked-meanwhile" not in caplog.text
    assert len(list(tracking.log_dir().glob("run-*"))) == 1  # the run is not lost
    assert tracking.cloud_run_url(job_of(job_id).output_dir) is None


def test_a_key_the_worker_cannot_decrypt_means_a_local_run(admin: User, dataset_id: int, tiny_model: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    save(admin, mode="cloud", api_key=KEY)
    monkeypatch.setenv("SECRET_KEY", "another secret key than the one the key was saved with")
    reset_settings()
    job = job_of(new_job(admin, dataset_id, tiny_model, max_steps=2))
    with caplog.at_level(logging.WARNING, logger="jobs.worker"):
        callbacks = worker.tracking_callbacks(job)
    assert [c._init_kwargs["mode"] for c in callbacks] == ["local"]  # type: ignore[attr-defined]
    assert "cannot be decrypted" in caplog.text and "logs locally instead" in caplog.text


def test_the_run_link_is_noted_for_the_job_page(admin: User, dataset_id: int, tiny_model: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import swanlab

    job = job_of(new_job(admin, dataset_id, tiny_model, max_steps=2))
    url = "https://swanlab.cn/@ada/llm-portal/runs/abc123"
    monkeypatch.setattr(swanlab, "get_run", lambda: SimpleNamespace(url=url))
    worker.CloudRunLink(job.output_dir).on_train_begin(None, None, None)  # type: ignore[arg-type]
    assert tracking.cloud_run_url(job.output_dir) == url


def test_a_session_less_status_reads_the_saved_mode(admin: User) -> None:
    save(admin, mode="disabled")
    assert tracking.status().mode == "disabled"
    with db.session_scope() as session, pytest.raises(Invalid, match="disabled"):
        tracking.start(session)
    save(admin, mode="cloud", api_key=KEY)
    with db.session_scope() as session, pytest.raises(Invalid, match="cloud mode"):
        tracking.start(session)
