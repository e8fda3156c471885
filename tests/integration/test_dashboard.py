"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven
by selenium; .ci/run installs them): it loads the state of a watched run, follows the
live stream as the run trades (prices, equity, trades, positions), shows an alert the
moment it fires, and asks for a key once a key file exists."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pytest

from quorum.api.server import watched
from sim.bus import ALERT
from sim.bus_events import AlertRaised
from sim.config import load_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("CI needs chromium and chromium-driver (.ci/run installs them)")
    pytest.skip("no chromium/chromedriver on this machine", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

PRICES_JS = """return Object.fromEntries([...document.querySelectorAll('#prices tbody tr')]
                  .map(r => [r.dataset.symbol, r.cells[2].textContent]))"""


def prices(driver) -> dict[str, str]:
    """The prices table read in one script call (it is redrawn as bars come)."""
    return driver.execute_script(PRICES_JS)


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("QUORUM_SCREENSHOTS", tmp_path / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_the_dashboard_follows_a_run_as_it_trades(browser, tmp_path: Path) -> None:
    args = argparse.Namespace(api="127.0.0.1:0", keys=str(tmp_path / "none.toml"))
    # what is checked is what the page ends up showing; the bound only stops a hang (a
    # starved chromium redraws slowly: 30 s failed under load)
    wait = WebDriverWait(browser, 120)
    with DuckDBStore(tmp_path / "runs.duckdb") as store, \
            watched(store.con, "runs.duckdb", args, "run", "watched-run") as watch:
        assert watch.bus is not None and watch.url is not None
        browser.get(watch.url + "/")  # before the run has stored anything
        wait.until(lambda d: d.find_element(By.ID, "health").get_attribute("data-state")
                   == "healthy")
        wait.until(lambda d: d.find_element(By.ID, "link").text == "live")
        result = run_scenario(load_scenario(REPO / "scenarios/demo.toml"), store,
                              run_id="watched-run", bus=watch.bus)
        symbols = {r[0] for r in store.con.execute(
            "select distinct symbol from bars where run_id = ?", [result.run_id]).fetchall()}
        wait.until(lambda d: set(prices(d)) == symbols)
        wait.until(lambda d: int(d.find_element(By.ID, "equity")
                                 .get_attribute("data-points") or 0) > 100)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#trades li")) > 0)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#positions tbody tr")) > 0)
        last = {r[0]: r[1] for r in store.con.execute(
            "select symbol, close from bars where run_id = ? qualify row_number() over "
            "(partition by symbol order by ts desc) = 1", [result.run_id]).fetchall()}
        wait.until(lambda d: {s: float(c) for s, c in prices(d).items()}
                   == pytest.approx(last, rel=1e-5))
        browser.save_screenshot(str(shots(tmp_path) / "dashboard-run.png"))
        watch.bus.publish(ALERT, 1, AlertRaised(7, 1, "critical", "risk", "kill_switch",
                                                "kill switch pulled", {}))
        alert = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#alerts li[data-alert="7"]'))
        assert "kill switch pulled" in alert.text and "critical" in alert.get_attribute("class")
        browser.save_screenshot(str(shots(tmp_path) / "dashboard-alert.png"))


def test_the_page_asks_for_a_key_once_keys_exist(browser, tmp_path: Path) -> None:
    from quorum.api.keys import KeyStore

    key = KeyStore(tmp_path / "keys.toml").add("viewer")
    args = argparse.Namespace(api="127.0.0.1:0", keys=str(tmp_path / "keys.toml"))
    wait = WebDriverWait(browser, 30)
    with DuckDBStore(tmp_path / "runs.duckdb") as store, \
            watched(store.con, "runs.duckdb", args, "run") as watch:
        assert watch.url is not None
        browser.get(watch.url + "/")  # the page itself needs no key
        dialog = wait.until(lambda d: d.find_element(By.ID, "key-dialog"))
        wait.until(lambda d: dialog.get_attribute("open") is not None)
        browser.find_element(By.ID, "key-input").send_keys(key)
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        wait.until(lambda d: d.find_element(By.ID, "health").get_attribute("data-state")
                   == "healthy")
        wait.until(lambda d: d.find_element(By.ID, "link").text == "live")
