"""Training throughput: the portal's default recipe (LoRA, padding-free packing with position ids restarting per
sample) against plain padded `Trainer` + PEFT LoRA, on the same synthetic variable-length data.

    python bench/train_throughput.py                      # Qwen2.5-0.5B shape, lengths median 256 up to 2048 (GPU)
    python bench/train_throughput.py --config small       # a small shape and short lengths that a CPU can run

The model is built from its config with random weights (nothing is downloaded): throughput does not depend on
the weights. Lengths are log-normal (median `--median`, up to `--max-length`). Every variant trains LoRA (rank 16 on
every linear layer) with the same optimizer, `--batch-size` rows of at most `--max-length` tokens a step:

- `packed`: the default recipe (jobs.recipes: best-fit-decreasing bins of at most max_length tokens, a row per bin
  with its tail padded as a sequence of its own under sdpa; one flattened row a batch under flash-attn);
- `padded-max`: the plain way, every sample padded to max_length (`padding="max_length"`) with an attention mask;
- `padded-longest`: padded to the longest sample of each batch (dynamic padding), a stronger baseline.

Tokens/s counts real tokens only (no padding). Model FLOPs count the useful work of LoRA per real token: 2·N
forward and 2·N for the activations' gradients through the frozen weights (they get no weight gradients), 6 per
adapter parameter, and 6·L·d·len for causal attention over the token's own sample (its forward and both backward
products); not the 6·N of a full fine-tune, which would overstate LoRA's work by half. MFU is that against the
device's peak (`--peak-tflops`, or the known bf16 dense peak of an H100/H200/A100; none on a CPU, where MFU is left
out). The attention implementation the models ran with is recorded. Results go to
bench/results/train_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import PrinterCallback, Qwen2Config, Qwen2ForCausalLM, Trainer, TrainerCallback  # noqa: E402

from backend.services.training import default_params  # noqa: E402
from jobs.recipes import lora  # noqa: E402
from jobs.recipes.base import trainable_parameters  # noqa: E402
from jobs.recipes.collate import PackedCollator, PaddedCollator  # noqa: E402
from jobs.recipes.data import Example, pack  # noqa: E402
from jobs.recipes.train import RunSpec, precision, training_arguments  # noqa: E402

RESULTS = ROOT / "bench" / "results"

CONFIGS: dict[str, dict[str, Any]] = {
    # Qwen2.5-0.5B's shape (config.json of the model): 494M parameters.
    "qwen2.5-0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                     "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
                     "tie_word_embeddings": True, "max_position_embeddings": 32768, "rope_theta": 1_000_000.0},
    # Small enough for a 2-core CPU: the same architecture, narrower and shallower.
    "small": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 8192, "tie_word_embeddings": True,
              "max_position_embeddings": 4096},
}
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "4090": 165.0}
PAD = 0


def lengths(count: int, *, median: int, max_length: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [max(8, min(max_length, round(rng.lognormvariate(math.log(median), 0.8)))) for _ in range(count)]


def examples_of(sizes: list[int], *, vocab: int, seed: int) -> list[Example]:
    rng = random.Random(seed + 1)
    out = []
    for size in sizes:
        ids = [rng.randrange(1, vocab) for _ in range(size)]
        out.append(Example(ids, list(ids)))
    return out


class StepTimer(TrainerCallback):
    """Times the steps after the warm-up ones and counts the real tokens they trained on."""

    def __init__(self, warmup: int, counts: list[int]) -> None:
        self.warmup = warmup
        self.counts = counts  # real tokens of each step, in order (filled by the collator wrapper)
        self.start: float | None = None
        self.end = 0.0
        self.steps = 0
        self.first = self.last = 0  # the batches of the timed steps (the loader may fetch one ahead: both shift)

    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._sync()
        if state.global_step == self.warmup:
            self.start = time.perf_counter()
            self.first = len(self.counts)
        elif state.global_step > self.warmup:
            self.end = time.perf_counter()
            self.steps = state.global_step - self.warmup
            self.last = len(self.counts)


class Counting:
    """Wraps a collator: remembers how many real (non-padding) tokens each batch has."""

    def __init__(self, collator: Any, counts: list[int]) -> None:
        self.collator = collator
        self.counts = counts

    def __call__(self, features: list[Any]) -> dict[str, torch.Tensor]:
        batch = self.collator(features)
        real = sum(sum(f["attention_mask"]) if "attention_mask" in f else len(f["input_ids"]) for f in features)
        self.counts.append(real)
        return batch


def lora_flops_per_token(sizes: list[int], *, frozen: int, trainable: int, layers: int, hidden: int) -> float:
    """Useful FLOPs per real token of a LoRA step, averaged over the samples: 4 per frozen weight (forward, and the
    gradient of the activations; no weight gradient), 6 per adapter weight, 6·L·d·len for causal attention over the
    token's own sample (QKᵀ and AV forward, twice that backward, half the square: causal)."""
    mean_sq = sum(n * n for n in sizes) / len(sizes)
    mean = sum(sizes) / len(sizes)
    return 4 * frozen + 6 * trainable + 6 * layers * hidden * mean_sq / mean


def run_variant(name: str, model_dir: Path, examples: list[Example], args: argparse.Namespace,
                params: dict[str, Any]) -> dict[str, Any]:
    torch.manual_seed(0)
    dtype, bf16 = precision()
    model = lora.prepare(model_dir, params, dtype=dtype)
    attention = str(model.config._attn_implementation)
    trainable, total = trainable_parameters(model)
    max_length = args.max_length
    dataset: list[Any]
    if name == "packed":
        dataset = pack(examples, capacity=max_length)
        collator: Any = PackedCollator(pad_token_id=PAD, flatten=attention == "flash_attention_2")
    elif name == "padded-max":
        dataset = [{"input_ids": e.input_ids + [PAD] * (max_length - len(e)),
                    "labels": e.labels + [-100] * (max_length - len(e)),
                    "attention_mask": [1] * len(e) + [0] * (max_length - len(e))} for e in examples]

        def collator(features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
            return {key: torch.tensor([f[key] for f in features]) for key in features[0]}
    else:
        dataset = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
        collator = PaddedCollator(pad_token_id=PAD)
    counts: list[int] = []
    timer = StepTimer(args.warmup, counts)
    steps = args.warmup + args.steps
    spec = RunSpec(method="lora", base_model=model_dir, rows=model_dir, output_dir=Path(tempfile.mkdtemp()),
                   params=params | {"max_steps": steps, "save_steps": 10**6, "logging_steps": 10**6})
    training_args = training_arguments(spec, bf16=bf16, has_eval=False)
    training_args.save_strategy = "no"
    training_args.include_num_input_tokens_seen = "no"
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset, data_collator=Counting(collator, counts),
                      callbacks=[timer])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    timed = counts[timer.first:timer.last]
    seconds = timer.end - (timer.start or timer.end)
    tokens = sum(timed)
    del trainer, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"variant": name, "attention": attention, "rows_per_step": 1 if getattr(collator, "flatten", False)
            else args.batch_size, "batches": len(dataset), "timed_steps": timer.steps, "seconds": seconds,
            "tokens": tokens, "tokens_per_s": tokens / seconds if seconds else 0.0,
            "trainable_parameters": trainable, "frozen_parameters": total - trainable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=list(CONFIGS), default="qwen2.5-0.5b")
    parser.add_argument("--median", type=int)
    parser.add_argument("--max-length", type=int)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, help="the device's peak (bf16 dense) for MFU")
    parser.add_argument("--variants", default="packed,padded-max,padded-longest")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every variant, interleaved; best kept")
    parser.add_argument("--out", default="train_throughput")
    args = parser.parse_args()
    small = args.config == "small"
    args.median = args.median or (64 if small else 256)
    args.max_length = args.max_length or (512 if small else 2048)

    config = Qwen2Config(**CONFIGS[args.config], pad_token_id=PAD, eos_token_id=1)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or 'cpu'}, " \
        f"{torch.get_num_threads()} threads)"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if torch.cuda.is_available() and k in device),
                                    None)
    sizes = lengths(args.samples, median=args.median, max_length=args.max_length, seed=0)
    examples = examples_of(sizes, vocab=config.vocab_size, seed=0)
    params = default_params("lora") | {"batch_size": args.batch_size, "grad_accum": args.grad_accum,
                                       "max_length": args.max_length, "warmup_ratio": 0.0, "lora_dropout": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        model_dir = Path(folder) / args.config
        torch.manual_seed(0)
        base = Qwen2ForCausalLM(config)
        parameters = sum(p.numel() for p in base.parameters())
        base.save_pretrained(model_dir)
        del base
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.variants.split(",")}
        for round_ in range(args.repeats):  # interleaved, so that a busy moment of the machine hits all alike
            for name in runs:
                print(f"round {round_ + 1}: {name}…", flush=True)
                runs[name].append(run_variant(name, model_dir, examples, args, params))
        results = []
        for tries in runs.values():
            result = max(tries, key=lambda r: r["tokens_per_s"])
            result["all_tokens_per_s"] = [round(r["tokens_per_s"], 1) for r in tries]
            # Useful FLOPs per real token (the same samples feed every variant): see lora_flops_per_token.
            flops_per_token = lora_flops_per_token(sizes, frozen=result["frozen_parameters"],
                                                   trainable=result["trainable_parameters"],
                                                   layers=config.num_hidden_layers, hidden=config.hidden_size)
            result["flops_per_token"] = flops_per_token
            result["model_tflops"] = result["tokens_per_s"] * flops_per_token / 1e12
            result["mfu"] = result["model_tflops"] / peak if peak else None
            results.append(result)
            print(json.dumps(result), flush=True)
    baseline = next((r for r in results if r["variant"] == "padded-max"), None)
    for result in results:
        result["speedup_vs_padded_max"] = (result["tokens_per_s"] / baseline["tokens_per_s"]
                                           if baseline and baseline["tokens_per_s"] else None)
    report = {
        "bench": "train_throughput", "config": args.config, "parameters": parameters, "device": device,
        "torch": torch.__version__, "dtype": str(precision()[0]), "peak_tflops": peak,
        "attention": sorted({r["attention"] for r in results}), "repeats": args.repeats,
        "flops": "LoRA: 4·N frozen + 6·N adapter + 6·L·d·len attention, per real token",
        "lengths": {"distribution": "log-normal, sigma 0.8", "median": args.median, "max": args.max_length,
                    "mean": sum(sizes) / len(sizes), "samples": len(sizes)},
        "batch_size": args.batch_size, "grad_accum": args.grad_accum, "timed_steps": args.steps,
        "warmup_steps": args.warmup, "lora_rank": params["lora_rank"], "results": results,
        "command": "python bench/train_throughput.py " + " ".join(sys.argv[1:]),
        "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    packed_run = next((r for r in results if r["variant"] == "packed"), None)
    packed_layout = ("one flattened row a step" if packed_run and packed_run["rows_per_step"] == 1
                     else f"{args.batch_size} rows of one bin each")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Training throughput ({args.config}, {device})", "",
             f"`{report['command']}` — {report['time']}; {parameters:,} parameters, {report['dtype']}, LoRA rank "
             f"{params['lora_rank']} on every linear layer; lengths log-normal, median {args.median}, max "
             f"{args.max_length} (mean {report['lengths']['mean']:.0f}); {args.batch_size} rows of at most "
             f"{args.max_length} tokens a step; {args.steps} timed steps after {args.warmup} warm-up steps; attention "
             f"{', '.join(report['attention'])} (packed: {packed_layout}); model FLOPs per real token "
             f"4·N frozen + 6·N adapter + 6·L·d·len (LoRA); best of {args.repeats} interleaved rounds (all rounds in "
             "the JSON).", "",
             "| variant | real tokens/s | × padded-max | model TFLOP/s | MFU | every round |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        speedup = f"{r['speedup_vs_padded_max']:.2f}" if r["speedup_vs_padded_max"] else "—"
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "— (no peak for a CPU)"
        rounds = ", ".join(f"{t:,.0f}" for t in r["all_tokens_per_s"])
        lines.append(f"| {r['variant']} | {r['tokens_per_s']:,.0f} | {speedup} | {r['model_tflops']:.3f} | {mfu} | "
                     f"{rounds} |")
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
