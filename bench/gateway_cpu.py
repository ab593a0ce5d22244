"""The portal's own CPU time per gateway request and per relayed chunk (what `gateway.py`'s 50-stream runs pay
fifty times over on a shared CPU).

    .venv/bin/python bench/gateway_cpu.py          # prints JSON; not written to results/

Per request: sequential one-token streams (authentication, model resolution, the upstream request, the usage
row). Per chunk: one long unpaced stream, less one request's cost, over its chunks. CPU time is the portal
process's user + system time from /proc, less its idle rate (NiceGUI's timers), so the load generator and the
upstream do not count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway import one_stream, services

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


async def sequential(url: str, headers: dict[str, str], count: int) -> list[float]:
    ttfts = []
    for _ in range(count):
        ttfts.append((await one_stream(url, headers, "up/bench-model"))["ttft_ms"])
    return ttfts


def measure(*, tokens: int, count: int) -> dict[str, float]:
    with services(tokens=tokens, delay=0) as setup:
        asyncio.run(sequential(setup.gateway_url, setup.headers, 20))  # warm up
        time.sleep(0.5)
        idle_before = cpu_seconds(setup.portal_pid)
        time.sleep(2)
        idle_rate = (cpu_seconds(setup.portal_pid) - idle_before) / 2  # NiceGUI's own timers, with no request
        before, started = cpu_seconds(setup.portal_pid), time.perf_counter()
        ttfts = asyncio.run(sequential(setup.gateway_url, setup.headers, count))
        time.sleep(0.3)  # the usage rows written after the last answer
        wall = time.perf_counter() - started
        cpu = cpu_seconds(setup.portal_pid) - before - idle_rate * wall
    ttfts.sort()
    return {"cpu_ms_per_stream": round(cpu * 1000 / count, 3), "wall_s": round(wall, 2),
            "idle_cpu_pct": round(idle_rate * 100, 2),
            "ttft_p50_ms": round(ttfts[len(ttfts) // 2], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=5000, help="chunks of the long stream (0: none)")
    args = parser.parse_args()
    short = measure(tokens=1, count=args.requests)
    if not args.chunks:  # e.g. to profile the per-request work alone
        print(json.dumps({"per_request": short}))
        return
    long = measure(tokens=args.chunks, count=5)
    per_chunk_us = (long["cpu_ms_per_stream"] - short["cpu_ms_per_stream"]) * 1000 / args.chunks
    print(json.dumps({"per_request": short, "long_stream": long, "cpu_us_per_chunk": round(per_chunk_us, 1)}))


if __name__ == "__main__":
    main()
