"""Core REST endpoints under 200 concurrent clients: latency percentiles and errors.

A real portal (`python main.py`, SQLite, its own DATA_DIR) is started; 20 users are registered, each with 10
conversations and 5 prompt templates. Then 200 clients, each with its own keep-alive connection and one of the users'
access tokens, call a mix of the endpoints a page or a script reads all day (`/users/me`, `/models`,
`/conversations`, one conversation, `/prompts`, `/datasets`, `/training/jobs`, `/users/me/limits`), in two ways:

- paced: every client sends a request on average once a second (exponential gaps), as 200 people working would;
  the budget (shared DESIGN.md: p95 ≤ 50 ms, no errors) is read here;
- saturated: every client sends its next request as soon as the last one answered; the portal's capacity (requests
  per second) and the latency when 200 requests always wait.

The load generator speaks raw HTTP/1.1 over asyncio streams in its own process, so that its cost stays small and
apart from the portal's. Results: bench/results/rest.{json,md}.

    .venv/bin/python bench/rest.py [--clients 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from upload import RESULTS, portal, rss_mb  # the same portal start as the upload bench

USERS = 20
PASSWORD = "bench-password-1"


class Connection:
    """One keep-alive HTTP/1.1 connection with JSON bodies."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        reused = self.writer is not None
        try:
            return await self._request(method, path, token, body)
        except (ConnectionError, EOFError):
            if not reused:
                raise
            # The server closed an idle keep-alive connection (uvicorn's keep-alive timeout, 5 s): a browser or HTTP
            # client opens a new one and sends again; so does this one.
            self.close()
            return await self._request(method, path, token, body)

    async def _request(self, method: str, path: str, token: str | None, body: Any) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        payload = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(payload)}"]
        if token:
            head.append(f"Authorization: Bearer {token}")
        if body is not None:
            head.append("Content-Type: application/json")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise EOFError("the server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        data = await self.reader.readexactly(length) if length else b""
        return status, (json.loads(data) if data else None)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def seed(host: str, port: int) -> list[tuple[str, list[int]]]:
    """Register the users, give each conversations and prompts; returns (access token, conversation ids) each."""
    connection = Connection(host, port)
    users: list[tuple[str, list[int]]] = []
    for number in range(USERS):
        name = f"user{number}"
        status, _ = await connection.request("POST", "/api/v1/auth/register", body={"username": name,
                                                                                     "password": PASSWORD})
        assert status == 201, status
        status, login = await connection.request("POST", "/api/v1/auth/login", body={"username": name,
                                                                                      "password": PASSWORD})
        assert status == 200, status
        token = login["access_token"]
        conversations = []
        for index in range(10):
            status, made = await connection.request("POST", "/api/v1/conversations", token,
                                                    {"title": f"Conversation {index} of {name}"})
            assert status == 201, status
            conversations.append(made["id"])
        for index in range(5):
            status, _ = await connection.request("POST", "/api/v1/prompts", token, {
                "name": f"Template {index}", "messages": [{"role": "user", "content": "Explain {{ topic }}"}]})
            assert status == 201, status
        users.append((token, conversations))
    connection.close()
    return users


def endpoints(conversations: list[int]) -> list[str]:
    return ["/api/v1/users/me", "/api/v1/models", "/api/v1/conversations",
            f"/api/v1/conversations/{random.choice(conversations)}", "/api/v1/prompts", "/api/v1/datasets",
            "/api/v1/training/jobs", "/api/v1/users/me/limits"]


async def client(host: str, port: int, token: str, conversations: list[int], *, until: float, pace: float | None,
                 latencies: dict[str, list[float]], errors: list[str]) -> None:
    connection = Connection(host, port)
    try:
        if pace:
            await asyncio.sleep(random.uniform(0, pace))  # the clients do not start in step
        while time.perf_counter() < until:
            path = random.choice(endpoints(conversations))
            started = time.perf_counter()
            try:
                status, _ = await connection.request("GET", path, token)
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                errors.append(f"{path}: {error!r}")
                connection.close()
                connection = Connection(host, port)
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                errors.append(f"{path}: {status}")
            key = path if not path.startswith("/api/v1/conversations/") else "/api/v1/conversations/{id}"
            latencies.setdefault(key, []).append(elapsed)
            if pace:
                await asyncio.sleep(random.expovariate(1 / pace))
    finally:
        connection.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


async def load(host: str, port: int, users: list[tuple[str, list[int]]], *, clients: int, seconds: float,
               pace: float | None) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {}
    errors: list[str] = []
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(client(host, port, *users[i % len(users)], until=until, pace=pace, latencies=latencies,
                                  errors=errors) for i in range(clients)))
    wall = time.perf_counter() - started
    every = [value for values in latencies.values() for value in values]
    return {
        "clients": clients, "pace_s": pace, "seconds": round(wall, 1), "requests": len(every),
        "requests_per_s": round(len(every) / wall, 1), "errors": len(errors), "error_samples": errors[:5],
        "p50_ms": round(percentile(every, 0.50), 1), "p95_ms": round(percentile(every, 0.95), 1),
        "p99_ms": round(percentile(every, 0.99), 1), "max_ms": round(max(every, default=0.0), 1),
        "mean_ms": round(statistics.fmean(every), 1) if every else 0.0,
        "by_endpoint": {path: {"requests": len(values), "p50_ms": round(percentile(values, 0.5), 1),
                               "p95_ms": round(percentile(values, 0.95), 1)}
                        for path, values in sorted(latencies.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--pace", type=float, default=1.0, help="mean seconds between a paced client's requests")
    parser.add_argument("--name", default="rest")
    args = parser.parse_args()

    with portal() as (address, pid, _tmp):
        host, port = address.split(":")
        users = asyncio.run(seed(host, int(port)))
        rss_before = rss_mb(pid)
        paced = asyncio.run(load(host, int(port), users, clients=args.clients, seconds=args.seconds,
                                 pace=args.pace))
        saturated = asyncio.run(load(host, int(port), users, clients=args.clients, seconds=args.seconds, pace=None))
        rss_after = rss_mb(pid)

    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_average": round(os.getloadavg()[0], 1),
        "users": USERS, "portal_rss_mb": [round(rss_before, 1), round(rss_after, 1)],
        "paced": paced, "saturated": saturated,
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = []
    for label, run in (("paced (a request a second each)", paced), ("saturated (next request at once)", saturated)):
        rows.append(f"| {label} | {run['requests']} | {run['requests_per_s']} | {run['p50_ms']} | {run['p95_ms']} | "
                    f"{run['p99_ms']} | {run['max_ms']} | {run['errors']} |")
    endpoint_rows = [f"| `{path}` | {figures['requests']} | {figures['p50_ms']} | {figures['p95_ms']} |"
                     for path, figures in paced["by_endpoint"].items()]
    (RESULTS / f"{args.name}.md").write_text("\n".join([
        f"# Core REST endpoints at {args.clients} concurrent clients", "",
        f"{result['date']}, {result['machine']}, Python {result['python']}, load average {result['load_average']}; "
        f"SQLite; {USERS} users with 10 conversations and 5 prompts each; `bench/rest.py --clients {args.clients} "
        f"--seconds {args.seconds:g}`. Budget: p95 ≤ 50 ms, no errors (read on the paced run).", "",
        "| run | requests | requests/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *rows, "",
        "Paced run by endpoint:", "",
        "| endpoint | requests | p50 ms | p95 ms |", "| --- | ---: | ---: | ---: |", *endpoint_rows, "",
        f"Portal memory: {result['portal_rss_mb'][0]} MB before the runs, {result['portal_rss_mb'][1]} MB after.", ""]))


if __name__ == "__main__":
    main()
