"""The control panel, driven from Python the way a user drives it in Jupyter: clicks and
slider moves on the real widgets, over a real queue, real worker pools and a real store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from queuelab import JobStatus, Queue, Submission
from queuelab.lab.widgets import ControlPanel, control_panel
from queuelab.limits import RateLimit
from queuelab.testing import internals
from tests.support.helpers import wait_until


@pytest.fixture
def panel(db_url: str) -> Iterator[ControlPanel]:
    q = Queue(db_url, retry_base_seconds=0.01)
    made = control_panel(q, refresh_seconds=0.2)
    yield made
    made.close()
    q.close()


def _live(panel: ControlPanel) -> int:
    return len(panel.q.stats().live_workers)


def test_start_resize_and_stop_a_process_pool(panel: ControlPanel) -> None:
    panel.pool_mode.value = "process"
    panel.pool_size.value = 1
    panel.start_pool.click()
    wait_until(lambda: _live(panel) == 1, timeout=30, what="one live worker in the store")
    assert panel.start_pool.disabled
    assert not panel.stop_pool.disabled
    panel.pool_size.value = 3
    wait_until(lambda: _live(panel) == 3, timeout=30, what="three live workers after the slider moved")
    assert panel.pool is not None
    assert panel.pool.size == 3
    assert "3 process worker(s)" in panel.pool_info.value  # the slider's action refreshed the panel
    panel.stop_pool.click()
    assert panel.pool is None
    wait_until(lambda: _live(panel) == 0, timeout=30, what="workers gone from the store")


def test_a_pool_started_from_the_panel_prefetches_as_set(panel: ControlPanel) -> None:
    q = panel.q
    gate = threading.Event()  # the first job runs until the stop has handed the others back

    @q.task(name="held_open")
    def held_open() -> None:
        gate.wait(60)

    jobs = [q.submit("held_open") for _ in range(6)]
    panel.pool_size.value = 1
    panel.pool_prefetch.value = "5"
    panel.start_pool.click()
    assert panel.pool_prefetch.disabled  # fixed while the pool runs
    wait_until(lambda: q.stats().by_status["RUNNING"] == 6, timeout=30, what="one running, five prefetched")
    stopping = threading.Thread(target=panel.stop_pool.click)  # a graceful stop waits for the running job
    stopping.start()
    wait_until(lambda: q.stats().by_status["PENDING"] == 5, timeout=30, what="the five not started handed back")
    gate.set()
    stopping.join(30)
    assert not stopping.is_alive()
    assert not panel.pool_prefetch.disabled
    done = [q.get(job.id) for job in jobs]
    assert [job.status for job in done].count(JobStatus.COMPLETED) == 1
    assert [job.attempts for job in done if job.status is JobStatus.PENDING] == [0] * 5  # not spent


def test_the_slider_follows_a_resize_made_elsewhere(panel: ControlPanel) -> None:
    panel.pool_size.value = 1
    panel.start_pool.click()
    assert panel.pool is not None
    panel.pool.resize(2)  # as an Autoscaler over this pool would
    panel.refresh()  # the refresher's tick
    assert panel.pool_size.value == 2
    assert panel.pool.size == 2
    panel.stop_pool.click()


def test_a_refresh_shows_the_counters_and_the_throughput(panel: ControlPanel) -> None:
    q = panel.q
    for _ in range(20):
        q.submit("simulate", {"duration": 0})
    panel.refresh()  # the refresher's tick
    assert "<b>20</b>" in panel.counts["PENDING"].value
    first_plot = bytes(panel.throughput_plot.value)
    assert first_plot.startswith(b"\x89PNG")
    panel.start_pool.click()
    wait_until(lambda: q.stats().by_status["COMPLETED"] == 20, timeout=30, what="the jobs to complete")
    panel.refresh()
    assert "<b>20</b>" in panel.counts["COMPLETED"].value
    assert "<b>0</b>" in panel.counts["PENDING"].value
    assert bytes(panel.throughput_plot.value) != first_plot  # 20 completions in the last minute


def test_the_panel_refreshes_by_itself(panel: ControlPanel) -> None:
    assert panel.refresher.alive
    before = panel.refreshes
    wait_until(lambda: panel.refreshes >= before + 2, timeout=30, what="refreshes every refresh period")
    panel.close()
    assert not panel.refresher.alive


def test_dlq_buttons_requeue_and_force_success(panel: ControlPanel) -> None:
    q = panel.q
    jobs = [q.submit("simulate", {"fail_simulation": True}, max_retries=0) for _ in range(3)]
    panel.start_pool.click()
    wait_until(lambda: len(q.dlq()) == 3, timeout=30, what="three jobs in the DLQ")
    panel.stop_pool.click()
    assert len(panel.dlq.options) == 3  # the click refreshed the panel
    panel.dlq.value = (jobs[0].id,)
    panel.requeue.click()
    requeued = q.get(jobs[0].id)
    assert requeued.status == JobStatus.PENDING
    assert requeued.attempts == 0
    panel.dlq.value = (jobs[1].id,)
    panel.force_success.click()
    forced = q.get(jobs[1].id)
    assert forced.status == JobStatus.COMPLETED
    assert forced.forced
    assert [value for _, value in panel.dlq.options] == [jobs[2].id]
    panel.requeue_all.click()
    assert q.get(jobs[2].id).status == JobStatus.PENDING
    assert "1 job(s) requeued" in panel.dlq_info.value


def test_the_load_generator_submits_and_limits_refuse(panel: ControlPanel) -> None:
    q = panel.q
    panel.rate_limit.value = "4/minute"
    panel.apply_limits.click()
    assert q.limits("*").rate_limit == RateLimit(4, 60.0)
    assert "applied" in panel.limits_info.value
    panel.load_users.value = 1
    panel.load_rate.value = 100
    panel.start_load.click()
    wait_until(lambda: panel.load is not None and panel.load.refused > 0, timeout=10, what="refused submissions")
    panel.stop_load.click()
    assert panel.load is None
    assert q.stats().by_status["PENDING"] == 4  # the user's 4 per minute, and not one more
    assert panel.load_info.value == "no load"  # the click refreshed the panel


def test_bad_input_shows_in_the_panel_and_changes_nothing(panel: ControlPanel, tmp_path: Path) -> None:
    panel.rate_limit.value = "lots"
    panel.apply_limits.click()
    assert "rate_limit must be" in panel.limits_info.value
    assert panel.q.limits("*").rate_limit is None
    old = panel.q
    panel.database.value = "nosuchdb://x"
    panel.open_database.click()
    assert panel.q is old
    assert "color:#b00" in panel.database_info.value
    other = f"sqlite:///{tmp_path / 'other.db'}"
    panel.database.value = other
    panel.open_database.click()
    assert panel.q is not old
    assert panel.q.settings.database_url == other


def test_the_autoscaler_log_shows_in_the_panel(panel: ControlPanel) -> None:
    from queuelab.runtime.autoscale import ScalePolicy

    assert "no scaling decisions yet" in panel.scale_log.value
    panel.pool_mode.value = "thread"
    panel.start_pool.click()
    assert panel.pool is not None
    for _ in range(30):
        panel.q.submit("simulate", {"duration": 0.2}, user_id="<b>bold</b>")
    policy = ScalePolicy(min_workers=1, max_workers=4, scale_up_backlog=5, cooldown_seconds=0)
    scaler = panel.q.autoscaler(panel.pool, policy)
    scaler.run_tick()
    assert scaler.errors == 0
    panel.refresh()
    assert "→" in panel.scale_log.value
    assert "runnable backlog" in panel.scale_log.value


def test_the_panel_starts_and_stops_the_api_and_dashboard(panel: ControlPanel) -> None:
    import httpx

    panel.start_api_button.click()
    assert panel.api is not None
    url = panel.api.url
    assert f'href="{url}/"' in panel.api_info.value  # the link to the dashboard
    assert panel.start_api_button.disabled
    job_id = httpx.post(f"{url}/api/submit/", json={"user_id": "panel"}).json()["job_id"]
    assert panel.q.get(job_id).user_id == "panel"  # the panel's own queue
    assert httpx.get(f"{url}/").status_code == 200
    panel.stop_api_button.click()
    assert panel.api is None
    assert panel.api_info.value == "not serving"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)
    panel.start_api_button.click()  # and again; close() stops it (the fixture checks nothing is left)
    assert panel.api is not None
    assert panel.api.running


def test_the_submission_form_submits_and_shows_the_job(panel: ControlPanel) -> None:
    panel.submit_task.value = "simulate"
    panel.submit_user.value = "form-user"
    panel.submit_payload.value = '{"duration": 0}'
    panel.submit_priority.value = 3
    panel.submit_button.click()
    (job,) = panel.q.jobs(limit=10)
    assert (job.user_id, job.priority, job.payload) == ("form-user", 3, {"duration": 0})
    assert job.id in panel.submit_info.value
    assert panel.job_id.value == job.id
    assert "PENDING" in panel.job_info.value
    assert "explain: " in panel.job_info.value
    assert "form-user" in panel.recent.value  # the refresh after the click
    panel.submit_payload.value = "{not json"
    panel.submit_button.click()
    assert "payload is not JSON" in panel.submit_info.value
    panel.submit_payload.value = '{"duration": -1}'
    panel.submit_button.click()  # refused by the task's check: shown, nothing stored
    assert "payload.duration" in panel.database_info.value
    assert len(panel.q.jobs(limit=10)) == 1


def test_the_job_view_shows_who_acted_and_escapes_what_users_sent(panel: ControlPanel) -> None:
    job = panel.q.submit("simulate", {"note": "<script>x</script>"}, user_id="<b>u</b>")
    panel.q.cancel(job.id, by="ops <team>")
    panel.job_id.value = job.id
    panel.show_job.click()
    info = panel.job_info.value
    assert "cancelled from PENDING" in info
    assert "by ops &lt;team&gt;" in info
    assert "<script>" not in info
    assert "&lt;b&gt;u&lt;/b&gt;" in info
    assert "<b>u</b>" not in panel.recent.value
    panel.job_id.value = "not-a-job"
    panel.refresh()
    assert "no job with id" in panel.job_info.value


def test_a_users_weight_is_shown_and_applied(panel: ControlPanel) -> None:
    panel.limits_user.value = "gold"
    panel.weight.value = 3
    panel.apply_limits.click()
    assert panel.q.limits("gold").weight == 3
    panel.limits_user.value = "*"
    assert panel.weight.value == 1
    panel.limits_user.value = "gold"
    assert panel.weight.value == 3


def test_the_autoscale_switch_grows_the_pool_under_a_backlog(panel: ControlPanel) -> None:
    panel.pool_size.value = 1
    panel.autoscale_bounds.value = (1, 4)
    panel.autoscale.value = True  # no pool yet: nothing to scale
    assert panel.scaler is None
    panel.q.submit_many(Submission(task="simulate", payload={"duration": 0.5}) for _ in range(200))
    panel.start_pool.click()
    assert panel.scaler is not None
    grown = lambda: panel.pool is not None and panel.pool.size > 1  # noqa: E731
    wait_until(grown, timeout=60, what="the autoscaler to grow the pool")
    assert panel.pool is not None
    assert panel.pool.size <= 4
    panel.autoscale.value = False
    assert panel.scaler is None
    panel.stop_pool.click()


def test_the_schedules_are_listed_and_paused_and_resumed_from_the_panel(panel: ControlPanel) -> None:
    assert "no schedules" in panel.schedules_info.value
    panel.q.schedule("simulate", name="nightly", cron="0 3 * * *", timezone="Europe/Paris")
    panel.refresh()
    assert "nightly" in panel.schedules_info.value
    assert "Europe/Paris" in panel.schedules_info.value
    assert list(panel.schedule_pick.options) == ["nightly"]
    panel.schedule_pick.value = "nightly"
    panel.pause_schedule.click()
    assert panel.q.get_schedule("nightly").paused
    assert "paused" in panel.schedules_info.value
    panel.resume_schedule.click()
    assert not panel.q.get_schedule("nightly").paused
    assert "active" in panel.schedules_info.value


def test_the_cancel_button_cancels_a_pending_job_and_asks_a_running_ones_worker(panel: ControlPanel) -> None:
    running, waiting = panel.q.submit("simulate"), panel.q.submit("simulate")
    (lease,) = internals(panel.q).leases.claim("w", None, 1, panel.q.clock.now())
    assert lease.job_id == running.id  # the first in line
    for job_id in (running.id, waiting.id):
        panel.job_id.value = job_id
        panel.cancel_job.click()
    assert panel.q.get(waiting.id).status == JobStatus.CANCELLED
    asked = panel.q.get(running.id)
    assert (asked.status, asked.actions[0].by) == (JobStatus.RUNNING, "control panel")
    panel.job_id.value = running.id
    panel.show_job.click()
    assert "cancel requested at " in panel.job_info.value
    assert "cancel_requested: " in panel.job_info.value  # explain: waiting for the worker
