"""The schema comes from the migrations, on SQLite (in WAL mode) and PostgreSQL."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from backend import db


def test_migrations_create_the_schema_and_are_idempotent(database_url: str) -> None:
    engine = db.init_db(database_url)
    tables = set(inspect(engine).get_table_names())
    assert {"user", "auth_session", "refresh_token", "api_token", "audit_event", "alembic_version", "provider",
            "provider_model", "usage_record"} <= tables
    db.init_db(database_url)  # a restart applies nothing twice
    head = ScriptDirectory(str(db.MIGRATIONS_DIR)).get_current_head()
    with db.get_engine().connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    db.get_engine().dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(isolated_settings) -> None:
    engine = db.init_db(f"sqlite:///{isolated_settings / 'portal.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()
