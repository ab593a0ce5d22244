"""Chat in a real browser: an answer streams in with its reasoning, and model output cannot run script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Portal
from tests.e2e.helpers import VIEWPORTS, api, assert_screenshot, settle, signed_in_admin

HOSTILE = ("Here is the answer.\n\n<img src=x onerror=\"window.__pwned='img'\"> and "
           "<script>window.__pwned='script'</script> stay text.\n\n"
           "```python\ndef greet(name):\n    return f\"Hello, {name}!\"\n```\n\n"
           "| model | speed |\n|---|---|\n| fast | 120 tok/s |\n\n[a link](javascript:window.__pwned='link')")


def test_an_answer_streams_in_and_model_output_cannot_run_script(portal: Portal, browser: Any,
                                                                  screenshots_dir: Path) -> None:
    from tests.fakes import reply, start_openai

    with start_openai(models=["deepseek-r1", "gpt-4o-mini"]) as upstream:
        admin = api(portal, "POST", "/api/v1/auth/login", {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        provider = api(portal, "POST", "/api/v1/providers", {"name": "house", "kind": "openai",
                                                             "base_url": upstream.base_url, "api_key": "test-key"},
                       token=admin["access_token"])
        api(portal, "POST", f"/api/v1/providers/{provider['id']}/sync", token=admin["access_token"])
        shots = []
        for name, viewport in VIEWPORTS:
            upstream.script.set(reply(HOSTILE, reasoning="The user wants a greeting function. Keep it short.",
                                      delay=0.01))
            with signed_in_admin(browser, portal, viewport) as page:
                page.goto(portal.url("/chat"))
                page.get_by_text("Start a conversation").wait_for()
                box = page.get_by_label("Message")
                box.fill("Write a greeting")
                box.press("Shift+Enter")  # a new line, not sent
                box.press_sequentially("function")
                assert box.input_value() == "Write a greeting\nfunction"
                # An Enter that confirms an input method's composition (Chinese pinyin...) sends nothing.
                box.dispatch_event("keydown", {"key": "Enter", "code": "Enter", "isComposing": True})
                page.wait_for_timeout(400)
                assert box.input_value() == "Write a greeting\nfunction"
                assert page.get_by_text("Start a conversation").is_visible()
                box.press("Enter")  # Enter sends
                page.get_by_text("stay text.").wait_for()
                page.locator(".lp-metrics", has_text="tokens/s").wait_for()
                assert page.evaluate("window.__pwned") is None
                # Raw HTML in the output is shown as the model wrote it, never run.
                assert "<script>" in page.locator(".lp-answer .lp-markdown").last.inner_text()
                assert page.locator(".lp-answer .lp-markdown img").count() == 0
                page.get_by_text("Thought for").first.wait_for()
                page.locator(".lp-markdown pre .lp-copy-code").first.wait_for(state="attached")
                page.get_by_text("a link").click()
                assert page.evaluate("window.__pwned") is None
                settle(page)
                shots.append(screenshots_dir / f"chat-{name}.png")
                page.screenshot(path=str(shots[-1]))
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"the chat page is {overflow} px too wide at {viewport['width']} px"
                if name == "phone":  # the conversation list slides in over the chat
                    page.get_by_role("button", name="Conversations", exact=True).click()
                    page.get_by_role("button", name="New chat").wait_for()
                    settle(page)
                    shots.append(screenshots_dir / "chat-list-phone.png")
                    page.screenshot(path=str(shots[-1]))
                    page.locator(".lp-chat-item").first.click()
                    page.locator(".lp-chat-list:not(.lp-open)").wait_for(state="attached")
            if name == "desktop":  # the reasoning panel while the model thinks, then Stop
                upstream.script.set(reply("Done.", reasoning_chunks=[f"step {i}. " for i in range(40)], delay=0.1))
                with signed_in_admin(browser, portal, viewport) as page:
                    page.goto(portal.url("/chat"))
                    page.get_by_label("Message").fill("Think hard")
                    page.get_by_label("Send").click()
                    page.get_by_text("step 12.").wait_for()
                    assert page.get_by_text("Thinking…").count() == 1
                    shots.append(screenshots_dir / "chat-thinking-desktop.png")
                    page.screenshot(path=str(shots[-1]))
                    page.get_by_label("Stop").click()
                    page.get_by_text("Stopped: the answer ends here.").wait_for()
    for shot in shots:
        assert_screenshot(shot)
