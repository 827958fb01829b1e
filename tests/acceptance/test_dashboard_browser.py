"""The dashboard at ``/`` in a real browser (Debian's chromium, driven by Playwright) against a
real API server process with a pool of two worker processes.

Every wait is a condition with a timeout (Playwright's auto-waiting ``expect`` or a poll of the
API), never a fixed sleep. Each test gets a server on a fresh database, so counts start at 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from queuelab.testing import internals
from tests.support.apiserver import api_server
from tests.support.helpers import wait_until

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
# Fast retries and polling, so a failing job reaches the dead-letter queue in about a second.
# A cancelled job that sleeps (simulate) is killed with its process half a second after its cancel.
SERVER_ENV = {
    "QUEUELAB_RETRY_BASE_SECONDS": "0.05",
    "QUEUELAB_POLL_INTERVAL_SECONDS": "0.2",
    "QUEUELAB_CANCEL_GRACE_SECONDS": "0.5",
}
WAIT_MS = 20_000
XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium, or `make browser`)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must run the browser tests")
        pytest.skip(f"{reason}; the dashboard browser tests need it")
    expect.set_options(timeout=WAIT_MS)  # expect() has its own default of 5 s; two busy cores need more
    try:
        with sync_playwright() as p:
            launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield launched
            launched.close()
    finally:
        expect.set_options(timeout=None)  # back to Playwright's default


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    db = f"sqlite:///{tmp_path / 'dashboard.db'}"
    with api_server(db, tmp_path / "api.log", workers=2, mode="process", **SERVER_ENV) as base:
        yield base


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """The dashboard, loaded and live; fails the test if the page threw or showed an alert."""
    context = browser.new_context(base_url=server)
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_dialog(dialog: Dialog) -> None:  # the dashboard alerts when an action fails
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    opened.on("dialog", on_dialog)
    opened.goto("/")
    expect(opened.locator("#connection")).to_contain_text("live")
    yield opened
    context.close()
    assert problems == []


def submit(server: str, body: dict[str, Any]) -> str:
    response = httpx.post(f"{server}/api/submit/", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["job_id"])


def job(server: str, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server}/api/status/{job_id}/", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_job_submitted_through_the_form_completes(page: Page) -> None:
    page.fill("#submit-form textarea[name=payload]", '{"duration": 0.5}')
    page.click("#submit-form button[type=submit]")
    result = page.locator("#submit-result")
    expect(result).to_contain_text("submitted ")
    job_id = result.get_attribute("data-job")
    assert job_id
    detail = page.locator("#job-detail")
    expect(detail).to_have_attribute("data-job", job_id)
    expect(detail).to_have_attribute("data-status", "COMPLETED")
    expect(detail).to_contain_text('result: {"slept":0.5}')
    expect(page.locator("#count-COMPLETED")).to_have_text("1")
    expect(page.locator(f'#recent tbody tr[data-job="{job_id}"] td.status-COMPLETED')).to_have_text("COMPLETED")


def test_dead_letters_can_be_requeued_or_forced_from_the_dlq_table(page: Page, server: str) -> None:
    failing = {"user_id": "bob", "payload": {"fail_simulation": True, "duration": 0}}
    again, forced = submit(server, failing), submit(server, failing)
    rows = {job_id: page.locator(f'#dlq tbody tr[data-job="{job_id}"]') for job_id in (again, forced)}
    for row in rows.values():
        expect(row).to_be_visible()
        expect(row).to_contain_text("SimulatedFailure")
    dead = job(server, again)
    assert (dead["status"], dead["attempts"]) == ("FAILED", dead["max_retries"] + 1)

    with page.expect_response(f"**/api/requeue/{again}/") as requeued:
        rows[again].locator("button[data-action=REQUEUE]").click()
    answer = requeued.value.json()
    # The answer is read back after the commit, and the requeue wakes the workers, so one of them
    # may already have claimed it (RUNNING, attempts 1): either way the budget was reset.
    assert requeued.value.status == 200
    assert answer["status"] in ("PENDING", "RUNNING"), answer
    assert answer["attempts"] < dead["attempts"], answer

    # It runs a whole fresh budget (the history is kept and doubles) and dead-letters again.
    def failed_again() -> bool:
        now = job(server, again)
        return now["status"] == "FAILED" and len(now["history"]) == 2 * len(dead["history"])

    wait_until(failed_again, timeout=WAIT_MS / 1000, what=f"requeued job {again} to spend a fresh budget")
    expect(rows[again]).to_be_visible()

    with page.expect_response(f"**/api/requeue/{forced}/") as answered:
        rows[forced].locator("button[data-action=FORCE_SUCCESS]").click()
    assert answered.value.status == 200
    expect(rows[forced]).to_have_count(0)
    detail = page.locator("#job-detail")
    expect(detail).to_have_attribute("data-job", forced)
    expect(detail).to_have_attribute("data-status", "COMPLETED")
    expect(detail).to_contain_text("(forced)")
    expect(detail.locator(".job-action")).to_contain_text("forced success from FAILED")  # who and when, shown
    expect(detail.locator(".job-action")).to_contain_text("by api")
    done = job(server, forced)
    assert (done["status"], done["forced"]) == ("COMPLETED", True)
    assert [(a["action"], a["by"], a["from_status"]) for a in done["actions"]] == [("FORCED_SUCCESS", "api", "FAILED")]


def test_a_running_job_is_cancelled_from_the_recent_jobs_table(page: Page, server: str) -> None:
    job_id = submit(server, {"user_id": "ann", "payload": {"duration": 600}, "max_retries": 3})
    wait_until(lambda: job(server, job_id)["status"] == "RUNNING", timeout=WAIT_MS / 1000, what="the job to run")
    row = page.locator(f'#recent tbody tr[data-job="{job_id}"]')
    expect(row.locator("td.status-RUNNING")).to_be_visible()
    with page.expect_response(f"**/api/cancel/{job_id}/") as answered:
        row.locator("button[data-action=CANCEL]").click()
    assert answered.value.status == 200
    assert answered.value.json()["status"] in ("RUNNING", "CANCELLED")  # a request, until its worker stops it
    wait_until(lambda: job(server, job_id)["status"] == "CANCELLED", timeout=WAIT_MS / 1000, what="the cancel")
    expect(row.locator("td.status-CANCELLED")).to_be_visible()
    done = job(server, job_id)
    assert (done["attempts"], done["history"][-1]["outcome"]) == (0, "CANCELLED")
    assert [(a["action"], a["from_status"]) for a in done["actions"]] == [("CANCELLED", "RUNNING")]


def test_user_strings_are_shown_as_text_never_run(page: Page, server: str) -> None:
    job_id = submit(server, {"user_id": "mallory", "payload": {"note": XSS, "duration": 0}})
    cell = page.locator(f'#recent tbody tr[data-job="{job_id}"] td.payload')
    expect(cell).to_contain_text("<script>window.__pwned=1</script>")
    expect(cell).to_contain_text('<img src=x onerror=\\"window.__pwned=2\\">')  # JSON.stringify escapes "
    page.click(f'#recent a.job[data-job="{job_id}"]')
    expect(page.locator("#job-detail .payload")).to_contain_text("<script>window.__pwned=1</script>")
    assert page.locator("#recent script, #recent img, #job-detail script, #job-detail img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_the_counters_refresh_without_a_reload(page: Page, server: str) -> None:
    page.evaluate("window.__same_page = true")  # a reload would drop it
    expect(page.locator("#count-PENDING")).to_have_text("0")
    expect(page.locator("#count-COMPLETED")).to_have_text("0")
    submit(server, {"user_id": "alice", "payload": {"duration": 0}, "delay_seconds": 3600})
    expect(page.locator("#count-PENDING")).to_have_text("1")
    submit(server, {"user_id": "alice", "payload": {"duration": 0}})
    expect(page.locator("#count-COMPLETED")).to_have_text("1")
    assert page.evaluate("window.__same_page") is True


def test_the_autoscaling_decisions_are_listed_as_text(page: Page, tmp_path: Path) -> None:
    import time

    from queuelab import Queue
    from queuelab.store.scaling import ScaleLog

    expect(page.locator("#scale-none")).to_be_visible()
    q = Queue(f"sqlite:///{tmp_path / 'dashboard.db'}")  # the server's database
    ScaleLog(internals(q).db).record(
        at=time.time(),
        pool_id="host:1:abcd",
        hostname="host",
        backlog=42,
        running=1,
        workers_before=1,
        workers_after=3,
        reason=XSS,
    )
    q.close()
    row = page.locator("#scale-events tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("1 → 3")
    expect(row).to_contain_text("42")
    expect(row).to_contain_text("<script>window.__pwned=1</script>")
    expect(page.locator("#scale-none")).to_be_hidden()
    assert page.locator("#scale-events script, #scale-events img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_the_schedules_are_listed_and_paused_from_the_table(page: Page, tmp_path: Path) -> None:
    from queuelab import Queue

    expect(page.locator("#schedules-none")).to_be_visible()
    q = Queue(f"sqlite:///{tmp_path / 'dashboard.db'}")  # the server's database
    q.schedule("simulate", name="nightly", cron="0 3 * * *", timezone="Europe/Paris")
    row = page.locator("#schedules tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("0 3 * * *")
    expect(row).to_contain_text("Europe/Paris")
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Pause").click()
    expect(row).to_contain_text("paused")
    wait_until(lambda: q.get_schedule("nightly").paused, timeout=10, what="the schedule to be paused")
    q.close()
