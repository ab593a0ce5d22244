"""The admin console's tabs: users (create, limits, delete), usage, system, audit, settings; the alert banner;
the profile's limits; a plain user is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nicegui.testing import User
from sqlmodel import col, update

import pages.admin as admin_page
from backend.db import session_scope
from backend.models import UsageRecord
from backend.models.admin import AdminSettingsUpdate
from backend.models.audit import AuditEvent
from backend.services import audit, auth, monitor, reports, settings_store, users
from tests.conftest import TEST_PASSWORD
from tests.pages.conftest import gone, notified, see, sign_in, signed_up


async def until(condition: Callable[[], bool]) -> None:
    """Wait for work done off the event loop (a refresh after a filter changed)."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


def _add_usage(username: str, *rows: tuple[str, int, int, str], days_ago: int = 0) -> None:
    with session_scope() as session:
        user = auth.get_user_by_name(session, username)
        assert user is not None
        session.add_all([UsageRecord(user_id=user.id, model=model, source="chat", input_tokens=i, output_tokens=o,
                                     total_ms=100, status=status, time=datetime.now(UTC) - timedelta(days=days_ago))
                         for model, i, o, status in rows])
        session.commit()


async def test_a_plain_user_sees_no_admin_console(user: User, create_user) -> None:
    await signed_up(user, "root")
    bob = create_user()
    await signed_up(bob, "bob")
    await bob.open("/admin?tab=audit")
    await see(bob, "Administrators only")
    await bob.should_not_see(marker="tab-audit")


async def test_create_a_user_set_their_limits_and_delete_them(user: User) -> None:
    await signed_up(user, "root")
    await user.open("/admin")
    user.find(marker="new-user").click()
    await see(user, marker="new-username")
    user.find(marker="new-username").type("carol")
    user.find(marker="new-user-password").type("carol password 1")
    user.find(marker="create-user").click()
    await notified(user, "carol created")
    await see(user, marker="delete-carol")

    user.find(marker="edit-limits-carol").click()
    await see(user, marker="limit-rate")
    user.find(marker="limit-rate").type("7")
    user.find(marker="limit-quota").type("5000")
    user.find(marker="save-limits").click()
    await notified(user, "Limits saved")
    await see(user, "Limits: 7 requests a minute, 5,000 tokens a day")
    with session_scope() as session:
        carol = auth.get_user_by_name(session, "carol")
        assert carol is not None and (carol.rate_limit_per_minute, carol.daily_token_quota) == (7, 5000)

    user.find(marker="delete-root").click()  # yourself: refused
    await see(user, content="Delete root?")
    user.find(marker="confirm-ok").click()
    await notified(user, "You cannot delete your own account")

    user.find(marker="delete-carol").click()
    await see(user, content="conversations, comparisons, datasets, uploads, prompts, training jobs and API tokens")
    user.find(marker="confirm-ok").click()
    await notified(user, "carol deleted")
    await gone(user, "delete-carol")


async def test_usage_by_user_and_model_with_a_chart_and_csv(user: User) -> None:
    await signed_up(user, "root")
    _add_usage("root", ("acme/one", 10, 5, "ok"), ("acme/one", 20, 0, "error"), ("acme/two", 1, 2, "ok"))
    _add_usage("root", ("acme/old", 100, 100, "ok"), days_ago=10)
    await user.open("/admin?tab=usage")
    await see(user, marker="usage-chart")
    table = user.find(marker="usage-table").elements.pop()
    assert [(r["key"], r["requests"], r["input_tokens"], r["output_tokens"], r["errors"]) for r in table.rows] == [
        ("root", 3, 31, 7, 1)]  # the last 7 days

    def series() -> list[tuple[str, str, list[object]]]:
        chart = user.find(marker="usage-chart").elements.pop()
        return [(s["name"], s["type"], s["data"]) for s in chart.options["series"]]

    assert series() == [("root", "bar", [38])]  # tokens a day, a series per user
    user.find(marker="usage-by").elements.pop().set_value("model")
    await until(lambda: len(table.rows) == 2)
    assert [(r["key"], r["requests"]) for r in table.rows] == [("acme/one", 2), ("acme/two", 1)]
    assert series() == [("acme/one", "bar", [35]), ("acme/two", "bar", [3])]
    measure = user.find(marker="usage-measure").elements.pop()
    measure.set_value("errors")
    assert series() == [("acme/one", "bar", [1]), ("acme/two", "bar", [0])]
    measure.set_value("latency")
    assert series() == [("acme/one", "line", [100.0]), ("acme/two", "line", [100.0])]
    user.find(marker="usage-csv").click()
    exported = (await user.download.next(timeout=5)).text
    assert exported.splitlines()[0] == "model,requests,input_tokens,output_tokens,errors,avg_latency_ms"
    assert "acme/one,2,30,5,1,100.0" in exported

    measure.set_value("requests")
    period = user.find(marker="usage-period").elements.pop()
    period.set_value("30d")
    await until(lambda: len(table.rows) == 3)
    assert series() == [("acme/one", "bar", [0, 2]), ("acme/old", "bar", [1, 0]), ("acme/two", "bar", [0, 1])]
    period.set_value("today")
    await until(lambda: len(table.rows) == 2)
    period.set_value("custom")  # no date yet: all time
    await until(lambda: len(table.rows) == 3)
    user.find(marker="usage-since").elements.pop().set_value((datetime.now(UTC) - timedelta(days=9)).date().isoformat())
    await until(lambda: len(table.rows) == 2)
    assert {r["key"] for r in table.rows} == {"acme/one", "acme/two"}


async def test_system_tab_shows_the_machine(user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor, "gpus", lambda: [])  # whatever this machine has
    await signed_up(user, "root")
    with session_scope() as session:
        monitor.take_sample(session)
    await user.open("/admin?tab=system")
    await see(user, "Portal process")
    await see(user, marker="no-gpu")
    await see(user, marker="system-history")
    await see(user, "No training job is running.")


GPUS = [{"index": 0, "name": "NVIDIA H200", "utilization_percent": 42.0, "memory_used": 70 * 2**30,
         "memory_total": 140 * 2**30, "memory_percent": 50.0, "temperature_c": 55.0},
        {"index": 1, "name": "NVIDIA H100", "utilization_percent": None, "memory_used": 14 * 2**30,
         "memory_total": 140 * 2**30, "memory_percent": 10.0, "temperature_c": None}]


async def test_system_tab_shows_each_gpu_and_reads_the_history_once_a_minute(
        user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = {"now": 0, "history": 0}
    snapshot, history = monitor.snapshot, monitor.history

    def counted(name: str, read: Callable[..., Any]) -> Callable[..., Any]:
        def counting(*args: Any, **kwargs: Any) -> Any:
            reads[name] += 1
            return read(*args, **kwargs)
        return counting

    monkeypatch.setattr(monitor, "gpus", lambda: GPUS)
    monkeypatch.setattr(monitor, "snapshot", counted("now", snapshot))
    monkeypatch.setattr(monitor, "history", counted("history", history))
    monkeypatch.setattr(admin_page, "LIVE_SECONDS", 0.05)
    await signed_up(user, "root")
    await user.open("/admin?tab=system")
    await see(user, "GPU 0 · NVIDIA H200")
    await see(user, content="memory 70.0 GiB / 140.0 GiB, 55 °C")
    await see(user, "GPU 1 · NVIDIA H100")
    await see(user, content="memory 14.0 GiB / 140.0 GiB, –")
    await user.should_not_see(marker="no-gpu")
    await until(lambda: reads["now"] >= 5)  # the figures now, again and again
    assert reads["history"] == 1  # the 24-hour chart: once, until a minute has passed


async def test_audit_tab_filters_and_pages(user: User) -> None:
    await signed_up(user, "root")
    with session_scope() as session:
        for n in range(30):
            audit.record(session, action="dataset.create", username="bob", target=f"dataset:{n}")
        audit.record(session, action="job.create", username="bob", target="job:old")
        session.commit()
        session.exec(update(AuditEvent).where(col(AuditEvent.target) == "job:old").values(  # type: ignore[call-overload]
            time=datetime.now(UTC) - timedelta(days=10)))
        session.commit()
    await user.open("/admin?tab=audit")
    await see(user, marker="audit-table")
    table = user.find(marker="audit-table").elements.pop()
    await until(lambda: bool(table.rows))
    await see(user, "1–25 of 32")  # the last 7 days: not the old job
    prev, next_ = user.find(marker="audit-prev").elements.pop(), user.find(marker="audit-next").elements.pop()
    assert (prev.enabled, next_.enabled) == (False, True)
    user.find(marker="audit-next").click()
    await see(user, "26–32 of 32")
    assert (prev.enabled, next_.enabled) == (True, False)
    assert [r["target"] for r in table.rows][:5] == [f"dataset:{n}" for n in (4, 3, 2, 1, 0)]  # then root's two
    user.find(marker="audit-prev").click()
    await see(user, "1–25 of 32")

    user.find(marker="audit-period").elements.pop().set_value("all")
    await see(user, "1–25 of 33")
    user.find(marker="audit-user").type("root")
    await see(user, "1–2 of 2")
    assert [(r["user"], r["action"]) for r in table.rows] == [("root", "auth.login"), ("root", "auth.register")]
    user.find(marker="audit-user").clear().type("bob")
    user.find(marker="audit-action").elements.pop().set_value("job.create")
    await see(user, "1–1 of 1")
    assert [r["target"] for r in table.rows] == ["job:old"]
    user.find(marker="audit-period").elements.pop().set_value("30d")
    await see(user, "1–1 of 1")
    user.find(marker="audit-period").elements.pop().set_value("1d")
    await see(user, "0 of 0")
    user.find(marker="audit-action").elements.pop().set_value(None)
    user.find(marker="audit-user").clear()
    user.find(marker="audit-search").type("register")
    await until(lambda: {r["action"] for r in table.rows} == {"auth.register"})
    await see(user, "1–1 of 1")
    user.find(marker="audit-csv").click()
    exported = (await user.download.next(timeout=5)).text
    assert exported.splitlines()[0] == "time,user,action,target,ip,detail" and "auth.register" in exported


async def test_settings_close_registration_and_raise_an_alert_banner(user: User, create_user) -> None:
    await signed_up(user, "root")
    await user.open("/admin?tab=settings")
    user.find(marker="allow-registration").click()
    user.find(marker="default-rate").clear().type("30")
    user.find(marker="save-settings").click()
    await notified(user, "Settings saved")
    user.find(marker="alert-webhook").type("http://127.0.0.1:9/secret-hook")
    user.find(marker="test-webhook").click()
    await notified(user, "The webhook did not answer with success; see the log")
    with session_scope() as session:
        saved = settings_store.load(session)
        assert (saved.allow_registration, saved.rate_limit_per_minute) == (False, 30)
        _, tested = reports.audit_events(session, action="system.webhook_test")
        assert [(e.user, e.target, e.detail) for e in tested] == [("root", "http://127.0.0.1:9/…", {"ok": False})]
        settings_store.update(session, actor=auth.get_user_by_name(session, "root"),  # type: ignore[arg-type]
                              changes=AdminSettingsUpdate(alert_memory_percent=0.1))
        monitor.take_sample(session)
    await user.open("/")
    await see(user, marker="alert-banner")
    await see(user, content="Memory at")
    visitor = create_user()
    await visitor.open("/register")
    await see(visitor, "Registration is closed")
    with session_scope() as session:
        root = auth.get_user_by_name(session, "root")
        users.create_user(session, actor=root, username="bob", password=TEST_PASSWORD)  # type: ignore[arg-type]
    await sign_in(visitor, "bob")
    await see(visitor, "Welcome, bob")
    await visitor.should_not_see(marker="alert-banner")  # administrators only, on every page


async def test_the_profile_shows_what_is_left_of_the_quota(user: User) -> None:
    await signed_up(user, "root")
    with session_scope() as session:
        root = auth.get_user_by_name(session, "root")
        settings_store.update(session, actor=root, changes=AdminSettingsUpdate(daily_token_quota=1000))  # type: ignore[arg-type]
    _add_usage("root", ("acme/one", 100, 50, "ok"))
    await user.open("/profile")
    await see(user, content="850 of 1,000 left")


async def test_a_limit_reached_in_chat_is_a_notification(user: User, openai_upstream) -> None:
    from backend.services import inference
    from tests.fakes import reply
    from tests.pages.conftest import signed_up_with_models

    await signed_up_with_models(user, openai_upstream, "root")
    with session_scope() as session:
        root = auth.get_user_by_name(session, "root")
        settings_store.update(session, actor=root, changes=AdminSettingsUpdate(rate_limit_per_minute=1))  # type: ignore[arg-type]
    openai_upstream.script.set(reply("Hello."))
    await user.open("/chat")
    await see(user, marker="composer")
    user.find(marker="composer").type("one")
    user.find(marker="send").click()
    await see(user, "Hello.")
    user.find(marker="composer").type("two")
    user.find(marker="send").click()
    await notified(user, "Rate limit of 1 requests a minute reached")
    await inference.flush_usage()
