"""Prompts in a real browser: the library, the editor with a playground run streaming from a fake model, the
versions with a diff, and format conversion; screenshots at desktop and phone width."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Portal
from tests.e2e.helpers import VIEWPORTS, api, assert_screenshot, settle, signed_in_admin

TEMPLATE = {
    "name": "Support reply",
    "description": "Answers a customer's question in the company's voice, with an optional list of facts.",
    "tags": ["support", "email"],
    "messages": [
        {"role": "system", "content": "You answer for {{ company }} in a {{ tone }} tone. Keep it under "
                                      "{{ words }} words."},
        {"role": "user", "content": "{{ question }}{% if facts %}\n\nFacts:{% for fact in facts %}\n- {{ fact }}"
                                    "{% endfor %}{% endif %}"},
    ],
    "variables": [{"name": "company", "default": "ACME"}, {"name": "tone", "default": "friendly"},
                  {"name": "words", "type": "number", "default": 80},
                  {"name": "facts", "type": "json", "default": ["Refunds take 5 days"]}],
}


def test_prompt_library_editor_playground_and_convert(portal: Portal, browser: Any, screenshots_dir: Path) -> None:
    from tests.fakes import reply, start_openai

    with start_openai(models=["qwen3-8b"]) as upstream:
        upstream.script.set(reply("Thanks for asking! Your **refund** is on its way and should arrive within "
                                  "5 days.", reasoning="The customer wants to know about the refund.", delay=0.02))
        admin = api(portal, "POST", "/api/v1/auth/login", {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        token = admin["access_token"]
        provider = api(portal, "POST", "/api/v1/providers", {"name": "lab", "kind": "openai", "max_retries": 0,
                                                             "base_url": upstream.base_url, "api_key": "test-key"},
                       token=token)
        api(portal, "POST", f"/api/v1/providers/{provider['id']}/sync", token=token)
        prompt = api(portal, "POST", "/api/v1/prompts", TEMPLATE, token=token)
        changed = dict(TEMPLATE, messages=[TEMPLATE["messages"][0] | {
            "content": TEMPLATE["messages"][0]["content"] + " Sign as the support team."}, TEMPLATE["messages"][1]])
        api(portal, "PATCH", f"/api/v1/prompts/{prompt['id']}", {"messages": changed["messages"],
                                                                   "note": "sign the answer"}, token=token)
        api(portal, "PUT", f"/api/v1/prompts/{prompt['id']}/labels/production", {"version": 1}, token=token)
        api(portal, "POST", "/api/v1/prompts", {"name": "Summariser", "tags": ["writing"], "shared": True,
                                                "description": "Summarises a text in a few sentences.",
                                                "messages": [{"role": "user", "content": "Summarise:\n{{ text }}"}]},
            token=token)
        shots = []
        for name, viewport in VIEWPORTS:
            with signed_in_admin(browser, portal, viewport) as page:
                page.goto(portal.url("/prompts"))
                page.get_by_text("Support reply").wait_for()
                settle(page)
                shots.append(screenshots_dir / f"prompts-library-{name}.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                _no_overflow(page, viewport)

                page.get_by_text("Support reply").click()
                page.get_by_text("Fill in the variables").wait_for()
                page.get_by_label("question", exact=True).fill("Where is my refund?")
                page.get_by_role("button", name="Run").click()
                page.get_by_text("should arrive within 5 days.").wait_for()
                page.locator(".lp-metrics", has_text="first token").wait_for()
                settle(page)
                shots.append(screenshots_dir / f"prompts-editor-{name}.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                _no_overflow(page, viewport)

        with signed_in_admin(browser, portal, VIEWPORTS[0][1]) as page:
            page.goto(portal.url(f"/prompts/{prompt['id']}"))
            page.get_by_role("tab", name="Versions").click()
            page.get_by_role("button", name="Show the differences").click()
            page.locator(".lp-diff-add").first.wait_for()
            settle(page)
            shots.append(screenshots_dir / "prompts-versions-desktop.png")
            page.screenshot(path=str(shots[-1]), full_page=True)

            page.get_by_role("tab", name="Playground").click()
            page.get_by_label("question", exact=True).fill("Where is my refund?")
            page.get_by_role("tab", name="Convert").click()
            page.get_by_role("button", name="Use the rendered prompt").click()
            page.get_by_label("To", exact=True).click()
            page.get_by_role("option", name="Alpaca").click()
            page.get_by_role("button", name="Convert", exact=True).click()
            page.locator(".lp-code").first.wait_for()
            settle(page)
            shots.append(screenshots_dir / "prompts-convert-desktop.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
    for shot in shots:
        assert_screenshot(shot)


def _no_overflow(page: Any, viewport: dict[str, int]) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px too wide at {viewport['width']} px"
