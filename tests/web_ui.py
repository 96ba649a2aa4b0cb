"""The browser for the admin page's tests: Playwright driving Debian's Chromium against hookd on
a loopback port, with the fake model behind it. A test module imports the fixtures it uses
(`from tests.web_ui import web_fixture`) and takes them by their names, `web` and `make_web`.

Each step waits for what the page shows with Playwright's bounded `expect`, never a sleep.
Screenshots land in test-artifacts/screenshots/. Without /usr/bin/chromium the browser tests
are skipped, except in CI (`CI` set), where they fail: .ci/run installs Chromium.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import ADMIN_KEY, Hookd

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "api" / "static"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
POLL_MS = 1500  # ui.js POLL_MS

expect.set_options(timeout=10_000)


@dataclass
class Web:
    """hookd, and one browser page pointed at it."""

    hookd: Hookd
    page: Page
    problems: list[str] = field(default_factory=list)  # script errors and CSP violations

    @property
    def url(self) -> str:
        return str(self.hookd.client.make_url("/"))

    async def open(self) -> None:
        await self.page.goto(self.url)
        await expect(self.page.get_by_role("heading", name="Sign in")).to_be_visible()

    async def sign_in(self, key: str = ADMIN_KEY) -> None:
        await self.page.get_by_label("Admin key", exact=True).fill(key)
        await self.page.get_by_role("button", name="Sign in").click()

    async def open_signed_in(self) -> None:
        await self.open()
        await self.sign_in()
        await expect(self.page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible()

    async def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)

    def task_row(self, task_id: str) -> Any:
        return self.page.locator(f'#tasks-table tr[data-task-id="{task_id}"]')

    def agent_row(self, agent_id: str) -> Any:
        return self.page.locator(f'#agents-table tr[data-agent-id="{agent_id}"]')

    async def confirm(self, button: str) -> None:
        dialog = self.page.locator("#confirm-dialog")
        await expect(dialog).to_be_visible()
        await dialog.get_by_role("button", name=button, exact=True).click()
        await expect(dialog).to_be_hidden()

    async def api(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = await self.hookd.client.request(method, path, headers=self.hookd.admin, **kwargs)
        return response.status, await response.json()


MakeWeb = Callable[..., Awaitable[Web]]


@pytest.fixture(name="make_web")
async def make_web_fixture(make_hookd: Callable[..., Awaitable[Hookd]]) -> AsyncIterator[MakeWeb]:
    """`await make_web(**settings)`: hookd with these settings, and a browser page for it."""
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: /usr/bin/chromium is missing (.ci/run installs it)")
        pytest.skip("Debian's Chromium is not at /usr/bin/chromium (apt-get install chromium)")
    made: list[Web] = []
    async with async_playwright() as playwright:
        browser: Browser | None = None

        async def make(**settings: Any) -> Web:
            nonlocal browser
            hookd = await make_hookd(**settings)
            if browser is None:
                browser = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
            context = await browser.new_context(viewport={"width": 1200, "height": 800})
            origin = str(hookd.client.make_url("/")).rstrip("/")
            await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
            web = Web(hookd, await context.new_page())

            def on_console(message: Any) -> None:
                # A refused request is logged by the browser as "Failed to load resource";
                # the tests check those answers themselves. Anything else is a fault.
                if message.type == "error" and not message.text.startswith("Failed to load resource"):
                    web.problems.append(message.text)

            web.page.on("console", on_console)
            web.page.on("pageerror", lambda error: web.problems.append(f"uncaught: {error}"))
            made.append(web)
            return web

        try:
            yield make
        finally:
            if browser is not None:
                await browser.close()
    for web in made:
        assert web.problems == [], "the page logged errors"


@pytest.fixture(name="web")
async def web_fixture(make_web: MakeWeb) -> Web:
    return await make_web()
