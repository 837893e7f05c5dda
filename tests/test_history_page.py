"""The history page in a real headless browser (Debian's chromium and chromedriver, driven by selenium): it loads its
data with no console error, draws one point per stack and marks the called step. Large tier: it starts a browser.

The screenshot is left in the test's temporary directory (``history.png``; pytest --basetemp=DIR keeps it there).
Chromium's flags keep it off the network (no component updates, sync or QUIC) with a fresh profile each time.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest
from history_records import series_records

from twinbench.results.history import history
from twinbench.results.history_page import PAGE_FILE, write_page

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1000,1400")
VERSIONS = ["3.8.0", "3.9.0", "3.10.0", "3.11.0", "3.12.0", "3.13.0"]  # 3.10 after 3.9: version order, not text


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page of six stacks with a step from 3.10 to 3.11 (five runs per cell: verdicts)."""
    records = series_records([1.5, 1.5, 1.5, 1.8, 1.8, 1.8], versions=VERSIONS)
    out = tmp_path_factory.mktemp("history") / "page"
    write_page(history(records, sources=["synthetic"]), out)
    return out


def _serve(directory):
    """An HTTP server of ``directory`` on localhost in a thread, and its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture
def served(page):
    server, url = _serve(page)
    yield url
    server.shutdown()


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("needs Debian's chromium and chromedriver: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install -e '.[test]'")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()


@pytest.mark.large
def test_the_page_loads_its_data_and_draws_every_point(served, browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served)
    WebDriverWait(browser, 20).until(lambda d: d.find_element("tag name", "body").get_attribute("data-loaded"))
    browser.save_screenshot(str(tmp_path / "history.png"))
    assert browser.find_element("tag name", "body").get_attribute("data-loaded") == "true"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    points = browser.find_elements("css selector", "svg circle.point")
    assert len(points) == len(VERSIONS)  # one per stack of the records
    labels = [p.find_element("tag name", "title").get_attribute("textContent").split(":")[0] for p in points]
    assert labels == [f"keras {v}" for v in VERSIONS]
    assert len(browser.find_elements("css selector", "svg line.step.called")) == 1
    assert len(browser.find_elements("css selector", "svg line.ci")) == len(VERSIONS)
    assert (tmp_path / "history.png").stat().st_size > 1000


@pytest.mark.large
def test_the_page_says_so_when_its_data_is_missing(page, browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(page / PAGE_FILE, alone / PAGE_FILE)  # the page without its data
    server, url = _serve(alone)
    try:
        browser.get(url)
        WebDriverWait(browser, 20).until(lambda d: d.find_element("tag name", "body").get_attribute("data-loaded"))
        logs = browser.get_log("browser")
    finally:
        server.shutdown()
    assert browser.find_element("tag name", "body").get_attribute("data-loaded") == "failed"
    assert "Could not load history.json" in browser.find_element("id", "status").text
    assert any("history.json" in entry["message"] for entry in logs)
