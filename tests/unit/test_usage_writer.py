"""Usage rows: written by one thread, the rows that came meanwhile in one transaction, none lost."""

from __future__ import annotations

from sqlalchemy import event
from sqlmodel import Session, select

from backend import db
from backend.models import UsageRecord
from backend.services import inference
from backend.services.inference import CallMetrics


def row(model: str | None, **kw: object) -> dict[str, object]:
    return {"user_id": None, "model": model, "source": "gateway", "metrics": CallMetrics(output_tokens=3),
            "status": "ok", "error": None, **kw}


async def test_rows_that_end_together_share_commits_and_flush_waits_for_all(database_url: str) -> None:
    db.init_db(database_url)
    commits: list[int] = []
    event.listen(db.get_engine(), "commit", lambda _conn: commits.append(1))
    try:
        for i in range(200):
            inference._record_later(**row(f"m{i}"))
        await inference.flush_usage()
        with Session(db.get_engine()) as session:
            models = sorted(r.model for r in session.exec(select(UsageRecord)).all())
        assert models == sorted(f"m{i}" for i in range(200))
        assert len(commits) < 200
    finally:
        db.get_engine().dispose()


async def test_a_row_that_cannot_be_written_loses_no_other(database_url: str, caplog) -> None:
    db.init_db(database_url)
    try:
        inference.record_usage_rows([row("ok-1"), row(None), row("ok-2")])  # model: NOT NULL
        with Session(db.get_engine()) as session:
            models = sorted(r.model for r in session.exec(select(UsageRecord)).all())
        assert models == ["ok-1", "ok-2"]
        assert "could not record usage for None" in caplog.text
    finally:
        db.get_engine().dispose()
