"""Headless Chromium (Debian's `chromium` package) driven by Playwright, looking at the Prefect UI as a
researcher would: open a page, wait until it has rendered, read what the browser shows, take a screenshot.

Playwright never downloads a browser here: it launches /usr/bin/chromium (scripts/setup.sh installs it).
The flags keep Chromium from reaching for Google's services, which this machine's closed network refuses.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Response, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio"]
VIEWPORT = {"width": 1400, "height": 1000}
OWN_CODE = {"document", "script", "stylesheet"}  # what the UI needs to run at all


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, with a fresh profile (Playwright makes a new one per launch); a clear
    error when it is not installed."""
    if not CHROMIUM.exists():
        raise AssertionError(f"{CHROMIUM} missing: run scripts/setup.sh (it installs Debian's chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


# An <img> counts as shown when the browser decoded it: complete with a natural width (a 404 or a source the
# renderer dropped leaves naturalWidth 0).
IMAGES_JS = """(root) => [...(root ? document.querySelectorAll(root + ' img') : document.images)].map(i => ({
    src: i.getAttribute('src') || '', alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth}))"""
LINKS_JS = """() => [...document.querySelectorAll('a[href]')].map(a => ({
    href: a.getAttribute('href'), resolved: a.href, text: a.textContent.trim()}))"""
TABLES_JS = """(root) => [...document.querySelectorAll(root + ' table')].map(t => ({
    header: [...t.querySelectorAll('th')].map(th => th.textContent.trim()),
    rows: [...t.querySelectorAll('tbody tr')].map(tr => [...tr.querySelectorAll('td')].map(td =>
        td.textContent.trim()))}))"""
STRUCK_JS = "(root) => [...document.querySelectorAll(root + ' del, ' + root + ' s')].map(e => e.textContent)"
TALLEST_JS = "() => Math.max(...[...document.querySelectorAll('body *')].map(e => e.scrollHeight))"
MAX_SHOT_HEIGHT = 12_000
NEXT_FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"
IMAGES_SETTLED_JS = "(root) => [...document.querySelectorAll(root + ' img')].every(i => i.complete)"


@dataclass
class UIPage:
    """One open page of the Prefect UI and what the browser fetched for it."""

    page: Page
    origin: str
    responses: list[tuple[int, str, str]] = field(default_factory=list)  # (status, resource type, url)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (resource type, url)

    def images(self, root: str | None = None) -> list[dict[str, Any]]:
        return self.page.evaluate(IMAGES_JS, root)

    def links(self) -> list[dict[str, str]]:
        return self.page.evaluate(LINKS_JS)

    def tables(self, root: str) -> list[dict[str, Any]]:
        return self.page.evaluate(TABLES_JS, root)

    def struck(self, root: str) -> list[str]:
        """Struck-through text (GitHub-flavoured Markdown turns a `~a~` pair into <del>)."""
        return self.page.evaluate(STRUCK_JS, root)

    def text(self, selector: str = "body") -> str:
        return self.page.inner_text(selector)

    def own_code_problems(self) -> list[str]:
        """The UI's own documents, scripts and styles that did not load from its server, or came from elsewhere
        (the UI must work offline: everything it runs on is served by `prefect server start`)."""
        out = [f"{status} {url}" for status, kind, url in self.responses if kind in OWN_CODE and status >= 400]
        out += [f"failed {url}" for kind, url in self.failed if kind in OWN_CODE]
        local = (self.origin, f"blob:{self.origin}", "data:")  # V1 runs its Markdown parser as a blob: worker
        out += [f"from elsewhere: {url}" for _, kind, url in self.responses
                if kind in OWN_CODE and not url.startswith(local)]
        return out


@dataclass
class UI:
    """The Prefect UI at `origin` (e.g. http://127.0.0.1:4200), one browser tab reused page after page."""

    browser: Browser
    origin: str
    shots: list[Path] = field(default_factory=list)

    @contextmanager
    def tab(self) -> Iterator[Page]:
        context = self.browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        try:
            yield context.new_page()
        finally:
            context.close()

    def open(self, page: Page, path: str, ready: str, settle_images: str | None = None,
             timeout_ms: float = 60_000) -> UIPage:
        """Go to `path`, wait until `ready` (a CSS selector or text=...) is visible and, below
        `settle_images`, every image has finished loading or failing."""
        ui = UIPage(page=page, origin=self.origin)

        def on_response(r: Response) -> None:
            ui.responses.append((r.status, r.request.resource_type, r.url))

        def on_failed(r: Any) -> None:
            ui.failed.append((r.resource_type, r.url))

        page.on("response", on_response)
        page.on("requestfailed", on_failed)
        try:
            page.goto(self.origin + path, wait_until="domcontentloaded", timeout=timeout_ms)
            page.locator(ready).first.wait_for(state="visible", timeout=timeout_ms)
            if settle_images:
                page.wait_for_function(IMAGES_SETTLED_JS, arg=settle_images, timeout=timeout_ms)
            page.wait_for_load_state("networkidle", timeout=timeout_ms)
        finally:
            page.remove_listener("response", on_response)
            page.remove_listener("requestfailed", on_failed)
        return ui

    def screenshot(self, page: Page, out_dir: Path, name: str, copy_to: Path | None = None) -> Path:
        """A full-page PNG in out_dir (the test's output folder), also copied to `copy_to` for people."""
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{name}.png"
        # The V1 UI scrolls inside a container, so a "full page" is one screen: grow the window to the
        # tallest scrolling content for the shot instead.
        tall = min(int(page.evaluate(TALLEST_JS)), MAX_SHOT_HEIGHT)
        if tall > VIEWPORT["height"]:
            page.set_viewport_size({"width": VIEWPORT["width"], "height": tall})
            page.evaluate(NEXT_FRAMES_JS)  # let the layout follow: two frames drawn at the new size
        try:
            page.screenshot(path=str(path), full_page=True)
        finally:
            page.set_viewport_size(dict(VIEWPORT))  # type: ignore[arg-type]
        if copy_to is not None:
            copy_to.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy_to / path.name)
        self.shots.append(path)
        return path


def origin_of(api_url: str) -> str:
    """http://127.0.0.1:4200/api -> http://127.0.0.1:4200 (the UI is served beside the API)."""
    u = urlsplit(api_url)
    return f"{u.scheme}://{u.netloc}"
