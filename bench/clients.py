"""Connected browser clients held by one portal process, and the portal's memory per client.

A real portal (`python main.py`, SQLite, its own DATA_DIR) is started and its admin signed in once in headless
Chromium (Debian's `chromium`, driven by Playwright) to get a signed-in browser cookie. Then `--clients` page clients
are opened the way a browser opens them: the page (`/chat` by default) is fetched with that cookie, and a socket.io
connection makes the page's handshake, each its own client of the portal, all held open together. The portal's
resident memory is read every `--step` clients; at the end every client must still answer, and the memory after
they have all gone is read too. Results: bench/results/clients.{json,md}.

    .venv/bin/python bench/clients.py [--clients 200] [--page /chat]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import socketio
from upload import RESULTS, portal, rss_mb  # the same portal start as the upload bench
from yarl import URL

ADMIN = ("bench", "bench-password")  # the admin upload.portal() creates
_QUERY = re.compile(r"query:\s*(\{.*?\}),\s*\n")


def signed_in_cookies(base_url: str) -> dict[str, str]:
    """Sign the admin in through the login page in headless Chromium; the browser's cookies."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("Debian's chromium is needed (make browser)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--headless=new", "--no-sandbox"])
        page = browser.new_page()
        page.goto(base_url + "/login")
        page.get_by_label("Username").fill(ADMIN[0])
        page.get_by_label("Password").fill(ADMIN[1])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(base_url + "/")
        cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
        browser.close()
    return cookies


async def open_client(session: aiohttp.ClientSession, base_url: str, path: str) -> tuple[socketio.AsyncClient, float]:
    """Fetch the page and connect its socket as the page's script does; returns the socket and the time taken."""
    started = time.perf_counter()
    async with session.get(base_url + path) as response:
        html = await response.text()
        if response.status != 200 or str(response.url).rstrip("/").endswith("/login"):
            raise RuntimeError(f"{path} answered {response.status} at {response.url}")
    match = _QUERY.search(html)
    if match is None:
        raise RuntimeError("no socket.io query in the page")
    query = ast.literal_eval(match.group(1))  # the template writes a Python dict
    query.update(document_id=os.urandom(8).hex(), tab_id=os.urandom(8).hex(), old_tab_id="")
    query = {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in query.items()}
    client = socketio.AsyncClient(reconnection=False)
    cookie = "; ".join(f"{key}={morsel.value}"
                       for key, morsel in session.cookie_jar.filter_cookies(URL(base_url)).items())
    await client.connect(base_url + "?" + "&".join(f"{k}={v}" for k, v in query.items()),
                         socketio_path="/_nicegui_ws/socket.io", transports=["websocket"],
                         headers={"Cookie": cookie}, wait_timeout=30)
    return client, (time.perf_counter() - started) * 1000


async def fill(session: aiohttp.ClientSession, base_url: str, pid: int, *, clients: int, step: int, path: str
               ) -> tuple[list[socketio.AsyncClient], list[float], list[dict[str, float]]]:
    """Open `clients` page clients, `step` at a time; the clients, how long each took to open, memory by step."""
    held: list[socketio.AsyncClient] = []
    open_ms: list[float] = []
    memory = [{"clients": 0, "rss_mb": round(rss_mb(pid), 1)}]
    while len(held) < clients:
        batch = await asyncio.gather(*(open_client(session, base_url, path)
                                       for _ in range(min(step, clients - len(held)))))
        held += [client for client, _ in batch]
        open_ms += [ms for _, ms in batch]
        await asyncio.sleep(1)
        memory.append({"clients": len(held), "rss_mb": round(rss_mb(pid), 1)})
    return held, open_ms, memory


async def leave(held: list[socketio.AsyncClient]) -> None:
    for client in held:
        await client.disconnect()
    await asyncio.sleep(12)  # NiceGUI deletes a disconnected page's client after its reconnect timeout


async def hold(base_url: str, pid: int, cookies: dict[str, str], *, clients: int, step: int, path: str
               ) -> dict[str, Any]:
    """Two rounds: `clients` held together, all gone, then as many again. CPython seldom gives freed memory back to
    the system, so the resident size stays up after the first round; the second round shows whether what the first
    one freed is used again (clients really deleted) or the portal grows by as much again (clients kept)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        session.cookie_jar.update_cookies(cookies)
        warm, _ = await open_client(session, base_url, path)  # the first page pays for imports and caches
        await asyncio.sleep(1)
        baseline = rss_mb(pid)
        held, open_ms, memory = await fill(session, base_url, pid, clients=clients, step=step, path=path)
        connected = sum(client.connected for client in held)
        await leave(held)
        after = rss_mb(pid)
        again, _, memory_again = await fill(session, base_url, pid, clients=clients, step=step, path=path)
        connected_again = sum(client.connected for client in again)
        await leave([warm, *again])
    held_mb = memory[-1]["rss_mb"] - baseline
    return {
        "clients": clients, "page": path, "connected_at_end": connected, "rss_baseline_mb": round(baseline, 1),
        "memory": memory, "mb_per_client": round(held_mb / clients, 2),
        "open_ms_p50": round(statistics.median(open_ms), 1),
        "open_ms_p95": round(sorted(open_ms)[int(0.95 * (len(open_ms) - 1))], 1),
        "rss_after_disconnect_mb": round(after, 1),
        "second_round": {"connected_at_end": connected_again, "memory": memory_again,
                         "growth_mb": round(memory_again[-1]["rss_mb"] - after, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--step", type=int, default=25, help="clients opened at once, memory read after each step")
    parser.add_argument("--page", default="/chat")
    parser.add_argument("--name", default="clients")
    args = parser.parse_args()

    with portal() as (address, pid, _tmp):
        base_url = f"http://{address}"
        cookies = signed_in_cookies(base_url)
        result = asyncio.run(hold(base_url, pid, cookies, clients=args.clients, step=args.step, path=args.page))
    result.update(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), python=platform.python_version(),
                  machine=f"{platform.machine()}, {os.cpu_count()} cores")
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    steps = " · ".join(f"{m['clients']}: {m['rss_mb']} MB" for m in result["memory"])
    (RESULTS / f"{args.name}.md").write_text("\n".join([
        f"# {args.clients} connected browser clients on `{args.page}`", "",
        f"{result['date']}, {result['machine']}, Python {result['python']}; SQLite; signed-in admin; "
        f"`bench/clients.py --clients {args.clients} --page {args.page}`. Budget: 200 held by one process, memory per "
        "client measured and reported.", "",
        "| clients held | still connected at the end | portal memory per client | page open p50 / p95 | portal RSS "
        "before → with all → after they left |",
        "| ---: | ---: | ---: | --- | --- |",
        f"| {args.clients} | {result['connected_at_end']} | {result['mb_per_client']} MB | {result['open_ms_p50']} / "
        f"{result['open_ms_p95']} ms | {result['rss_baseline_mb']} → {result['memory'][-1]['rss_mb']} → "
        f"{result['rss_after_disconnect_mb']} MB |", "",
        f"Portal memory by clients held: {steps}.", "",
        f"Second round, after all had left: {args.clients} clients again ({result['second_round']['connected_at_end']}"
        f" connected at the end), the portal grew by {result['second_round']['growth_mb']} MB more.", ""]))


if __name__ == "__main__":
    main()
