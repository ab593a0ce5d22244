"""Training in a real browser against the real portal, its queue and a real worker: the wizard queues a LoRA run of
a tiny model, the run trains to the end, and the list, the wizard and the job page are screenshot at desktop and
phone width."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Portal
from tests.e2e.helpers import VIEWPORTS, api, assert_screenshot, settle, signed_in_admin
from tests.training.tiny import build_model, chat_rows

RUN_TIMEOUT_MS = 180_000  # a worker imports torch on 2 cores, then trains 60 tiny steps
DEPLOY_TIMEOUT_MS = 120_000  # the server merges the adapter, then imports transformers and loads the model


def upload_dataset(portal: Portal, token: str) -> int:
    rows = b"".join(json.dumps(row).encode() + b"\n" for row in chat_rows(repeat=2))
    response = httpx.post(portal.url("/api/v1/datasets"), headers={"Authorization": f"Bearer {token}"},
                          data={"name": "facts"}, files={"file": ("facts.jsonl", rows, "application/json")},
                          timeout=30)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def no_overflow(page: Any, what: str, width: int) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the {what} is {overflow} px too wide at {width} px"


def charts_drawn(page: Any, count: int = 4) -> None:
    """ECharts draws on canvases: wait until every chart has one with a size."""
    page.wait_for_function(f"""() => {{
        const canvases = [...document.querySelectorAll('canvas')].filter(c => c.width > 0 && c.height > 0);
        return canvases.length >= {count};
    }}""")


def test_a_job_from_the_wizard_trains_to_the_end(portal: Portal, browser: Any, screenshots_dir: Path,
                                                 tmp_path: Path) -> None:
    model = build_model(tmp_path / "tiny-qwen2")
    token = api(portal, "POST", "/api/v1/auth/login",
                {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})["access_token"]
    dataset = upload_dataset(portal, token)
    shots = []

    with signed_in_admin(browser, portal, VIEWPORTS[0][1]) as page:
        page.set_default_timeout(20_000)
        page.goto(portal.url("/training"))
        page.get_by_text("No training jobs yet.").wait_for()
        page.get_by_role("button", name="New job").click()
        page.get_by_label("Base model").fill(str(model))
        page.get_by_role("button", name="Check").click()
        page.get_by_text(re.compile(r"qwen2 · .* parameters")).wait_for()
        page.get_by_label("Dataset", exact=True).click()
        page.get_by_role("option", name=f"facts (#{dataset})").click()
        page.get_by_role("button", name="Quick try").click()
        page.get_by_label("Job name").fill("tiny facts")
        settle(page)
        page.evaluate("window.scrollTo(0, 0)")  # a full-page shot of a scrolled page draws the header midway
        shots.append(screenshots_dir / "training-wizard-desktop.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

        page.get_by_role("button", name="Queue job").click()
        page.wait_for_url(re.compile(r"/training/\d+$"))
        page.get_by_text("succeeded", exact=True).wait_for(timeout=RUN_TIMEOUT_MS)
        page.get_by_text("Done in 60 steps").wait_for()
        page.get_by_text("checkpoint at step 60").first.wait_for()  # the log, tailed live
        charts_drawn(page)
        page.get_by_text("The SwanLab dashboard is not running.").wait_for()
        settle(page)
        shots.append(screenshots_dir / "training-job-desktop.png")
        page.screenshot(path=str(shots[-1]), full_page=True)

        # Deploy the trained adapter (merged into its base, served by transformers serve) and chat with it.
        page.get_by_role("button", name="Deploy").click()
        page.get_by_text("local/tiny-facts").first.wait_for()
        page.get_by_role("button", name="Chat with it").wait_for(timeout=DEPLOY_TIMEOUT_MS)
        page.get_by_role("button", name="Chat with it").scroll_into_view_if_needed()
        settle(page)
        shots.append(screenshots_dir / "training-deployed-desktop.png")
        page.screenshot(path=str(shots[-1]))
        page.get_by_role("button", name="Chat with it").click()
        page.wait_for_url(re.compile(r"/chat"))
        page.get_by_label("Message").fill("What is the capital of France?")
        page.get_by_label("Message").press("Enter")
        page.locator(".lp-metrics", has_text="tokens/s").wait_for(timeout=60_000)  # the answer ended
        settle(page)
        shots.append(screenshots_dir / "chat-deployed-desktop.png")
        page.screenshot(path=str(shots[-1]))

    job = api(portal, "GET", "/api/v1/training/jobs", token=token)["data"][0]
    assert (job["status"], job["step"], job["output_path"]) == ("succeeded", 60, f"training/{job['id']}/adapter")
    assert [c["step"] for c in job["checkpoints"]] == [20, 40, 60]
    metrics = api(portal, "GET", f"/api/v1/training/jobs/{job['id']}/metrics", token=token)["data"]
    assert len(metrics) == 60 and metrics[-1]["loss"] < metrics[0]["loss"]
    # Two more for the list: one waiting for tomorrow, one cancelled.
    for name, start in (("overnight run", "2099-01-01T02:00:00Z"), ("abandoned", None)):
        created = api(portal, "POST", "/api/v1/training/jobs", {
            "name": name, "base_model": str(model), "dataset_id": dataset, "method": "lora",
            "params": {"max_steps": 500}, "start_after": start}, token=token)
    api(portal, "POST", f"/api/v1/training/jobs/{created['id']}/cancel", token=token)

    for name, viewport in VIEWPORTS:
        with signed_in_admin(browser, portal, viewport) as page:
            page.goto(portal.url("/training"))
            page.get_by_text("Waits until 2099-01-01 02:00 UTC").wait_for()
            page.get_by_text("Deployed models").wait_for()
            settle(page)
            shots.append(screenshots_dir / f"training-{name}.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            no_overflow(page, "job list", viewport["width"])
            if name == "phone":
                page.goto(portal.url("/training/new"))
                page.get_by_label("Base model").wait_for()
                settle(page)
                shots.append(screenshots_dir / "training-wizard-phone.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                no_overflow(page, "wizard", viewport["width"])
                page.goto(portal.url(f"/training/{job['id']}"))
                page.get_by_text("Done in 60 steps").wait_for()
                charts_drawn(page)
                settle(page)
                shots.append(screenshots_dir / "training-job-phone.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                no_overflow(page, "job page", viewport["width"])
    with signed_in_admin(browser, portal, VIEWPORTS[0][1]) as page:
        page.goto(portal.url(f"/training/compare?jobs={job['id']},{created['id']}"))
        page.get_by_text("Compare training runs").first.wait_for()
        charts_drawn(page, count=1)
        settle(page)
        shots.append(screenshots_dir / "training-compare-desktop.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
    for shot in shots:
        assert_screenshot(shot)
    deployed = api(portal, "GET", "/api/v1/deployments", token=token)["data"]
    assert [(d["model"], d["status"]) for d in deployed] == [("local/tiny-facts", "running")]
    answer = api(portal, "POST", "/v1/chat/completions", {  # the model it trained, through the gateway
        "model": "local/tiny-facts", "max_tokens": 8,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]}, token=token)
    assert answer["choices"][0]["message"]["content"] and answer["usage"]["completion_tokens"] == 8
    assert api(portal, "DELETE", f"/api/v1/deployments/{deployed[0]['id']}", token=token)["status"] == "stopped"
    # Leave no worker behind: the cancelled one stops at its first step.
    for _ in range(RUN_TIMEOUT_MS // 500):
        if api(portal, "GET", f"/api/v1/training/jobs/{created['id']}", token=token)["status"] != "running":
            break
        time.sleep(0.5)
    assert api(portal, "GET", f"/api/v1/training/jobs/{created['id']}", token=token)["status"] == "cancelled"
