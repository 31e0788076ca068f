"""Driving the admin console in a real Chromium as one person would: sign in, click, read."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

# The README's pictures are refreshed on request (`VB2PO_SCREENSHOTS=docs/screenshots`), so a
# test run leaves the working tree as it found it.
SCREENSHOTS = Path(os.environ.get("VB2PO_SCREENSHOTS") or Path(tempfile.gettempdir()) / "vb2po-screenshots")


def text_of(element) -> str:
    """Visible text with no-break spaces as plain ones (amounts are written `1 234,50 kr`)."""
    return element.text.replace("\u00a0", " ")


class Console:
    def __init__(self, driver: WebDriver, url: str):
        self.driver = driver
        self.url = url.rstrip("/")

    # -- moving around ----------------------------------------------------------------------
    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def wait(self, condition, *, timeout: float = 30, what: str = "the page"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = condition()
            except Exception as exc:  # noqa: BLE001 - the page is still changing
                last = exc
            if last and not isinstance(last, Exception):
                return last
            time.sleep(0.1)
        shown = self.driver.execute_script("return document.body ? document.body.innerText : ''")[:600]
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r}); at "
                             f"{self.driver.current_url}, showing: {shown!r}")

    def find(self, css: str):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def h1(self) -> str:
        return text_of(self.find("h1"))

    def path(self) -> str:
        return self.driver.current_url.removeprefix(self.url)

    # -- signing in and out -----------------------------------------------------------------
    def sign_out_if_signed_in(self) -> None:
        self.open("/console/sign-in")
        if self.all("form.sign-out button"):
            self.find("form.sign-out button").click()
        self.driver.delete_all_cookies()
        self.driver.get("about:blank")

    def sign_in(self, token: str, *, lang: str | None = None) -> None:
        self.sign_out_if_signed_in()
        self.open("/console/sign-in" + (f"?lang={lang}" if lang else ""))
        self.find("#token").send_keys(token)
        self.find("#sign-in button[type=submit]").click()
        self.wait(lambda: not self.path().startswith("/console/sign-in"), what="the console after signing in")

    def sign_in_with_link(self, link: str) -> None:
        self.sign_out_if_signed_in()
        self.driver.get(link)
        self.wait(lambda: not self.path().startswith("/console/sign-in"), what="the console after the sign-in link")

    def nav(self) -> list[str]:
        return [text_of(a) for a in self.all("nav a")]

    def csrf(self) -> str:
        return self.find("form.sign-out input[name=csrf]").get_attribute("value")

    def post_as_page(self, path: str, fields: dict[str, str]) -> None:
        """Submit a form the page does not offer (with the session's CSRF secret), to show the
        server refuses it, not only the page that hides it."""
        self.driver.execute_script("""
            const [action, fields] = arguments;
            const form = document.createElement('form');
            form.method = 'post'; form.action = action;
            for (const [name, value] of Object.entries(fields)) {
                const input = document.createElement('input');
                input.type = 'hidden'; input.name = name; input.value = value;
                form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();""", path, {"csrf": self.csrf(), **fields})

    def choose(self, css: str, value: str) -> None:
        Select(self.find(css)).select_by_value(value)

    # -- accessibility checks that need a browser --------------------------------------------
    def unlabelled_controls(self) -> list[str]:
        return self.driver.execute_script("""
            return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                               && !el.getAttribute('aria-labelledby'))
                .map(el => el.outerHTML.slice(0, 120));""")

    def screenshot(self, name: str) -> Path:
        """The whole page (not only the window) as <SCREENSHOTS>/<name>.png."""
        import base64

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 3000), "scale": 1}})
        path = SCREENSHOTS / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
