"""A tiny causal language model and its tokenizer, built here from a config (nothing is downloaded): a Qwen2 of about
a hundred thousand parameters with a word-level tokenizer trained on the sentences the tests use, and a ChatML chat
template. Also the small datasets the tests train on, written as a dataset version's normalized JSON lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlmodel import Session

from backend.models.dataset import Dataset, DatasetVersion
from backend.models.user import User

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]

FACTS = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("What is the capital of Japan?", "Tokyo is the capital of Japan."),
    ("What colour is the sky?", "The sky is blue on a clear day."),
    ("What do cats say?", "Cats say meow when they want food."),
    ("How many legs has a spider?", "A spider has eight legs."),
    ("What is two plus two?", "Two plus two is four."),
    ("Who wrote Hamlet?", "Shakespeare wrote Hamlet a long time ago."),
    ("What is water made of?", "Water is made of hydrogen and oxygen."),
]


def chat_rows(repeat: int = 1) -> list[dict[str, Any]]:
    rows = [{"messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": q},
                          {"role": "assistant", "content": a}]} for q, a in FACTS]
    return rows * repeat


def corpus() -> list[str]:
    words = [text for pair in FACTS for text in pair] + ["Answer briefly.", "system user assistant", "hello world"]
    return words


def build_tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    # Byte-level BPE, as Qwen and Llama 3 use: every text has tokens, and offsets map back to characters.
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>", additional_special_tokens=["<|im_start|>"])
    fast.chat_template = CHATML
    fast.save_pretrained(path)
    return fast


def build_model(path: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a tiny Qwen2 and its tokenizer to `path` (a base model directory)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(path)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True, initializer_range=0.3,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    Qwen2ForCausalLM(config).save_pretrained(path)
    return path


def write_dataset(session: Session, *, user: User, rows: list[dict[str, Any]], name: str = "facts",
                  validation_ratio: float = 0.0) -> DatasetVersion:
    """A dataset with one version whose normalized rows are `rows` (as the datasets service would store them)."""
    from backend.config import get_settings

    dataset = Dataset(user_id=user.id, name=name, format="openai", latest_version=1)  # type: ignore[arg-type]
    session.add(dataset)
    session.flush()
    relative = f"datasets/{dataset.id}/v1.jsonl"
    target = get_settings().data_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    version = DatasetVersion(dataset_id=dataset.id, version=1, path=relative, sha256="0" * 64,  # type: ignore[arg-type]
                             size=target.stat().st_size, format="openai", rows=len(rows),
                             validation_ratio=validation_ratio, split_seed=7)
    session.add(version)
    session.commit()
    return version


def finished_job(session: Session, *, user: User, base: Path, name: str = "Support bot v1",
                 method: str = "lora") -> int:
    """A job that succeeded, with what training leaves: a LoRA adapter on `base` (untrained: its B matrices are
    zero), or for "full" the model's own weights. What deploying needs, without a training run."""
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from backend.config import get_settings
    from backend.models.base import utcnow
    from backend.models.training import JobStatus, TrainingJob

    job = TrainingJob(user_id=user.id, name=name, base_model=str(base), base_model_path=str(base),  # type: ignore[arg-type]
                      method=method, status=JobStatus.succeeded, finished_at=utcnow())
    session.add(job)
    session.flush()
    job.output_dir = f"training/{job.id}"
    folder = get_settings().data_dir / job.output_dir
    if method == "full":
        shutil.copytree(base, folder / "final")
    else:
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                               LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
        model.save_pretrained(folder / "final")
    job.output_path = f"{job.output_dir}/final"
    session.add(job)
    session.commit()
    return job.id  # type: ignore[return-value]
