"""Dataset validation speed: rows per second through the one-pass reader on a million JSON lines, and its memory.

    .venv/bin/python bench/validate.py                 # writes bench/results/validate.json and validate.md
    .venv/bin/python bench/validate.py --rows 200000   # a quicker look

Each format is measured on generated rows of realistic size (an instruction of ~60 characters, an answer of
~200), written normalized to a file as a real upload would be. Budget (shared/DESIGN.md): ≥ 100k rows/s, memory
independent of the file's size (the only growth is the 8-byte duplicate fingerprint per row).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.services.dataset_formats import read_dataset  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WORDS = ["the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as", "with",
         "his", "they", "at", "be", "this", "from", "have", "or", "by"]


def sentence(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(WORDS))
    return " ".join(words)


def generate(path: Path, rows: int, kind: str, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as file:
        for i in range(rows):
            question, answer = f"{i}: " + sentence(rng, 60), sentence(rng, 200)
            if kind == "alpaca":
                record: dict = {"instruction": question, "input": "", "output": answer}
            elif kind == "openai":
                record = {"messages": [{"role": "user", "content": question},
                                       {"role": "assistant", "content": answer}]}
            else:
                record = {"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}
            file.write(json.dumps(record) + "\n")


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--name", default="validate")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("alpaca", "openai", "sharegpt"):
            source, target = Path(tmp) / f"{kind}.jsonl", Path(tmp) / f"{kind}.out.jsonl"
            generate(source, args.rows, kind)
            before = max_rss_mb()
            started = time.perf_counter()
            with target.open("wb") as out:
                report = read_dataset(source, out=out)
            seconds = time.perf_counter() - started
            assert report.rows == args.rows and report.error_count == 0, (report.rows, report.error_count)
            results.append({"format": kind, "rows": args.rows, "mb": round(source.stat().st_size / 1e6, 1),
                            "seconds": round(seconds, 2), "rows_per_s": round(args.rows / seconds),
                            "peak_rss_growth_mb": round(max_rss_mb() - before, 1)})
            print(results[-1], flush=True)
            source.unlink()
            target.unlink()
    meta = {"date": datetime.now(UTC).date().isoformat(), "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "results": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = ["# dataset validation: rows per second", "",
             f"{args.rows:,} generated JSON lines per format; {meta['machine']}, Python {meta['python']}; "
             f"{meta['date']}. Budget: ≥ 100,000 rows/s, memory flat.", "",
             "| format | file MB | seconds | rows/s | peak RSS growth MB |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['format']} | {r['mb']} | {r['seconds']} | {r['rows_per_s']:,} | {r['peak_rss_growth_mb']} |"
              for r in results]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
