"""Exact token counts of a dataset version, with the tokenizer of a local base model (the estimate from UTF-8 bytes
is what a version has until then). The counts are kept with the version's statistics."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from backend.errors import Invalid
from backend.models.user import User
from backend.services import audit, datasets, training
from backend.services.dataset_formats import HISTOGRAM_EDGES

BATCH = 512  # rows tokenized at once (fast tokenizers work on batches in Rust)


def count_tokens(session: Session, *, user: User, dataset_id: int, base_model: str, version: int | None = None,
                 ip: str | None = None) -> dict[str, Any]:
    """Tokenize every row as training would see it (the chat template applied to conversations) and store the counts
    with the version. Returns the new statistics. Storing changes the dataset: its owner (or an admin) only."""
    datasets.owned_dataset(session, user=user, dataset_id=dataset_id)
    found = datasets.get_version(session, user=user, dataset_id=dataset_id, version=version)
    path = training.resolve_base_model(base_model)
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as error:
        raise Invalid("The tokenizer of {model} could not be loaded: {reason}", model=base_model,
                      reason=str(error)[:300]) from error
    histogram = [0] * (len(HISTOGRAM_EDGES) + 1)
    total = longest = rows = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal total, longest, rows
        if not batch:
            return
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            count = len(ids)
            total += count
            longest = max(longest, count)
            rows += 1
            bucket = 0
            while bucket < len(HISTOGRAM_EDGES) and count >= HISTOGRAM_EDGES[bucket]:
                bucket += 1
            histogram[bucket] += 1
        batch.clear()

    for row in datasets.iter_rows(datasets.version_file(found)):
        if "messages" in row and getattr(tokenizer, "chat_template", None):
            batch.append(str(tokenizer.apply_chat_template(row["messages"], tokenize=False)))
        elif "messages" in row:
            batch.append("\n".join(m["content"] for m in row["messages"]))
        else:
            batch.append(row["text"])
        if len(batch) >= BATCH:
            flush()
    flush()
    stats = dict(found.stats)
    stats.update(tokens=total, tokens_estimated=False, tokenizer=base_model, max_tokens=longest,
                 mean_tokens=round(total / rows, 1) if rows else 0,
                 histogram={"edges": list(HISTOGRAM_EDGES), "counts": histogram})
    found.stats = stats
    session.add(found)
    audit.record(session, action="dataset.tokens", user=user, target=f"dataset:{dataset_id}", ip=ip,
                 detail={"version": found.version, "base_model": base_model, "tokens": total})
    session.commit()
    return stats
