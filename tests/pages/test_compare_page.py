"""The Compare page: columns that stream side by side, a failure kept to its column, blind votes, batches."""

from __future__ import annotations

import asyncio

import pytest
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User
from sqlmodel import select

from backend.db import session_scope
from backend.models import CompareResult, CompareVote
from backend.services import compare, inference
from tests.fakes import error, reply
from tests.pages.conftest import see, signed_up_with_models


@pytest.fixture
async def comparing(user: User, openai_upstream) -> User:
    await signed_up_with_models(user, openai_upstream)
    yield user
    for _ in range(100):  # let columns and batches still running end before the database goes
        if not compare._running and not compare._batches:
            break
        await asyncio.sleep(0.05)
    await inference.flush_usage()


def choose(user: User, marker: str, models: list[str]) -> None:
    picker = next(iter(user.find(marker=marker).elements))
    picker.value = models


def results() -> list[CompareResult]:
    with session_scope() as session:
        return list(session.exec(select(CompareResult).order_by(CompareResult.id)).all())


async def test_columns_stream_side_by_side_and_a_failure_stays_in_its_column(comparing: User,
                                                                             openai_upstream) -> None:
    openai_upstream.script.set(reply("The fast answer.", reasoning="quick thought"), model="fake-chat")
    openai_upstream.script.set(error(500, "exploded"), model="fake-r1")
    openai_upstream.script.set(reply("The slow answer.", first_token_delay=1.5), model="slow-model")
    await comparing.open("/compare")
    choose(comparing, "compare-models", ["acme/fake-chat", "acme/fake-r1", "acme/slow-model"])
    comparing.find(marker="compare-prompt").type("Say something")
    comparing.find(marker="run-compare").click()
    await see(comparing, content="The fast answer.")
    await see(comparing, marker="column-error")  # the failing model, in its own column
    await see(comparing, "HTTP 500")
    await comparing.should_not_see(content="The slow answer.")  # still thinking: it held up no one
    await see(comparing, content="The slow answer.")
    await see(comparing, marker="export-csv")
    fast, failed, slow = results()
    assert (fast.status, failed.status, slow.status) == ("done", "error", "done")
    assert fast.total_ms < slow.ttft_ms  # the fast one was done before the slow one began
    assert fast.reasoning == "quick thought"


async def test_stop_one_column_and_the_others_go_on(comparing: User, openai_upstream) -> None:
    openai_upstream.script.set(reply(chunks=[f"w{i} " for i in range(100)], delay=0.05), model="slow-model")
    openai_upstream.script.set(reply(chunks=[f"v{i} " for i in range(20)], delay=0.05), model="fake-chat")
    await comparing.open("/compare")
    choose(comparing, "compare-models", ["acme/fake-chat", "acme/slow-model"])
    comparing.find(marker="compare-prompt").type("Go")
    comparing.find(marker="run-compare").click()
    await see(comparing, content="w2 ")
    comparing.find(marker="stop-column-1").click()  # the slow model's own stop button
    await see(comparing, "Stopped: the answer ends here.")
    await see(comparing, content="v19")  # the other column finished
    await see(comparing, marker="export-csv")  # and both results are stored
    chat, slow = results()
    assert chat.status == "done" and slow.status == "cancelled" and "w99" not in slow.text


async def test_blind_vote_reveals_names_and_feeds_the_leaderboard(comparing: User, openai_upstream) -> None:
    openai_upstream.script.set(reply("An answer."))
    await comparing.open("/compare")
    choose(comparing, "compare-models", ["acme/fake-chat", "acme/fake-r1"])
    comparing.find(marker="blind").click()
    comparing.find(marker="compare-prompt").type("Which is better?")
    comparing.find(marker="run-compare").click()
    await see(comparing, "Model A")
    await see(comparing, "Model B")
    await see(comparing, "Which answer is better?")
    await comparing.should_not_see("acme/fake-chat")
    comparing.find(marker="vote-b").click()
    await see(comparing, "Your vote: B is better")
    with session_scope() as session:
        vote = session.exec(select(CompareVote)).one()
    await see(comparing, vote.model_a)  # revealed
    await see(comparing, vote.model_b)

    comparing.find(marker="tab-leaderboard").click()
    await see(comparing, marker="leaderboard")
    table = next(iter(comparing.find(marker="leaderboard").elements))
    assert [row["model"] for row in table.rows] == [vote.model_b, vote.model_a]


async def test_history_reopens_a_comparison(comparing: User, openai_upstream) -> None:
    openai_upstream.script.set(reply("Remembered answer."))
    await comparing.open("/compare")
    comparing.find(marker="compare-prompt").type("Remember me")
    comparing.find(marker="run-compare").click()
    await see(comparing, marker="export-csv")
    await comparing.open("/compare")
    comparing.find(marker="tab-history").click()
    await see(comparing, "Remember me")
    run_id = results()[0].run_id
    comparing.find(marker=f"run-{run_id}").click()
    await see(comparing, content="Remembered answer.")
    comparing.find(marker="export-json").click()
    exported = (await comparing.download.next(timeout=5)).text
    assert "Remembered answer." in exported and "acme/fake-chat" in exported


async def test_a_batch_runs_with_progress_and_averages(comparing: User, openai_upstream) -> None:
    openai_upstream.script.set(reply("ok", usage=(2, 6), delay=0.01))
    await comparing.open("/compare")
    comparing.find(marker="tab-batch").click()
    choose(comparing, "batch-models", ["acme/fake-chat", "acme/fake-r1"])
    comparing.find(marker="batch-prompts").type("first\nsecond\n\nthird")
    comparing.find(marker="run-batch").click()
    await see(comparing, "3 of 3 prompts answered")
    await see(comparing, marker="batch-averages")
    table = next(iter(comparing.find(marker="batch-averages").elements))
    assert [(r["model"], r["answers"], r["errors"], r["tokens"]) for r in table.rows] == [
        ("acme/fake-chat", 3, 0, "6"), ("acme/fake-r1", 3, 0, "6")]
    comparing.find(marker="batch-export-csv").click()
    exported = (await comparing.download.next(timeout=5)).text
    assert exported.count("\nfirst,") == 2 and exported.count("\nthird,") == 2


async def test_a_prompt_file_fills_the_batch_and_bad_lines_are_named(comparing: User) -> None:
    await comparing.open("/compare")
    comparing.find(marker="tab-batch").click()
    upload = next(iter(comparing.find(marker="batch-file").elements))
    data = b'{"prompt": "alpha"}\n{"prompt": \n{"question": "beta"}\n'
    await upload.handle_uploads([SmallFileUpload(name="prompts.jsonl", content_type="application/json", _data=data)])
    await see(comparing, "2 prompts read from prompts.jsonl")
    assert any("Line 2:" in m for m in comparing.notify.messages), comparing.notify.messages
    prompts = next(iter(comparing.find(marker="batch-prompts").elements))
    assert prompts.value == "alpha\nbeta"
