"""The Datasets pages: an upload checked before saving (bad lines shown, saved without them), preview pages,
versions, sharing, deletion."""

from __future__ import annotations

import json

from nicegui import ui
from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction
from sqlmodel import select

from backend.db import session_scope
from backend.models import Dataset, DatasetVersion
from backend.models import User as UserRow
from backend.services import datasets, uploads
from pages.datasets import UPLOAD_EVENT
from tests.pages.conftest import see, signed_up, signed_up_then_out


def account(username: str) -> UserRow:
    with session_scope() as session:
        return session.exec(select(UserRow).where(UserRow.username == username)).one()


def finished_upload(username: str, data: bytes, filename: str) -> str:
    """What the page's upload script leaves behind: a complete tus upload."""
    with session_scope() as session:
        upload = uploads.create_upload(session, user=account(username), length=len(data),
                                       metadata={"filename": filename})
    uploads.upload_path(upload.id).write_bytes(data)
    return upload.id


def uploaded(user: User, upload_id: str, filename: str) -> None:
    """The upload script's event: this upload finished."""
    assert user.client is not None
    UserInteraction(user, {user.client.layout}, None).trigger(
        UPLOAD_EVENT, {"upload_id": upload_id, "filename": filename, "size": 0})


def rows(n: int, start: int = 0) -> bytes:
    return "".join(json.dumps({"instruction": f"Question {i}", "output": f"Answer {i}"}) + "\n"
                   for i in range(start, start + n)).encode()


async def test_upload_check_and_save_without_the_bad_rows(user: User) -> None:
    await signed_up(user, "alice")
    await user.open("/datasets")
    await see(user, "No datasets yet.")
    user.find(marker="new-dataset").click()
    data = rows(2) + b'{"instruction": "no answer"}\n'
    upload_id = finished_upload("alice", data, "support-chats.jsonl")
    uploaded(user, upload_id, "support-chats.jsonl")
    await see(user, "2 good rows, 1 bad")
    table = next(iter(user.find(marker="bad-lines").elements))
    assert table.rows == [{"line": 3, "message": "Missing field output"}]
    await see(user, marker="stats")
    name = next(iter(user.find(marker="dataset-name").elements))
    assert name.value == "support-chats"
    user.find(marker="save-skipping").click()
    await see(user, "2 rows · Alpaca · by alice")  # the new dataset's page
    await see(user, "Row 1")
    with session_scope() as session:
        dataset = session.exec(select(Dataset)).one()
        version = session.exec(select(DatasetVersion)).one()
    assert (dataset.name, version.rows, version.skipped, version.format) == ("support-chats", 2, 1, "alpaca")
    assert not uploads.upload_path(upload_id).exists()  # the upload became the dataset


async def test_a_file_with_no_usable_row_cannot_be_saved_and_csv_columns_can_be_mapped(user: User) -> None:
    await signed_up(user, "alice")
    await user.open("/datasets")
    user.find(marker="new-dataset").click()
    upload_id = finished_upload("alice", b"q,a\nhello,world\n", "pairs.csv")
    uploaded(user, upload_id, "pairs.csv")
    await see(user, "Nothing can be saved: no row is usable. Fix the file and drop it again.")
    await see(user, "Which column holds what?")
    next(iter(user.find(marker="map-instruction").elements)).set_value("q")
    next(iter(user.find(marker="map-output").elements)).set_value("a")
    user.find(marker="check-again").click()
    await see(user, "1 good rows, 0 bad")
    await see(user, marker="save-dataset")


async def test_csv_columns_can_be_changed_even_when_guessed(user: User) -> None:
    await signed_up(user, "alice")
    await user.open("/datasets")
    user.find(marker="new-dataset").click()
    upload_id = finished_upload("alice", b"question,answer,better_answer\nhello,hi,good day\n", "pairs.csv")
    uploaded(user, upload_id, "pairs.csv")
    await see(user, "1 good rows, 0 bad")
    await see(user, "Which column holds what?")  # shown though the guess worked
    assert next(iter(user.find(marker="map-instruction").elements)).value == "question"
    output = next(iter(user.find(marker="map-output").elements))
    assert output.value == "answer"
    output.set_value("better_answer")
    user.find(marker="check-again").click()
    await see(user, "good day")
    user.find(marker="save-dataset").click()
    await see(user, "1 rows · CSV · by alice")
    await see(user, "good day")


async def test_preview_pages_versions_and_deletion(user: User) -> None:
    await signed_up(user, "alice")
    await user.open("/datasets")
    user.find(marker="new-dataset").click()
    uploaded(user, finished_upload("alice", rows(25), "qa.jsonl"), "qa.jsonl")
    await see(user, "25 good rows, 0 bad")
    user.find(marker="validation-share").type("20")
    user.find(marker="save-dataset").click()
    await see(user, "25 rows · Alpaca · by alice")
    await see(user, "Row 1")
    with session_scope() as session:
        dataset = session.exec(select(Dataset)).one()
        assert session.exec(select(DatasetVersion)).one().validation_ratio == 0.2
    pager = next(iter(user.find(kind=ui.pagination).elements))
    pager.set_value(3)
    await see(user, "Row 21")
    await see(user, "Question 20")

    user.find(marker="new-version").click()
    uploaded(user, finished_upload("alice", rows(30), "qa-more.jsonl"), "qa-more.jsonl")
    await see(user, "30 good rows, 0 bad")
    user.find(marker="version-note").type("five more")
    user.find(marker="save-dataset").click()
    await see(user, "30 rows · Alpaca · by alice")
    table = next(iter(user.find(marker="versions").elements))
    assert [(r["version"], r["rows"], r["change"], r["note"]) for r in table.rows] == [
        (2, "30", "+5", "five more"), (1, "25", "", "")]

    user.find(marker="delete-dataset").click()
    await see(user, f"Delete {dataset.name} with all its versions?")
    user.find(marker="confirm-ok").click()
    await see(user, "No datasets yet.")


async def test_rows_removed_into_a_new_version(user: User) -> None:
    await signed_up(user, "alice")
    with session_scope() as session:
        path = uploads.uploads_dir() / "x.jsonl"
        path.write_bytes(rows(6) + rows(2))  # the last two repeat the first two
        dataset, _, _ = datasets.create_dataset(session, user=account("alice"), name="qa", source=path,
                                                source_name="x.jsonl")
        dataset_id = dataset.id
    await user.open(f"/datasets/{dataset_id}")
    await see(user, "8 rows · Alpaca · by alice")
    user.find(marker="remove-duplicates").click()
    await see(user, "Save a new version without the 2 repeated rows of version 1? Version 1 stays as it is.")
    user.find(marker="confirm-ok").click()
    await see(user, "6 rows · Alpaca · by alice")
    await user.should_not_see(marker="remove-duplicates")  # version 2 has none
    user.find(marker="remove-row-0").click()
    await see(user, "Save a new version without row 1 of version 2? Version 2 stays as it is.")
    user.find(marker="confirm-ok").click()
    await see(user, "5 rows · Alpaca · by alice")
    table = next(iter(user.find(marker="versions").elements))
    assert [(r["version"], r["rows"], r["change"]) for r in table.rows] == [(3, "5", "-1"), (2, "6", "-2"),
                                                                           (1, "8", "")]
    with session_scope() as session:
        stored = {v.version: v for v in session.exec(select(DatasetVersion)).all()}
    assert (stored[1].rows, stored[2].rows, stored[3].rows) == (8, 6, 5)
    assert len(datasets.version_file(stored[1]).read_bytes().splitlines()) == 8  # the first as it was
    with session_scope() as session:
        _, shown = datasets.preview(session, user=account("alice"), dataset_id=dataset_id, limit=10)
    assert [r["messages"][0]["content"] for r in shown] == [f"Question {i}" for i in range(1, 6)]

    # the statistics follow the version chosen above the rows
    next(iter(user.find(marker="preview-version").elements)).set_value(1)
    await see(user, "Version 1", marker="stats-version")
    await see(user, marker="remove-duplicates")  # version 1 has repeats


async def test_others_see_shared_datasets_only(user: User, create_user) -> None:
    await signed_up_then_out(user, "alice")
    bob = create_user()
    await signed_up(bob, "bob")
    with session_scope() as session:
        path = uploads.uploads_dir() / "x.jsonl"
        path.write_bytes(rows(3))
        private, _, _ = datasets.create_dataset(session, user=account("alice"), name="private", source=path,
                                                source_name="x.jsonl")
        shared, _, _ = datasets.create_dataset(session, user=account("alice"), name="team data", source=path,
                                               source_name="x.jsonl", shared=True)
        private_id, shared_id = private.id, shared.id
    await bob.open("/datasets")
    await see(bob, "team data")
    await bob.should_not_see("private")
    await bob.open(f"/datasets/{private_id}")
    await see(bob, "No such dataset")
    await bob.open(f"/datasets/{shared_id}")
    await see(bob, "Question 0")
    await bob.should_not_see(marker="delete-dataset")  # reading is shared, changing is not


async def test_exact_token_counts_on_the_statistics_tab(user: User, tmp_path) -> None:
    from tests.training.tiny import build_model

    model = build_model(tmp_path / "tiny")
    await signed_up(user, "alice")
    with session_scope() as session:
        path = uploads.uploads_dir() / "x.jsonl"
        path.write_bytes(rows(12))
        dataset, _, _ = datasets.create_dataset(session, user=account("alice"), name="qa", source=path,
                                                source_name="x.jsonl")
        dataset_id = dataset.id
    await user.open(f"/datasets/{dataset_id}")
    await see(user, "Tokens (estimated)")
    user.find(marker="tokenizer").type(str(model))
    user.find(marker="count-tokens").click()
    await see(user, f"Tokens counted with the tokenizer of {model}")
    await user.should_not_see("Tokens (estimated)")
    await see(user, "Rows by length (tokens)")
    await user.should_not_see("Rows by length (tokens, estimated)")
