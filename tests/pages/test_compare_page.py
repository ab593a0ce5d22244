"""The Compare page: columns that stream side by side, a failure kept to its column, blind votes, batches."""

from __future__ import annotations

import asyncio

import pytest
from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User
from sqlmodel import select

from backend.db import session_scope
from backend.models import CompareResult, CompareRun, CompareVote, UsageRecord
from backend.models import User as UserRow
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


def column(user: User, position: int):  # the CompareColumn widget
    return next(iter(user.find(marker=f"column-{position}").elements))


async def test_columns_stream_side_by_side_and_a_failure_stays_in_its_column(comparing: User,
                                                                             openai_upstream) -> None:
    openai_upstream.script.set(reply("The fast answer.", reasoning="quick thought", delay=0.01), model="fake-chat")
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
    await see(comparing, content="quick thought")  # the reasoning, in the fast model's own column
    assert "quick thought" in column(comparing, 0).answer.thoughts_view.content
    assert "quick thought" not in column(comparing, 2).answer.thoughts_view.content
    line = column(comparing, 0).metrics.text  # "first token 12 ms · 0.1 s · 6 tokens · 250.0 tokens/s"
    assert line.startswith(f"first token {fast.ttft_ms} ms") and line.endswith(" tokens/s"), line


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


async def test_a_new_run_stops_the_old_and_stop_all_stops_every_column(comparing: User, openai_upstream) -> None:
    openai_upstream.script.set(reply(chunks=[f"w{i} " for i in range(200)], delay=0.05))
    await comparing.open("/compare")
    choose(comparing, "compare-models", ["acme/fake-chat", "acme/slow-model"])
    comparing.find(marker="compare-prompt").type("First")
    comparing.find(marker="run-compare").click()
    await see(comparing, content="w2 ")
    live = column(comparing, 0)
    for _ in range(20):  # the column's clock redraws its metrics a few times a second
        if "tokens/s" in live.metrics.text:
            break
        await asyncio.sleep(0.1)
    assert "first token" in live.metrics.text and "tokens/s" in live.metrics.text  # live metrics while it streams
    comparing.find(marker="compare-prompt").type(" again")  # run again while the first still streams
    comparing.find(marker="run-compare").click()
    for _ in range(100):  # the first run's columns stop: no one watches them any more
        first = [r for r in results() if r.run_id == results()[0].run_id]
        if all(r.status == "cancelled" for r in first) and len(results()) == 4:
            break
        await asyncio.sleep(0.05)
    assert [r.status for r in first] == ["cancelled", "cancelled"]
    await see(comparing, content="w2 ")
    comparing.find(marker="stop-all").click()
    await see(comparing, marker="export-csv")
    second = results()[2:]
    assert [r.status for r in second] == ["cancelled", "cancelled"] and all("w199" not in r.text for r in second)
    assert all(r.output_tokens is None for r in second)  # stopped: the provider never said how many
    for position in (0, 1):
        line = column(comparing, position).metrics.text  # the count from the stream stays, marked ~
        assert "~" in line and " tokens · " in line and line.endswith(" tokens/s"), line
    await see(comparing, "Stopped: the answer ends here.")


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


async def test_a_blind_error_names_no_model_until_the_vote(comparing: User, openai_upstream) -> None:
    openai_upstream.script.set(reply("Fine."), model="fake-chat")
    openai_upstream.script.set(error(400, "fake-r1 cannot take this request"), model="fake-r1")
    await comparing.open("/compare")
    choose(comparing, "compare-models", ["acme/fake-chat", "acme/fake-r1"])
    comparing.find(marker="blind").click()
    comparing.find(marker="compare-prompt").type("Which is better?")
    comparing.find(marker="run-compare").click()
    await see(comparing, marker="column-error")
    await see(comparing, "Which answer is better?")
    shown = next(iter(comparing.find(marker="column-error").elements))
    text = " ".join(label.text for label in shown.descendants() if isinstance(label, ui.label))
    assert "rejected the request" in text and "acme" not in text and "fake-r1" not in text, text
    comparing.find(marker="vote-both_bad").click()
    await see(comparing, "Your vote: Both are bad")
    await see(comparing, "acme rejected the request: fake-r1 cannot take this request")  # revealed with the names


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

    with session_scope() as session:
        batch_id = session.exec(select(CompareRun)).first().batch_id
    await comparing.open("/compare")  # another visit: the batch is listed, and reopens with its results
    comparing.find(marker="tab-batch").click()
    await see(comparing, marker=f"batch-{batch_id}")
    await comparing.should_not_see(marker="batch-averages")
    badge = next(iter(comparing.find(marker=f"batch-status-{batch_id}").elements))
    assert badge.text == "done"
    await see(comparing, "3 of 3 prompts")
    comparing.find(marker=f"batch-{batch_id}").click()
    await see(comparing, marker="batch-averages")
    await see(comparing, "3 of 3 prompts answered")
    table = next(iter(comparing.find(marker="batch-averages").elements))
    assert [(r["model"], r["answers"], r["tokens"]) for r in table.rows] == [
        ("acme/fake-chat", 3, "6"), ("acme/fake-r1", 3, "6")]
    comparing.find(marker="batch-export-json").click()
    assert (await comparing.download.next(timeout=5)).text.count('"prompt": "second"') == 2


async def test_a_running_batch_reopens_with_its_progress_and_a_failure_says_why(comparing: User,
                                                                               openai_upstream) -> None:
    openai_upstream.script.set(reply("slow", usage=(1, 1), first_token_delay=1.5))
    with session_scope() as session:
        alice = session.exec(select(UserRow)).one()
        alice.daily_token_quota = 1000
        session.add(alice)
        session.commit()
    await comparing.open("/compare")
    comparing.find(marker="tab-batch").click()
    choose(comparing, "batch-models", ["acme/fake-chat"])
    comparing.find(marker="batch-prompts").type("first\nsecond\nthird")
    next(iter(comparing.find(marker="concurrency").elements)).value = 1
    comparing.find(marker="run-batch").click()
    await see(comparing, "0 of 3 prompts answered")
    batch_id = next(iter(compare._batches))
    with session_scope() as session:  # while the first prompt is answered, today's tokens run out
        session.add(UsageRecord(user_id=alice.id, model="elsewhere/model", input_tokens=1000))
        session.commit()
    await comparing.open("/compare")  # left and back while it runs: it reopens following its progress
    comparing.find(marker="tab-batch").click()
    await see(comparing, marker=f"batch-{batch_id}")
    comparing.find(marker=f"batch-{batch_id}").click()
    await see(comparing, marker="cancel-batch")
    await see(comparing, marker="batch-error")
    await see(comparing, "The batch failed; the answers so far are below.")
    await see(comparing, "Why: Daily token quota of 1000 tokens used up")
    await see(comparing, "1 of 3 prompts answered")
    table = next(iter(comparing.find(marker="batch-averages").elements))
    assert [(r["model"], r["answers"]) for r in table.rows] == [("acme/fake-chat", 1)]


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


async def test_a_prompt_file_keeps_its_line_breaks_and_system_prompts(comparing: User, openai_upstream) -> None:
    openai_upstream.script.set(reply("ok"))
    await comparing.open("/compare")
    comparing.find(marker="tab-batch").click()
    choose(comparing, "batch-models", ["acme/fake-chat"])
    upload = next(iter(comparing.find(marker="batch-file").elements))
    data = b'prompt,system\n"Write a haiku\nabout rain",Be a poet.\nPlain question,\n'
    await upload.handle_uploads([SmallFileUpload(name="prompts.csv", content_type="text/csv", _data=data)])
    await see(comparing, "2 prompts read from prompts.csv")
    prompts = next(iter(comparing.find(marker="batch-prompts").elements))
    assert prompts.value == "Write a haiku about rain\nPlain question"  # a prompt a line, to read
    await see(comparing, marker="batch-file-note")
    comparing.find(marker="run-batch").click()
    await see(comparing, marker="batch-averages")
    sent = sorted((r.json["messages"][0]["content"], r.json["messages"][-1]["content"])
                  for r in openai_upstream.chat_requests)
    assert sent == [("Be a poet.", "Write a haiku\nabout rain"), ("Plain question", "Plain question")]

    comparing.find(marker="batch-prompts").type("\nedited")  # edited: the text is the list now
    await comparing.should_not_see(marker="batch-file-note")
    comparing.find(marker="run-batch").click()
    for _ in range(100):
        if len(openai_upstream.chat_requests) == 5 and not compare._batches:
            break
        await asyncio.sleep(0.05)
    assert sorted(r.json["messages"][-1]["content"] for r in openai_upstream.chat_requests[2:]) == [
        "Plain question", "Write a haiku about rain", "edited"]
