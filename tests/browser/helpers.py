"""Helpers of the browser tests: launching Debian's Chromium, signing in, waiting, screenshots."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from playwright.sync_api import Browser, Page, Playwright

from tests.support.api import expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.1

T = TypeVar("T")


def launch(playwright: Playwright) -> Browser:
    """The system Chromium, headless; nothing is downloaded."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def shoot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots (ignored by git)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, base_url: str, key: str) -> None:
    """Sign in through the form, as a person would, and land on the overview."""
    page.goto(f"{base_url}/ui")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/ui")
    assert page.get_by_role("heading", name="Overview", level=1).is_visible()


def wait_until(check: Callable[[], T | None], what: str, timeout: float = WAIT_SECONDS) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def deliveries_of(api: httpx.Client, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    """The deliveries of a webhook, newest first (one page of up to 500)."""
    query = {"webhookId": webhook_id, "limit": 500, **params}
    return list(expect(api.get("/v1/deliveries", params=query), 200)["data"])


def labelled_controls_missing(page: Page) -> list[str]:
    """Visible form controls without an accessible label (should be none)."""
    result: list[str] = page.evaluate(
        """() => Array.from(document.querySelectorAll('input, select, textarea'))
            .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.outerHTML)"""
    )
    return result
