"""Gateway overhead: time to first token and throughput through `/v1/chat/completions` against calling the same
local OpenAI-compatible upstream directly, at 1 and 50 concurrent streams.

    .venv/bin/python bench/gateway.py            # writes bench/results/gateway.json and gateway.md

Three processes: the fake upstream (tests/fakes, real HTTP on 127.0.0.1), the portal (`python main.py`), and
this load generator. Each stream asks for TOKENS chunks; the upstream paces them DELAY seconds apart (a model
generating ~1/DELAY tokens/s) or, with --delay 0, as fast as it can.
Budget (shared/DESIGN.md): ≤ 5 ms added to time to first token at p50, ≥ 95 % of direct throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

UPSTREAM = """
import socket, sys, time, types
sys.path.insert(0, {root!r})
import tests.fakes.server
from tests.fakes import reply, start_openai
# The fake binds a socket without IPPROTO_TCP, so asyncio leaves Nagle on for its connections: on a reused (keep-alive)
# connection each answer's first chunk then waits ~40 ms for a delayed ACK. Real servers set TCP_NODELAY.
tcp = types.ModuleType("socket")
tcp.__dict__.update(socket.__dict__)
tcp.socket = lambda family, kind: socket.socket(family, kind, socket.IPPROTO_TCP)
tests.fakes.server.socket = tcp
server = start_openai(models=["bench-model"], api_key=None, http="httptools")
server.script.set(reply(chunks=["tok "] * {tokens}, delay={delay}, usage=(10, {tokens})))
print(server.port, flush=True)
while True:
    time.sleep(3600)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url, timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


async def one_stream(url: str, headers: dict[str, str], model: str) -> dict[str, float]:
    """One streamed answer over a raw HTTP/1.0 connection: no client library between the measurement and the
    wire, and the same cost on both paths."""
    parsed = urlsplit(url)
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "go"}], "stream": True}).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST {parsed.path} HTTP/1.0\r\nHost: {parsed.netloc}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n{head}\r\n").encode() + body
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    writer.write(request)
    status = (await reader.readline()).decode()
    if " 200 " not in status:
        raise RuntimeError(f"{url}: {status.strip()} {(await reader.read()).decode()[:300]}")
    first = None
    tokens = 0
    while line := await reader.readline():
        if not line.startswith(b"data: {"):
            continue
        for choice in json.loads(line[6:]).get("choices", []):
            if choice["delta"].get("content"):
                tokens += 1
                if first is None:
                    first = time.perf_counter()
    ended = time.perf_counter()
    writer.close()
    return {"ttft_ms": ((first or ended) - started) * 1000, "total_s": ended - started, "tokens": tokens}


async def run(url: str, headers: dict[str, str], model: str, streams: int, rounds: int) -> dict[str, Any]:
    await one_stream(url, headers, model)  # warm up (the portal's connection to the upstream, its caches)
    ttfts: list[float] = []
    throughputs: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        results = await asyncio.gather(*(one_stream(url, headers, model) for _ in range(streams)))
        wall = time.perf_counter() - started
        ttfts += [r["ttft_ms"] for r in results]
        throughputs.append(sum(r["tokens"] for r in results) / wall)
    ttfts.sort()
    return {
        "ttft_p50_ms": round(statistics.median(ttfts), 2),
        "ttft_p95_ms": round(ttfts[int(0.95 * (len(ttfts) - 1))], 2),
        "tokens_per_s": round(statistics.median(throughputs), 1),
    }


@dataclass
class Services:
    direct_url: str  # the upstream's /v1/chat/completions
    gateway_url: str  # the portal's
    headers: dict[str, str]  # the portal's API token
    portal_pid: int


@contextlib.contextmanager
def services(*, tokens: int, delay: float) -> Iterator[Services]:
    """The fake upstream and the portal (with a provider for the upstream and an API token), stopped on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM.format(root=str(ROOT), tokens=tokens, delay=delay)],
                                stdout=subprocess.PIPE, text=True)
    upstream_port = int(upstream.stdout.readline())  # type: ignore[union-attr]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env.update(DATA_DIR=str(tmp / "data"), PORT=str(port), ADMIN_USERNAME="bench", ADMIN_PASSWORD="bench-password")
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
        env.pop(name, None)
    wrapper = os.environ.get("BENCH_PORTAL_WRAPPER", "").split()  # e.g. "py-spy record -o prof.svg --"
    portal = subprocess.Popen([*wrapper, sys.executable, "main.py"], cwd=ROOT, env=env,
                              stdout=(tmp / "portal.log").open("w"), stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/api/v1/health")
        access = httpx2.post(base + "/api/v1/auth/login",
                             json={"username": "bench", "password": "bench-password"}).json()["access_token"]
        auth = {"Authorization": f"Bearer {access}"}
        provider = httpx2.post(base + "/api/v1/providers", headers=auth, json={
            "name": "up", "kind": "openai", "base_url": f"http://127.0.0.1:{upstream_port}/v1"}).json()
        httpx2.post(f"{base}/api/v1/providers/{provider['id']}/sync", headers=auth, timeout=30).raise_for_status()
        token = httpx2.post(base + "/api/v1/auth/tokens", headers=auth, json={"name": "bench"}).json()["token"]
        yield Services(direct_url=f"http://127.0.0.1:{upstream_port}/v1/chat/completions",
                       gateway_url=base + "/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
                       portal_pid=portal.pid)
    finally:
        portal.send_signal(signal.SIGINT)  # as Ctrl-C: a profiler wrapper writes its output, uvicorn stops cleanly
        upstream.terminate()
        portal.wait(30)
        upstream.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between upstream chunks (0: unpaced)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--name", default="gateway", help="results file name")
    args = parser.parse_args()

    rows = []
    with services(tokens=args.tokens, delay=args.delay) as setup:
        for streams in args.streams:
            direct = asyncio.run(run(setup.direct_url, {}, "bench-model", streams, args.rounds))
            gateway = asyncio.run(run(setup.gateway_url, setup.headers, "up/bench-model", streams, args.rounds))
            rows.append({
                "streams": streams, "direct": direct, "gateway": gateway,
                "added_ttft_p50_ms": round(gateway["ttft_p50_ms"] - direct["ttft_p50_ms"], 2),
                "throughput_ratio": round(gateway["tokens_per_s"] / direct["tokens_per_s"], 3),
            })
            print(json.dumps(rows[-1]), flush=True)

    result = {
        "what": "gateway vs direct, OpenAI SSE, local fake upstream",
        "tokens_per_stream": args.tokens, "upstream_delay_s": args.delay, "rounds": args.rounds,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "budget": {"added_ttft_p50_ms": "<= 5", "throughput_ratio": ">= 0.95"},
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# {result['what']}", "", f"{args.tokens} tokens a stream, upstream delay {args.delay} s, "
             f"{args.rounds} rounds; {result['machine']}; {result['date']}.", "",
             "| streams | direct TTFT p50 | gateway TTFT p50 | added | direct tok/s | gateway tok/s | ratio |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row['streams']} | {row['direct']['ttft_p50_ms']} ms | {row['gateway']['ttft_p50_ms']} ms | "
                     f"{row['added_ttft_p50_ms']} ms | {row['direct']['tokens_per_s']} | "
                     f"{row['gateway']['tokens_per_s']} | {row['throughput_ratio']} |")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
