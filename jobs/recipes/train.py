"""A training run: tokenizer and data, the model for the method, a `Trainer` with checkpoints, and the final output.

Used by the worker process (`jobs.worker`), the tests and the benchmark; it knows nothing of the database: progress
leaves through the callbacks the caller passes.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PrinterCallback, Trainer, TrainerCallback, TrainingArguments, set_seed

from jobs.recipes import prepare_model
from jobs.recipes.base import attention_implementation, trainable_parameters
from jobs.recipes.collate import PackedCollator, PaddedCollator
from jobs.recipes.data import Example, ensure_chat_template, load_examples, pack, padding_waste

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"  # the final LoRA / QLoRA adapter
MODEL = "model"  # the final weights of a full fine-tune
MERGED = "merged"  # a LoRA adapter merged into its base
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class RunSpec:
    method: str  # lora, qlora, full
    base_model: Path
    rows: Path  # a dataset version's normalized JSON lines
    output_dir: Path
    params: dict[str, Any]  # complete: defaults filled in (backend.services.training.clean_params)
    eval_ratio: float = 0.0
    split_seed: int = 0
    merge: bool = False
    resume: bool = False  # continue from the latest checkpoint in output_dir, when there is one


@dataclass
class RunResult:
    output: Path
    merged: Path | None
    step: int
    stopped: bool  # ended early (cancelled): the last checkpoint is where a resume continues
    notes: list[str] = field(default_factory=list)


def checkpoints_of(output_dir: Path) -> list[tuple[int, Path]]:
    """The checkpoints on disk, oldest first."""
    folder = output_dir / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    # A checkpoint is complete once its trainer state is written (the last file the Trainer saves).
    return sorted((step, path) for step, path in found if (path / "trainer_state.json").exists())


def precision() -> tuple[torch.dtype, bool]:
    """(dtype to load weights in, whether to train in bf16): bf16 where the GPU supports it, else fp32."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16, True
    return torch.float32, False


def datasets_for(spec: RunSpec, tokenizer: Any) -> tuple[list[Any], list[Any], Any, list[str]]:
    params = spec.params
    train, evaluation, report = load_examples(spec.rows, tokenizer, max_length=int(params["max_length"]),
                                              eval_ratio=spec.eval_ratio, seed=spec.split_seed)
    notes = [f"data: {report.rows} rows, {report.train} for training and {report.eval} for evaluation, "
             f"{report.tokens} tokens; {report.truncated} cut to max_length"]
    if report.without_targets:
        notes.append(f"data: {report.without_targets} rows left out: nothing to learn (no assistant turn within "
                     "max_length)")
    if report.whole_rows:
        notes.append(f"data: {report.whole_rows} rows learned whole: the chat template does not render turn by turn")
    if not train:
        raise ValueError("No training rows left: every row was empty or had no assistant turn within max_length")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if params["packing"]:
        capacity = int(params["max_length"])
        packed_train, packed_eval = pack(train, capacity=capacity), pack(evaluation, capacity=capacity)
        waste = padding_waste(train, batch_size=int(params["batch_size"]))
        # flash-attn reads the examples of a single flattened row; sdpa and eager get a row per bin.
        flatten = attention_implementation() == "flash_attention_2"
        filled = sum(len(b["input_ids"]) for b in packed_train) / max(len(packed_train) * capacity, 1)
        notes.append(f"packing: {len(train)} examples in {len(packed_train)} bins of at most {capacity} tokens "
                     f"({filled:.0%} full), "
                     + ("a batch flattened into one row" if flatten else "a row per bin")
                     + f" (a padded batch would be {waste:.0%} padding)")
        return packed_train, packed_eval, PackedCollator(pad_token_id=int(pad), flatten=flatten), notes
    as_dicts = [{"input_ids": e.input_ids, "labels": e.labels} for e in train]
    eval_dicts = [{"input_ids": e.input_ids, "labels": e.labels} for e in evaluation]
    return as_dicts, eval_dicts, PaddedCollator(pad_token_id=int(pad)), notes


def training_arguments(spec: RunSpec, *, bf16: bool, has_eval: bool) -> TrainingArguments:
    params = spec.params
    max_steps = int(params.get("max_steps") or 0)
    return TrainingArguments(
        output_dir=str(spec.output_dir / CHECKPOINTS),
        max_steps=max_steps if max_steps > 0 else -1,
        num_train_epochs=float(params["epochs"]),
        learning_rate=float(params["learning_rate"]),
        per_device_train_batch_size=int(params["batch_size"]),
        per_device_eval_batch_size=int(params["batch_size"]),
        gradient_accumulation_steps=int(params["grad_accum"]),
        warmup_steps=float(params["warmup_ratio"]),  # a float below 1 is a ratio of the total steps
        lr_scheduler_type=str(params["scheduler"]),
        seed=int(params["seed"]),
        data_seed=int(params["seed"]),
        save_strategy="steps",
        save_steps=int(params["save_steps"]),
        save_total_limit=int(params["save_total_limit"]),
        eval_strategy="steps" if has_eval else "no",
        eval_steps=int(params["save_steps"]) if has_eval else None,
        logging_steps=int(params["logging_steps"]),
        logging_first_step=True,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=True,
        report_to="none",
    )


def run(spec: RunSpec, *, callbacks: list[TrainerCallback] | None = None) -> RunResult:
    """Train; returns where the adapter or weights are. A callback that stops training (cancel) gets a final
    checkpoint first, so that the run can be resumed from that step."""
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
    notes = []
    if not ensure_chat_template(tokenizer):
        notes.append("the base model has no chat template: ChatML is used")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_set, eval_set, collator, data_notes = datasets_for(spec, tokenizer)
    notes += data_notes
    for note in notes:
        log.info(note)

    dtype, bf16 = precision()
    set_seed(int(spec.params["seed"]))  # adapters are initialised before the Trainer seeds: the same seed, the same run
    # A full fine-tune keeps fp32 master weights and computes in bf16 (mixed precision); adapters train on a bf16 base.
    model = prepare_model(spec.method, spec.base_model, spec.params,
                          dtype=torch.float32 if spec.method == "full" else dtype)
    trainable, total = trainable_parameters(model)
    log.info("model: %s parameters, %s trainable (%.2f%%), %s, %s", f"{total:,}", f"{trainable:,}",
             100 * trainable / max(total, 1), dtype, "bf16 mixed precision" if bf16 else "fp32")

    args = training_arguments(spec, bf16=bf16, has_eval=bool(eval_set))
    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set or None,
                      data_collator=collator, processing_class=tokenizer, callbacks=callbacks or [])
    trainer.remove_callback(PrinterCallback)  # the caller's callbacks say what happens, in fewer lines
    resume_from = None
    if spec.resume and (found := checkpoints_of(spec.output_dir)):
        step, resume_from = found[-1]
        log.info("resuming from checkpoint %s (step %d): optimizer, scheduler and data order continue", resume_from,
                 step)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    stopped = state.global_step < state.max_steps

    if stopped:
        log.info("stopped at step %d of %d", state.global_step, state.max_steps)
        return RunResult(output=spec.output_dir / CHECKPOINTS, merged=None, step=state.global_step, stopped=True,
                         notes=notes)
    output = spec.output_dir / (MODEL if spec.method == "full" else ADAPTER)
    trainer.save_model(str(output))
    tokenizer.save_pretrained(output)
    log.info("saved the %s to %s", "model" if spec.method == "full" else "adapter", output)
    merged = None
    if spec.merge and spec.method != "full":
        from jobs.recipes.lora import merge_adapter

        merged = merge_adapter(spec.base_model, output, spec.output_dir / MERGED)
        log.info("merged the adapter into its base: %s", merged)
    return RunResult(output=output, merged=merged, step=state.global_step, stopped=False, notes=notes)


def total_steps_estimate(examples: int, *, params: dict[str, Any]) -> int:
    """Steps the run will take, for the queue before the worker knows exactly."""
    max_steps = int(params.get("max_steps") or 0)
    if max_steps > 0:
        return max_steps
    per_epoch = math.ceil(max(examples, 1) / int(params["batch_size"]) / int(params["grad_accum"]))
    return max(1, math.ceil(per_epoch * float(params["epochs"])))


__all__ = ["Example", "RunResult", "RunSpec", "checkpoints_of", "run"]
