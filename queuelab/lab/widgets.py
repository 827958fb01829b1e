"""An ipywidgets control panel over a live queue: pick the database, serve the API and the
dashboard, start, stop, resize and autoscale a worker pool, start and stop a load, watch
counts, throughput and recent jobs refresh every second, submit a job and look at one (with
``explain`` and its manual actions), work the dead-letter queue, and change rate limits,
quotas and weights.

    from queuelab.lab.widgets import control_panel
    panel = control_panel(q)      # shows it; panel.close() stops everything it started

The refresh runs in a thread, so the kernel stays free; every control is a plain widget
attribute (``panel.start_pool.click()``, ``panel.pool_size.value = 4``) so a test or a
notebook can drive the panel without a browser.
"""

from __future__ import annotations

import html
import io
import json
import os
import threading
from collections.abc import Sequence
from typing import Any

import ipywidgets as w

from queuelab import bounds
from queuelab.api.background import RunningApi, serve
from queuelab.bounds import AUTO, Prefetch
from queuelab.config import MAX_PREFETCH
from queuelab.errors import QueuelabError
from queuelab.lab.live_load import LoadGenerator
from queuelab.lab.panel_views import RECENT_ROWS, job_detail, recent_jobs, schedules_table
from queuelab.limits import UserLimits, rate_enabled
from queuelab.looper import Looper
from queuelab.models import JobStatus
from queuelab.queue import Queue
from queuelab.runtime.autoscale import Autoscaler, ScalePolicy
from queuelab.runtime.pool import Pool

STATUSES = [s.value for s in JobStatus]
DLQ_ROWS = 200
THROUGHPUT_SECONDS = 60

PANEL = "control panel"  # who did it, in the job's history
WEIGHT_TIP = "a user's share under fair scheduling: 3 = three times the jobs of a user of weight 1"
AUTOSCALE_TIP = "grow the pool while more than 10 jobs wait, shrink it after 30 s with none (1 s ticks)"


def panel_policy(low: int, high: int) -> ScalePolicy:
    """The panel's autoscaling: the prototype's thresholds, on a lab's time scale (a 5 s
    cooldown, 30 s without a waiting job before a worker goes, instead of 30 s and 5 min)."""
    return ScalePolicy(min_workers=low, max_workers=high, cooldown_seconds=5.0, idle_seconds=30.0)


def _section(title: str, *children: w.Widget) -> w.VBox:
    return w.VBox([w.HTML(f"<b>{html.escape(title)}</b>"), *children], layout=w.Layout(padding="4px", width="100%"))


class ControlPanel:
    """The panel's widgets and the pool and load generator they control."""

    def __init__(
        self, q: Queue, *, databases: Sequence[str] = (), refresh_seconds: float = 1.0, max_workers: int = 16
    ) -> None:
        self.q = q
        self._owns_queue = False
        self.pool: Pool | None = None
        self.load: LoadGenerator | None = None
        self.api: RunningApi | None = None
        self.scaler: Autoscaler | None = None
        self._lock = threading.RLock()
        self.refreshes = 0

        urls = list(dict.fromkeys([q.settings.database_url, *databases, *_configured_databases()]))
        self.database = w.Combobox(value=urls[0], options=urls, placeholder="database URL", ensure_option=False)
        self.open_database = w.Button(description="Open", tooltip="switch the panel to this database")
        self.database_info = w.HTML()

        self.pool_mode = w.ToggleButtons(options=["thread", "process"], value="thread")
        self.pool_size = w.IntSlider(value=2, min=1, max=max_workers, description="workers")
        prefetch = q.settings.prefetch
        self.pool_prefetch = w.Combobox(
            value="auto" if prefetch is None else str(prefetch),
            options=["auto", "0", "10", "100"],
            ensure_option=False,
            description="prefetch",
            tooltip=f"jobs each worker claims beyond its free slots: auto, or 0 to {MAX_PREFETCH}; set before starting",
        )
        self.start_pool = w.Button(description="Start workers", button_style="success")
        self.stop_pool = w.Button(description="Stop workers", disabled=True)
        self.pool_info = w.HTML("no pool")
        self.autoscale = w.Checkbox(value=False, description="autoscale", tooltip=AUTOSCALE_TIP)
        self.autoscale_bounds = w.IntRangeSlider(value=(1, max_workers), min=1, max=max_workers, description="bounds")

        self.load_rate = w.FloatLogSlider(value=20, base=10, min=0, max=3, description="jobs/s")
        self.load_users = w.IntSlider(value=5, min=1, max=50, description="users")
        self.load_failure = w.IntSlider(value=10, min=0, max=100, description="failure %")
        self.load_duration = w.FloatLogSlider(value=0.05, base=10, min=-3, max=1, description="run (s)")
        self.start_load = w.Button(description="Start load", button_style="info")
        self.stop_load = w.Button(description="Stop load", disabled=True)
        self.load_info = w.HTML("no load")

        self.counts = {s: w.HTML(f"{s.lower()}: 0") for s in STATUSES}
        self.workers_info = w.HTML()
        self.throughput_plot = w.Image(format="png", layout=w.Layout(width="420px"))

        self.dlq = w.SelectMultiple(options=[], rows=8, layout=w.Layout(width="100%"))
        self.requeue = w.Button(description="Requeue selected")
        self.force_success = w.Button(description="Force success")
        self.requeue_all = w.Button(description="Requeue all")
        self.dlq_info = w.HTML()

        self.recent = w.HTML()
        self.submit_task = w.Dropdown(options=sorted(t.name for t in q.tasks), description="task")
        self.submit_user = w.Text(value="panel", description="user")
        self.submit_payload = w.Textarea(value='{"duration": 0.1}', description="payload", placeholder="a JSON object")
        self.submit_priority = w.IntText(value=0, description="priority")
        self.submit_button = w.Button(description="Submit", button_style="primary")
        self.submit_info = w.HTML()
        self.job_id = w.Text(value="", description="job id", placeholder="a job's id (Submit fills it)")
        self.show_job = w.Button(description="Show")
        self.cancel_job = w.Button(description="Cancel", tooltip="a running job: its worker stops it")
        self.job_info = w.HTML()

        self.limits_user = w.Text(value="*", description="user", tooltip="* = every user without overrides")
        self.rate_limit = w.Text(value="", description="rate limit", placeholder="60/minute or none")
        self.max_active = w.IntText(value=0, description="max active", tooltip="0 = no cap")
        self.max_running = w.IntText(value=0, description="max running", tooltip="0 = no quota")
        self.weight = w.BoundedIntText(value=1, min=1, max=bounds.MAX_WEIGHT, description="weight", tooltip=WEIGHT_TIP)
        self.apply_limits = w.Button(description="Apply limits", button_style="warning")
        self.limits_info = w.HTML()

        self.start_api_button = w.Button(description="Start API", tooltip="the HTTP API and the dashboard, on loopback")
        self.stop_api_button = w.Button(description="Stop API", disabled=True)
        self.api_info = w.HTML("not serving")

        self.schedules_info = w.HTML()
        self.schedule_pick = w.Dropdown(options=[], description="schedule")
        self.pause_schedule = w.Button(description="Pause")
        self.resume_schedule = w.Button(description="Resume")

        self.scale_log = w.HTML()
        self._wire()
        self.widget = self._layout()
        self._show_limits()
        self.refresh()
        self.refresher = Refresher(self, refresh_seconds).start()

    # -- layout and wiring --------------------------------------------------------------------

    def _layout(self) -> w.Widget:
        half = w.Layout(width="50%")
        database = _section("Database", w.HBox([self.database, self.open_database]), self.database_info)
        api = _section("HTTP API and dashboard", w.HBox([self.start_api_button, self.stop_api_button]), self.api_info)
        buttons = w.HBox([self.start_pool, self.stop_pool])
        workers = _section("Workers", self.pool_mode, self.pool_size, self.pool_prefetch, buttons)
        workers.children += (self.pool_info, w.HBox([self.autoscale, self.autoscale_bounds]))
        load = _section("Load", self.load_rate, self.load_users, self.load_failure, self.load_duration)
        load.children += (w.HBox([self.start_load, self.stop_load]), self.load_info)
        live = _section("Live", w.HBox(list(self.counts.values())), self.workers_info, self.throughput_plot)
        dlq = _section("Dead-letter queue", self.dlq, w.HBox([self.requeue, self.force_success, self.requeue_all]))
        dlq.children += (self.dlq_info,)
        submit = _section("Submit a job", self.submit_task, self.submit_user, self.submit_payload, self.submit_priority)
        submit.children += (self.submit_button, self.submit_info)
        job = _section("A job", w.HBox([self.job_id, self.show_job, self.cancel_job]), self.job_info)
        limits = _section("Limits", self.limits_user, self.rate_limit, self.max_active, self.max_running, self.weight)
        limits.children += (self.apply_limits, self.limits_info)
        return w.VBox(
            [
                database,
                api,
                w.HBox([w.VBox([workers, load], layout=half), w.VBox([live], layout=half)]),
                w.HBox([w.VBox([dlq], layout=half), w.VBox([limits], layout=half)]),
                w.HBox([w.VBox([submit], layout=half), w.VBox([job], layout=half)]),
                _section("Recent jobs", self.recent),
                _section(
                    "Schedules",
                    self.schedules_info,
                    w.HBox([self.schedule_pick, self.pause_schedule, self.resume_schedule]),
                ),
                _section("Autoscaler decisions", self.scale_log),
            ]
        )

    def _wire(self) -> None:
        self.open_database.on_click(lambda _: self._guard(self.switch_database, self.database.value))
        self.start_api_button.on_click(lambda _: self._guard(self.start_api))
        self.pause_schedule.on_click(lambda _: self._guard(self.q.pause_schedule, self.schedule_pick.value))
        self.resume_schedule.on_click(lambda _: self._guard(self.q.resume_schedule, self.schedule_pick.value))
        self.stop_api_button.on_click(lambda _: self._guard(self.stop_api))
        self.start_pool.on_click(lambda _: self._guard(self.start_workers))
        self.autoscale.observe(lambda _: self._guard(self._autoscale), names="value")
        self.autoscale_bounds.observe(lambda _: self._guard(self._autoscale), names="value")
        self.submit_button.on_click(lambda _: self._guard(self.submit_job))
        self.show_job.on_click(lambda _: self._guard(self._show_job))
        self.cancel_job.on_click(lambda _: self._guard(self._cancel_job))
        self.stop_pool.on_click(lambda _: self._guard(self.stop_workers))
        self.pool_size.observe(lambda change: self._guard(self._resize, change["new"]), names="value")
        self.start_load.on_click(lambda _: self._guard(self.start_generator))
        self.stop_load.on_click(lambda _: self._guard(self.stop_generator))
        for knob in (self.load_rate, self.load_users, self.load_failure, self.load_duration):
            knob.observe(lambda _: self._guard(self._tune_load), names="value")
        self.requeue.on_click(lambda _: self._guard(self._dlq_action, "requeue"))
        self.force_success.on_click(lambda _: self._guard(self._dlq_action, "force_success"))
        self.requeue_all.on_click(lambda _: self._guard(self._requeue_all))
        self.limits_user.observe(lambda _: self._guard(self._show_limits), names="value")
        self.apply_limits.on_click(lambda _: self._guard(self._apply_limits))

    def _guard(self, action: Any, *args: Any) -> None:
        """Run a control's action; a queue error shows in the panel instead of a traceback."""
        try:
            with self._lock:
                action(*args)
        except QueuelabError as exc:
            self.database_info.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
        self.refresh()

    # -- actions ----------------------------------------------------------------------------

    def switch_database(self, url: str) -> None:
        new = Queue(url)
        new.open()  # now: a bad URL fails here, and the old queue stays
        self.stop_generator()
        self.stop_workers()
        self.stop_api()
        old, owned = self.q, self._owns_queue
        self.q, self._owns_queue = new, True
        if owned:
            old.close()
        self._show_limits()

    def start_api(self) -> None:
        """Serve this queue's API and dashboard from the kernel (loopback, a free port)."""
        if self.api is None:
            self.api = serve(self.q)
        self.api_info.value = f'serving: <a href="{self.api.url}/" target="_blank">{self.api.url}/</a> (dashboard)'
        self.start_api_button.disabled, self.stop_api_button.disabled = True, False

    def stop_api(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None
        self.api_info.value = "not serving"
        self.start_api_button.disabled, self.stop_api_button.disabled = False, True

    def start_workers(self) -> None:
        if self.pool is None:
            prefetch = _prefetch(self.pool_prefetch.value)
            self.pool = self.q.worker(self.pool_size.value, self.pool_mode.value, prefetch=prefetch).start()
        self.start_pool.disabled, self.stop_pool.disabled = True, False
        self.pool_mode.disabled = self.pool_prefetch.disabled = True
        self._autoscale()

    def _autoscale(self) -> None:
        """Run an autoscaler over the pool while the switch is on (a new one when the
        bounds move); none without a pool."""
        if self.scaler is not None:
            self.scaler.stop()
            self.scaler = None
        if self.autoscale.value and self.pool is not None:
            low, high = self.autoscale_bounds.value
            self.scaler = self.q.autoscaler(self.pool, panel_policy(low, high), tick_seconds=1.0).start()

    def stop_workers(self) -> None:
        if self.scaler is not None:
            self.scaler.stop()
            self.scaler = None
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        self.start_pool.disabled, self.stop_pool.disabled = False, True
        self.pool_mode.disabled = self.pool_prefetch.disabled = False

    def submit_job(self) -> None:
        """The submission form: one job, then its detail below."""
        try:
            payload = json.loads(self.submit_payload.value or "{}")
        except json.JSONDecodeError as exc:
            self.submit_info.value = f"<span style='color:#b00'>payload is not JSON: {html.escape(str(exc))}</span>"
            return
        job = self.q.submit(
            self.submit_task.value, payload, user_id=self.submit_user.value.strip(), priority=self.submit_priority.value
        )
        self.submit_info.value = f"submitted {html.escape(job.id)}"
        self.job_id.value = job.id
        self._show_job()

    def _show_job(self) -> None:
        job_id = self.job_id.value.strip()
        if not job_id:
            self.job_info.value = ""
            return
        self.job_info.value = job_detail(self.q.get(job_id), self.q.explain(job_id))

    def _cancel_job(self) -> None:
        job_id = self.job_id.value.strip()
        if job_id:
            self.q.cancel(job_id, by=PANEL)
            self._show_job()

    def _resize(self, n: int) -> None:
        if self.pool is not None and self.pool.size != n:
            self.pool.resize(n)

    def start_generator(self) -> None:
        if self.load is None:
            self.load = LoadGenerator(self.q, **self._load_knobs()).start()
        self.start_load.disabled, self.stop_load.disabled = True, False

    def stop_generator(self) -> None:
        if self.load is not None:
            self.load.stop()
            self.load = None
        self.start_load.disabled, self.stop_load.disabled = False, True

    def _load_knobs(self) -> dict[str, Any]:
        return {
            "rate": float(self.load_rate.value),
            "users": int(self.load_users.value),
            "fail_rate": self.load_failure.value / 100,
            "duration": float(self.load_duration.value),
        }

    def _tune_load(self) -> None:
        if self.load is not None:
            for name, value in self._load_knobs().items():
                setattr(self.load, name, value)

    def _dlq_action(self, action: str) -> None:
        ids = list(self.dlq.value)
        for job_id in ids:
            getattr(self.q, action)(job_id, by=PANEL)
        verb = "requeued" if action == "requeue" else "marked completed"
        self.dlq_info.value = f"{len(ids)} job(s) {verb}"

    def _requeue_all(self) -> None:
        self.dlq_info.value = f"{self.q.requeue_many(by=PANEL)} job(s) requeued"

    def _show_limits(self) -> None:
        user = self.limits_user.value.strip() or "*"
        try:
            limits = self.q.limits(user)
        except QueuelabError as exc:
            self.limits_info.value = html.escape(str(exc))
            return
        rate = rate_enabled(limits.rate_limit)
        self.rate_limit.value = str(rate) if rate else "none"
        self.max_active.value = limits.max_active or 0
        self.max_running.value = limits.max_running or 0
        self.weight.value = limits.weight or 1
        self.limits_info.value = _describe(user, limits)

    def _apply_limits(self) -> None:
        user = self.limits_user.value.strip() or "*"
        try:
            limits = self.q.set_limits(
                user,
                rate_limit=self.rate_limit.value.strip() or "none",
                max_active=self.max_active.value,
                max_running=self.max_running.value,
                weight=self.weight.value,
            )
        except QueuelabError as exc:
            self.limits_info.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            return
        self.limits_info.value = "applied: " + _describe(user, limits)

    # -- refresh ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the queue once and update every live widget. Under the panel's lock from
        the read to the last widget: a refresh that read before an action cannot overwrite
        the widgets after the action's own refresh."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        q, pool, load = self.q, self.pool, self.load
        stats = q.stats()
        series = q.completed_series(THROUGHPUT_SECONDS)
        dead = q.dlq(limit=DLQ_ROWS)
        events = _scale_events(q)
        for status, label in self.counts.items():
            label.value = f"{status.lower()}: <b>{stats.by_status.get(status, 0)}</b>"
        self.workers_info.value = (
            f"{len(stats.live_workers)} live worker(s) in the store · "
            f"{stats.completed_per_second:.1f} jobs/s over the last minute · DLQ {stats.dlq_size}"
        )
        self.throughput_plot.value = _throughput_png(series)
        self.schedules_info.value = schedules_table(stats.schedules)
        names = [s.name for s in stats.schedules]
        if names != list(self.schedule_pick.options):
            self.schedule_pick.options = names
        self.pool_info.value = f"{pool.size} {self.pool_mode.value} worker(s) running" if pool else "no pool"
        if pool is not None and pool.size != self.pool_size.value:
            self.pool_size.value = pool.size  # follow a resize made elsewhere (an autoscaler, say)
        self.load_info.value = (
            f"submitted {load.submitted}, refused {load.refused}" + (f", errors {load.errors}" if load.errors else "")
            if load
            else "no load"
        )
        options = [(f"{j.id[:8]} {j.task} user={j.user_id} attempts={j.attempts}", j.id) for j in dead]
        if options != list(self.dlq.options):
            keep = tuple(v for v in self.dlq.value if v in {o[1] for o in options})
            self.dlq.options = options
            self.dlq.value = keep
        self.database_info.value = (
            self.database_info.value if "color" in self.database_info.value else html.escape(repr(q))
        )
        self.scale_log.value = events
        self.recent.value = recent_jobs(q.jobs(limit=RECENT_ROWS))
        if self.job_id.value.strip():
            try:
                self._show_job()
            except QueuelabError as exc:  # a mistyped id, a job pruned meanwhile
                self.job_info.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
        self.refreshes += 1

    def close(self) -> None:
        """Stop the refresh, the load and the pool (and close the queue if the panel opened it)."""
        self.refresher.stop()
        with self._lock:
            self.stop_generator()
            self.stop_workers()
            self.stop_api()
            if self._owns_queue:
                self.q.close()
        self.widget.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        return f"<ControlPanel on {self.q!r}>"


class Refresher(Looper):
    """Refreshes the panel every ``every`` seconds. A tick reads the time of the panel's
    queue, not the times it is given: the panel can be switched to another database."""

    def __init__(self, panel: ControlPanel, every: float) -> None:
        super().__init__("queuelab-panel", every=every)
        self.panel = panel

    def tick(self, now: float, mono: float) -> None:
        self.panel.refresh()


def control_panel(q: Queue, **options: Any) -> ControlPanel:
    """Build the panel over ``q`` and show it (in Jupyter); returns it, so a notebook or a
    test can drive it. ``options``: ``databases`` (more URLs to offer), ``refresh_seconds``,
    ``max_workers``."""
    panel = ControlPanel(q, **options)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return panel
    if get_ipython() is not None:
        display(panel.widget)  # type: ignore[no-untyped-call]
    return panel


def _configured_databases() -> list[str]:
    return [url for url in (os.environ.get("QUEUELAB_POSTGRES_URL"),) if url]


def _describe(user: str, limits: UserLimits) -> str:
    rate = rate_enabled(limits.rate_limit) or "no rate limit"
    active = f"max {limits.max_active} active" if limits.max_active else "no active cap"
    running = f"max {limits.max_running} running" if limits.max_running else "no running quota"
    return html.escape(f"{user}: {rate}, {active}, {running}")


def _throughput_png(series: list[int]) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 1.8), layout="constrained")
    ax = fig.subplots()
    ax.bar(range(-len(series) + 1, 1), series, width=1.0, color="#2a9d8f")
    ax.set(xlabel="seconds ago", ylabel="completed / s", xlim=(-len(series), 1))
    ax.set_ylim(bottom=0, top=max(1, *series) * 1.1)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def _scale_events(q: Queue) -> str:
    """The autoscaler's latest decisions as a small HTML table (every value escaped)."""
    events = q.scale_events(limit=10)
    if not events:
        return "no scaling decisions yet (run workers with --autoscale MIN:MAX)"
    head = "".join(f"<th>{h}</th>" for h in ("time", "backlog", "workers", "reason"))
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(cell))}</td>"
            for cell in (
                e.at.astimezone().strftime("%H:%M:%S"),
                e.backlog,
                f"{e.workers_before} → {e.workers_after}",
                e.reason,
            )
        )
        + "</tr>"
        for e in events
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _prefetch(text: str) -> Prefetch:
    """The prefetch box: "auto", or a whole number of jobs."""
    value = text.strip().lower()
    if value == AUTO:
        return AUTO
    number: object = int(value) if value.isdigit() else text
    return bounds.whole("prefetch", number, 0, MAX_PREFETCH)
