"""Resumable upload speed: 1 GB through the portal's tus endpoint on loopback, and the portal's memory meanwhile.

    .venv/bin/python bench/upload.py                  # writes bench/results/upload.json and upload.md
    .venv/bin/python bench/upload.py --mb 256         # a quicker look

Two processes: the portal (`python main.py`, SQLite, a fresh DATA_DIR) and this client, which creates a tus upload
and sends it in PATCH requests of CHUNK_MB through raw HTTP/1.1 (no client library between the measurement and the
wire). The portal's resident memory is sampled from /proc every 50 ms. Budget (shared/DESIGN.md): ≥ 150 MB/s on
loopback with flat server memory.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TUS = {"Tus-Resumable": "1.0.0"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def portal() -> Iterator[tuple[str, int, Path]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env.update(DATA_DIR=str(tmp / "data"), PORT=str(port), ADMIN_USERNAME="bench", ADMIN_PASSWORD="bench-password",
               MAX_UPLOAD_MB="100000")
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
        env.pop(name, None)
    process = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT, env=env,
                               stdout=(tmp / "portal.log").open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the portal did not start") from None
                time.sleep(0.2)
        yield f"127.0.0.1:{port}", process.pid, tmp
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def request(host: str, method: str, path: str, headers: dict[str, str], body: bytes | None = None
            ) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(host, timeout=120)
    connection.request(method, path, body=body, headers=headers)
    return connection.getresponse()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024, help="size of the upload")
    parser.add_argument("--chunk-mb", type=int, default=64, help="bytes per PATCH request")
    parser.add_argument("--name", default="upload")
    args = parser.parse_args()
    total = args.mb * 1024 * 1024
    block = os.urandom(4 * 1024 * 1024)  # what is sent, over and over: the client must not be the bottleneck

    with portal() as (host, pid, tmp):
        login = request(host, "POST", "/api/v1/auth/login", {"Content-Type": "application/json"},
                        json.dumps({"username": "bench", "password": "bench-password"}).encode())
        auth = {"Authorization": f"Bearer {json.loads(login.read())['access_token']}", **TUS}
        created = request(host, "POST", "/api/v1/uploads", {**auth, "Upload-Length": str(total)})
        location = created.getheader("Location")
        assert created.status == 201 and location, created.read()
        baseline = rss_mb(pid)
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(rss_mb(pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        offset = 0
        while offset < total:
            size = min(args.chunk_mb * 1024 * 1024, total - offset)
            connection = http.client.HTTPConnection(host, timeout=120)
            connection.putrequest("PATCH", location)
            for key, value in {**auth, "Upload-Offset": str(offset), "Content-Length": str(size),
                               "Content-Type": "application/offset+octet-stream"}.items():
                connection.putheader(key, value)
            connection.endheaders()
            sent = 0
            while sent < size:
                piece = block[: min(len(block), size - sent)]
                connection.send(piece)
                sent += len(piece)
            response = connection.getresponse()
            assert response.status == 204, (response.status, response.read())
            offset = int(response.getheader("Upload-Offset") or 0)
            connection.close()
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        stored = (tmp / "data" / "uploads" / location.rsplit("/", 1)[1]).stat().st_size
        assert stored == total, (stored, total)

    result = {
        "date": datetime.now(UTC).date().isoformat(), "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "mb": args.mb, "chunk_mb": args.chunk_mb,
        "seconds": round(seconds, 2), "mb_per_s": round(args.mb / seconds, 1),
        "portal_rss_before_mb": round(baseline, 1), "portal_rss_peak_mb": round(max(samples, default=baseline), 1),
        "portal_rss_growth_mb": round(max(samples, default=baseline) - baseline, 1),
    }
    print(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text("\n".join([
        "# dataset upload through tus", "",
        f"{args.mb} MB in PATCH requests of {args.chunk_mb} MB to a local portal (SQLite); {result['machine']}, "
        f"Python {result['python']}; {result['date']}. Budget: ≥ 150 MB/s, server memory flat.", "",
        "| MB | seconds | MB/s | portal RSS before | portal RSS peak | growth |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {args.mb} | {result['seconds']} | {result['mb_per_s']} | {result['portal_rss_before_mb']} MB | "
        f"{result['portal_rss_peak_mb']} MB | {result['portal_rss_growth_mb']} MB |", ""]))


if __name__ == "__main__":
    main()
