"""Dataset validation speed: rows per second through the one-pass reader on a million JSON lines, and its memory.

    .venv/bin/python bench/validate.py                           # writes bench/results/validate.json and validate.md
    .venv/bin/python bench/validate.py --sizes 50000 200000      # a quicker look

Each format is measured on generated rows of realistic size (an instruction of ~60 characters, an answer of
~200), written normalized to a file as a real upload would be. Every (format, size) runs in a fresh Python process
(ru_maxrss is a process's all-time peak: in one process only the first run could show growth), which first reads a
tiny file (imports, caches) and then measures how far the peak rises over the big one. Two sizes show how memory
follows the file. Budget (shared/DESIGN.md): ≥ 100k rows/s, memory independent of the file's size (the only growth
is the duplicate fingerprints, about 8.5 bytes a row).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import resource
import subprocess
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


def measure(source: Path, rows: int) -> dict:
    """In this (fresh) process: warm up on a tiny file, then read `source` once; speed and peak memory growth."""
    tiny = source.with_name("tiny.jsonl")
    with source.open("rb") as file:
        tiny.write_bytes(file.readline() * 1000)
    read_dataset(tiny, out=io.BytesIO())
    tiny.unlink()
    before = max_rss_mb()
    started = time.perf_counter()
    target = source.with_suffix(".out")
    with target.open("wb") as out:
        report = read_dataset(source, out=out)
    seconds = time.perf_counter() - started
    target.unlink()
    assert report.rows == rows and report.error_count == 0, (report.rows, report.error_count)
    return {"seconds": round(seconds, 2), "rows_per_s": round(rows / seconds), "rss_before_mb": round(before, 1),
            "peak_rss_growth_mb": round(max_rss_mb() - before, 1)}


def run_one(source: Path, rows: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", str(source), "--rows", str(rows)],
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--rows", type=int)  # with --measure
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's part
    parser.add_argument("--name", default="validate")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.rows)))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("alpaca", "openai", "sharegpt"):
            for rows in args.sizes:
                source = Path(tmp) / f"{kind}-{rows}.jsonl"
                generate(source, rows, kind)
                results.append({"format": kind, "rows": rows, "mb": round(source.stat().st_size / 1e6, 1),
                                **run_one(source, rows), "load_average": round(os.getloadavg()[0], 1)})
                print(results[-1], flush=True)
                source.unlink()
    small, large = min(args.sizes), max(args.sizes)
    per_row = {}
    for kind in ("alpaca", "openai", "sharegpt"):
        grow = {r["rows"]: r["peak_rss_growth_mb"] for r in results if r["format"] == kind}
        if large > small:
            per_row[kind] = round((grow[large] - grow[small]) * 1024 * 1024 / (large - small), 1)
    meta = {"date": datetime.now(UTC).date().isoformat(), "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "results": results,
            "bytes_per_extra_row": per_row}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = ["# dataset validation: rows per second, and memory against file size", "",
             f"Generated JSON lines; each (format, size) in a fresh process; {meta['machine']}, Python "
             f"{meta['python']}; {meta['date']}. Budget: ≥ 100,000 rows/s, memory independent of the file's size.",
             "", "| format | rows | file MB | seconds | rows/s | peak RSS growth MB | load average (1 min) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['format']} | {r['rows']:,} | {r['mb']} | {r['seconds']} | {r['rows_per_s']:,} | "
              f"{r['peak_rss_growth_mb']} | {r['load_average']} |" for r in results]
    if per_row:
        lines += ["", f"Memory growth from {small:,} to {large:,} rows, per extra row (the duplicate fingerprints): "
                  + ", ".join(f"{k} {v} B" for k, v in per_row.items()) + "."]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
