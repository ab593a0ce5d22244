"""Shared fixtures: an isolated DATA_DIR per test, the database backends, and an API client."""

from __future__ import annotations

import atexit
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import URL, create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from backend import api, db
from backend.config import get_settings, reset_settings
from backend.services import auth

TEST_PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own DATA_DIR and fresh settings; nothing from the developer's `.env` leaks in."""
    data_dir = tmp_path / "data"
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "SECRET_KEY", "ADMIN_USERNAME", "ADMIN_PASSWORD", "ALLOW_REGISTRATION", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    reset_settings()
    auth.login_limiter.cache_clear()
    forget_process_caches()
    yield data_dir
    reset_settings()
    auth.login_limiter.cache_clear()
    forget_process_caches()


def forget_process_caches() -> None:
    """The in-process caches of the hot paths (credentials, model resolutions, limits, settings, refreshes under
    way) are keyed by what repeats from test to test on PostgreSQL (one database URL, user ids from 1, the same
    model names): each test starts without what an earlier one left."""
    from backend.services import bearer_cache, limits, providers, refresh_ahead, settings_store

    bearer_cache.invalidate()
    providers.forget_resolved()
    limits.clear_cache()
    settings_store.clear_cache()
    refresh_ahead._running.clear()


def _postgres_url() -> str | None:
    return _worker_database()


@functools.cache
def _worker_database() -> str | None:
    """TEST_DATABASE_URL, or under pytest-xdist a database of this worker's own beside it (`<name>_gw0`, …),
    created on first use and dropped when the worker ends: workers never share tables."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return None
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    try:
        if worker:
            base = make_url(url)
            own = base.set(database=f"{base.database}_{worker}")
            admin = create_engine(base, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{own.database}" WITH (FORCE)'))
                connection.execute(text(f'CREATE DATABASE "{own.database}"'))
            admin.dispose()
            atexit.register(_drop_database, base, own.database)
            url = own.render_as_string(hide_password=False)
        engine = create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except OperationalError:
        return None
    return url


def _drop_database(base: URL, name: str | None) -> None:
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except OperationalError:
        pass
    finally:
        admin.dispose()


def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, isolated_settings: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Database-facing tests run on SQLite and, when TEST_DATABASE_URL answers, on PostgreSQL too."""
    if request.param == "sqlite":
        url = f"sqlite:///{isolated_settings / 'portal.db'}"
    else:
        pg = _postgres_url()
        if pg is None:
            pytest.skip("TEST_DATABASE_URL is not set or no PostgreSQL server answers")
        _reset_postgres(pg)
        url = pg
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings()
    return url


@pytest.fixture
def api_app(database_url: str) -> Iterator[FastAPI]:
    db.init_db(database_url)
    app = FastAPI(lifespan=api._lifespan)  # as the portal's API app: upstream clients closed with the test's loop
    api.install(app)
    yield app
    db.get_engine().dispose()


@pytest.fixture
def client(api_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(api_app) as test_client:
        yield test_client


def register(client: TestClient, username: str, password: str = TEST_PASSWORD) -> dict:
    response = client.post("/api/v1/auth/register", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    return response.json()


def login(client: TestClient, username: str, password: str = TEST_PASSWORD) -> dict:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def settings():
    return get_settings()


@pytest.fixture
def redis_url() -> str:
    """A Redis database for tests (TEST_REDIS_URL, default db 15 on 127.0.0.1; under pytest-xdist worker N takes the
    database N below it, so workers never share keys); skipped where none answers."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        parts = urlsplit(url)
        number = int(parts.path.strip("/") or 0)
        url = urlunsplit(parts._replace(path=f"/{(number - int(worker[2:])) % 16}"))
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis answers at {url}")
    return url


# --- fake upstreams: real HTTP servers on 127.0.0.1, started once, reset for every test ------------------------


@pytest.fixture(scope="session")
def _openai_upstream() -> Iterator[Any]:
    from tests.fakes import start_openai

    with start_openai(models=["fake-chat", "fake-r1", "slow-model"]) as server:
        yield server


@pytest.fixture(scope="session")
def _anthropic_upstream() -> Iterator[Any]:
    from tests.fakes import start_anthropic

    with start_anthropic(models=["claude-fake"]) as server:
        yield server


@pytest.fixture(scope="session")
def _ollama_upstream() -> Iterator[Any]:
    from tests.fakes import start_ollama

    with start_ollama(models=["llama-fake", "qwen-think"]) as server:
        yield server


@pytest.fixture
def openai_upstream(_openai_upstream: Any) -> Any:
    _openai_upstream.reset()
    return _openai_upstream


@pytest.fixture
def anthropic_upstream(_anthropic_upstream: Any) -> Any:
    _anthropic_upstream.reset()
    return _anthropic_upstream


@pytest.fixture
def ollama_upstream(_ollama_upstream: Any) -> Any:
    _ollama_upstream.reset()
    return _ollama_upstream


def signed_in_with_models(client: TestClient, upstream: Any, username: str = "alice") -> dict[str, str]:
    """Register and sign in `username` (the first user: an admin) with the fake OpenAI upstream's models enabled as
    `acme/...`; returns the Authorization header."""
    register(client, username)
    headers = bearer(login(client, username)["access_token"])
    provider = client.post("/api/v1/providers", headers=headers, json={
        "name": "acme", "kind": "openai", "base_url": upstream.base_url, "api_key": "test-key",
        "max_retries": 0}).json()
    client.post(f"/api/v1/providers/{provider['id']}/sync", headers=headers)
    return headers
