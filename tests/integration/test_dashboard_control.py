"""The dashboard steering a paper session in a real headless Chromium (as
test_dashboard.py): a click pauses an agent, its badge changes and its votes stop in the
store; a refused command raises an alert that appears on the page and is acknowledged
with a click; a click resumes the agent. Screenshots under the test's tmp (or
$QUORUM_SCREENSHOTS)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from quorum.api.server import SessionApi
from tests.integration._api_session import PaperSession
from tests.integration.test_dashboard import browser, shots  # noqa: F401 (the fixture)


def _badge(driver, agent: str) -> str:
    """The agent's state badge, read in one script call (the table is redrawn as the
    stream brings updates)."""
    return driver.execute_script(
        "const b = document.querySelector(`#agents tr[data-agent='${arguments[0]}'] .badge`);"
        " return b ? b.textContent : '';", agent)


def _click(driver, agent: str, action: str) -> None:
    """A real click on the agent's button (found again if the table was redrawn)."""
    for _ in range(50):
        try:
            driver.find_element(By.CSS_SELECTOR, f'#agents tr[data-agent="{agent}"] '
                                                 f'button[data-action="{action}"]').click()
            return
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError(f"could not click {action} of {agent}")


def test_the_dashboard_pauses_an_agent_of_a_paper_session(
        browser, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    api = SessionApi(argparse.Namespace(api="127.0.0.1:0", keys=str(tmp_path / "none.toml"),
                                        api_rate=None, db="runs.duckdb"))
    wait = WebDriverWait(browser, 30)
    out = shots(tmp_path)
    try:
        with PaperSession(tmp_path, bus=api.bus) as s:
            api.attach(s.runner)
            assert api.url is not None
            s.step(40)
            browser.get(api.url + "/")
            wait.until(lambda d: d.find_element(By.ID, "link").text == "live")
            wait.until(lambda d: _badge(d, "sma") == "active" and _badge(d, "mom") == "active")
            browser.save_screenshot(str(out / "control-before.png"))
            _click(browser, "sma", "pause")
            wait.until(lambda d: _badge(d, "sma") == "paused")
            assert s.runner.lifecycle.states()["sma"] == "paused"
            s.step(60)
            _click(browser, "sma", "pause")  # refused: it is paused; an alert says so
            alert = wait.until(lambda d: next(iter(
                [li for li in d.find_elements(By.CSS_SELECTOR, "#alerts li")
                 if "command_rejected" in li.text]), None))
            assert "is paused, not active" in alert.text
            browser.save_screenshot(str(out / "control-paused-alert.png"))
            alert_id = int(alert.get_attribute("data-alert"))
            deadline = time.monotonic() + 20  # stored at the session's next heartbeat
            reads = s.store.con.cursor()  # the session's connection is the session's
            while not reads.execute("select count(*) from alerts where run_id = ? and "
                                          "alert_id = ?", [s.run_id, alert_id]).fetchone()[0]:
                assert time.monotonic() < deadline, "the alert was not stored"
                time.sleep(0.05)
            reads.close()
            alert.find_element(By.CSS_SELECTOR, 'button[data-action="ack"]').click()
            wait.until(lambda d: "acked" in d.find_element(
                By.CSS_SELECTOR, f'#alerts li[data-alert="{alert_id}"]').get_attribute("class"))
            _click(browser, "sma", "resume")
            wait.until(lambda d: _badge(d, "sma") == "active")
            browser.save_screenshot(str(out / "control-resumed.png"))
            s.finish()
            sma = s.votes("sma")
            (pause,), (resume,) = s.event_ts("sma", "pause"), s.event_ts("sma", "resume")
            assert any(t < pause for t in sma) and not [t for t in sma
                                                        if pause <= t < resume]
            assert [t for t in s.votes("mom") if pause <= t < resume]
            assert s.store.con.execute("select acknowledged from alerts where run_id = ? and "
                                       "alert_id = ?", [s.run_id, alert_id]).fetchone() == (
                True,)
            actors = s.store.con.execute("select distinct actor from agent_events where "
                                         "command <> 'start'").fetchall()
            assert actors == [("api",)]
    finally:
        api.close()
