"""The three browser engines behind one small interface, so that each journey of
e2e/test_engines.py is written once and run in each:

- **Chromium**: Debian's chromium through Playwright;
- **Firefox**: Debian's firefox-esr through Puppeteer over WebDriver BiDi (e2e/firefox_driver.mjs,
  no geckodriver);
- **WebKit** (Safari's engine): WebKitGTK's MiniBrowser through WebKitWebDriver and Selenium, on
  an Xvfb display.

An engine that cannot start raises EngineError with the reason: its tests fail, never skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol

E2E = Path(__file__).resolve().parent
REPO = E2E.parent
FIREFOX = os.environ.get("UI_TELEMETRY_FIREFOX", "/usr/bin/firefox-esr")
WEBKIT_DRIVER = os.environ.get("UI_TELEMETRY_WEBKIT_DRIVER", "/usr/bin/WebKitWebDriver")
MINIBROWSER = os.environ.get("UI_TELEMETRY_MINIBROWSER",
                             "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser")
ENGINES = ("chromium", "firefox", "webkit")


def go_back(tab: Tab, timeout: float = 20) -> None:
    """history.back(), then wait for the page before to be shown. WebDriver's own "back" waits
    for a load event, which a page restored from the back-forward cache never fires."""
    before = tab.evaluate("location.href")
    tab.evaluate("setTimeout(() => history.back(), 0), null")
    wait_shown(tab, lambda href: href != before, timeout)


def wait_shown(tab: Tab, arrived: Any, timeout: float = 20) -> None:
    """Wait until the tab shows a whole page whose address `arrived(href)` accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            href, state = tab.evaluate("[location.href, document.readyState]")
            if state == "complete" and arrived(href):
                return
        except Exception:  # noqa: BLE001,S110 - the document is changing under the call
            pass
        time.sleep(0.02)
    raise EngineError(f"the page was not shown within {timeout:g} s")


class EngineError(Exception):
    """Why an engine could not start or do what it was asked."""


class Tab(Protocol):
    def goto(self, url: str) -> None: ...
    def click(self, selector: str) -> None: ...
    def evaluate(self, expression: str) -> Any: ...
    def back(self) -> None: ...
    def close(self) -> None: ...


class Engine(Protocol):
    name: str
    version: str

    def open(self, url: str) -> Tab: ...
    def quit(self) -> None: ...


# --- Chromium -------------------------------------------------------------------------------

class _PlaywrightTab:
    def __init__(self, page: Any) -> None:
        self.page = page

    def goto(self, url: str) -> None:
        self.page.goto(url)

    def click(self, selector: str) -> None:
        self.page.locator(selector).first.click()

    def evaluate(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def back(self) -> None:
        self.page.go_back()

    def close(self) -> None:
        self.page.close(run_before_unload=True)


class Chromium:
    name = "chromium"

    def __init__(self, playwright: Any, executable: str, args: list[str], gpc: bool) -> None:
        try:
            # Playwright turns the back-forward cache off; a user's Chromium has it on.
            self.browser = playwright.chromium.launch(
                executable_path=executable, headless=True, args=args,
                ignore_default_args=["--disable-back-forward-cache"])
        except Exception as err:  # noqa: BLE001 - any failure to start is the reason
            raise EngineError(f"Chromium did not start: {err}") from None
        self.version = self.browser.version
        options: dict[str, Any] = {"extra_http_headers": {"Sec-GPC": "1"}} if gpc else {}
        self.context = self.browser.new_context(**options)
        if gpc:  # Chromium has no GPC switch: this is what a GPC browser shows pages
            self.context.add_init_script(
                "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', "
                "{get: () => true})")

    def open(self, url: str) -> Tab:
        page = self.context.new_page()
        page.goto(url)
        return _PlaywrightTab(page)

    def quit(self) -> None:
        self.context.close()
        self.browser.close()


# --- Firefox --------------------------------------------------------------------------------

class _FirefoxTab:
    def __init__(self, engine: Firefox, tab: int) -> None:
        self.engine = engine
        self.tab = tab

    def goto(self, url: str) -> None:
        self.engine.call("goto", self.tab, url)

    def click(self, selector: str) -> None:
        self.engine.call("click", self.tab, selector)

    def evaluate(self, expression: str) -> Any:
        return self.engine.call("evaluate", self.tab, expression)

    def back(self) -> None:
        self.engine.call("back", self.tab)

    def close(self) -> None:
        self.engine.call("close", self.tab)


class Firefox:
    name = "firefox"

    def __init__(self, gpc: bool) -> None:
        node = shutil.which("node")
        if not Path(FIREFOX).exists():
            raise EngineError(f"Firefox is not installed at {FIREFOX} (apt-get install "
                              "firefox-esr; scripts/test.sh does it)")
        if node is None or not (REPO / "node_modules" / "puppeteer-core").is_dir():
            raise EngineError("puppeteer-core is not installed (npm ci)")
        prefs = {"privacy.globalprivacycontrol.enabled": gpc,
                 "privacy.globalprivacycontrol.functionality.enabled": gpc}
        self.proc = subprocess.Popen(
            [node, str(E2E / "firefox_driver.mjs"),
             json.dumps({"executable": FIREFOX, "prefs": prefs})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=REPO, start_new_session=True)
        first = self._answer()
        if "error" in first:
            self.proc.kill()
            raise EngineError(first["error"])
        self.version = first["value"]

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise EngineError(f"the Firefox driver exited: {err[-2000:]}")
        return json.loads(line)

    def call(self, command: str, tab: int | None = None, arg: Any = None) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"command": command, "tab": tab, "arg": arg}) + "\n")
        self.proc.stdin.flush()
        answer = self._answer()
        if "error" in answer:
            raise EngineError(f"Firefox {command}: {answer['error']}")
        return answer["value"]

    def open(self, url: str) -> Tab:
        return _FirefoxTab(self, self.call("open", None, url))

    def quit(self) -> None:
        try:
            self.call("quit")
            self.proc.wait(20)
        except Exception:  # noqa: BLE001 - a wedged driver is killed
            self.proc.kill()
            self.proc.wait(10)


# --- WebKit ---------------------------------------------------------------------------------

class Display:
    """An Xvfb display for MiniBrowser, which has no headless mode."""

    def __init__(self) -> None:
        xvfb = shutil.which("Xvfb")
        if xvfb is None:
            raise EngineError("Xvfb is not installed (apt-get install xvfb)")
        for number in range(90, 140):
            if not Path(f"/tmp/.X11-unix/X{number}").exists() \
                    and not Path(f"/tmp/.X{number}-lock").exists():
                break
        self.name = f":{number}"
        self.proc = subprocess.Popen([xvfb, self.name, "-screen", "0", "1280x1024x24",
                                      "-nolisten", "tcp"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise EngineError(f"Xvfb did not start on {self.name}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class _WebKitTab:
    def __init__(self, engine: WebKit, handle: str) -> None:
        self.engine = engine
        self.handle = handle

    def _driver(self) -> Any:
        driver = self.engine.driver
        if driver.current_window_handle != self.handle:
            driver.switch_to.window(self.handle)
        return driver

    def goto(self, url: str) -> None:
        self._driver().get(url)

    def click(self, selector: str) -> None:
        from selenium.webdriver.common.by import By

        self._driver().find_element(By.CSS_SELECTOR, selector).click()

    def evaluate(self, expression: str) -> Any:
        return self._driver().execute_script(f"return ({expression})")

    def back(self) -> None:
        self._driver().back()

    def close(self) -> None:
        driver = self._driver()
        others = [h for h in driver.window_handles if h != self.handle]
        driver.close()  # the last window's close ends the session
        if others:
            driver.switch_to.window(others[0])


class WebKit:
    name = "webkit"

    def __init__(self, display: Display) -> None:
        try:
            from selenium import webdriver
            from selenium.webdriver.webkitgtk.options import Options
            from selenium.webdriver.webkitgtk.service import Service
        except ImportError as err:
            raise EngineError(f"selenium is not installed ({err})") from None
        for path, package in ((WEBKIT_DRIVER, "webkit2gtk-driver"),
                              (MINIBROWSER, "libwebkit2gtk-4.1-0")):
            if not Path(path).exists():
                raise EngineError(f"{path} is missing (apt-get install {package})")
        options = Options()
        options.binary_location = MINIBROWSER
        options.add_argument("--automation")
        service = Service(executable_path=WEBKIT_DRIVER,
                          env={**os.environ, "DISPLAY": display.name})
        try:
            self.driver = webdriver.WebKitGTK(options=options, service=service)
        except Exception as err:  # noqa: BLE001 - any failure to start is the reason
            raise EngineError(f"WebKit did not start: {err}") from None
        self.version = self.driver.capabilities.get("browserVersion", "?")
        self._first = True

    def open(self, url: str) -> Tab:
        if self._first:  # the session starts with one window
            self._first = False
        else:
            self.driver.switch_to.new_window("window")  # MiniBrowser: a tab is not its own
        tab = _WebKitTab(self, self.driver.current_window_handle)
        tab.goto(url)
        return tab

    def quit(self) -> None:
        with contextlib.suppress(Exception):  # the session ended with its last window
            self.driver.quit()
