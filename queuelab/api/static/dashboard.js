// The queuelab dashboard: polls the API and renders with textContent only, so any
// user-supplied string (a payload holding <script>, say) shows as text, never as markup.

const $ = (selector) => document.querySelector(selector);
const tokenInput = $("#token");
tokenInput.value = localStorage.getItem("queuelab-token") || "";
tokenInput.addEventListener("change", () => localStorage.setItem("queuelab-token", tokenInput.value.trim()));

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", ...(options.headers || {}) };
  const token = tokenInput.value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
  return body;
}

function el(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

function jobLink(id) {
  const link = el("a", id.slice(0, 8), { href: "#", class: "job", "data-job": id, title: id });
  link.addEventListener("click", (event) => { event.preventDefault(); showJob(id); });
  return link;
}

function time(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

function drawThroughput(series) {
  const canvas = $("#throughput");
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  const top = Math.max(1, ...series);
  context.strokeStyle = "#ddd";
  context.beginPath(); context.moveTo(0, height - 1); context.lineTo(width, height - 1); context.stroke();
  context.fillStyle = "#6b7280";
  context.fillText(`${top}/s`, 4, 12);
  context.strokeStyle = "#1a56db";
  context.lineWidth = 2;
  context.beginPath();
  series.forEach((value, i) => {
    const x = (i / Math.max(1, series.length - 1)) * width;
    const y = height - 2 - (value / top) * (height - 18);
    if (i === 0) context.moveTo(x, y); else context.lineTo(x, y);
  });
  context.stroke();
  canvas.dataset.points = String(series.length);
  canvas.dataset.total = String(series.reduce((a, b) => a + b, 0));
}

async function refreshStats() {
  const stats = await api("/api/stats/");
  for (const [status, count] of Object.entries(stats.by_status)) {
    const cell = $(`#count-${status}`);
    if (cell) cell.textContent = String(count);
  }
  drawThroughput(stats.throughput);
  const age = stats.oldest_pending_age_seconds;
  $("#oldest").textContent = age === null ? "no runnable job is waiting" : `oldest runnable job waiting ${age.toFixed(1)} s`;
  const list = $("#workers");
  list.replaceChildren(...stats.live_workers.map((w) => el("li", `${w.id} · ${w.mode} · ${w.concurrency} slot(s) · queues ${w.queues}`)));
  $("#worker-count").textContent = `(${stats.live_workers.length})`;
}

async function refreshRecent() {
  const page = await api("/api/jobs/?limit=20");
  const rows = page.jobs.map((job) => {
    const row = el("tr", undefined, { "data-job": job.job_id });
    const id = el("td"); id.append(jobLink(job.job_id));
    row.append(id, el("td", job.status, { class: `status-${job.status}` }), el("td", job.user_id), el("td", job.task),
      el("td", job.attempts), el("td", JSON.stringify(job.payload), { class: "payload" }), el("td", time(job.created_at)),
      cancelCell(job));
    return row;
  });
  $("#recent tbody").replaceChildren(...rows);
}

// A pending job is cancelled at once; a running one is asked to stop (its worker ends it
// CANCELLED: cooperatively, or by force after the grace period).
function cancelCell(job) {
  const cell = el("td");
  if (job.status !== "PENDING" && job.status !== "RUNNING") return cell;
  const asked = Boolean(job.cancel_requested_at);
  const button = el("button", asked ? "Stopping…" : "Cancel", { type: "button", "data-action": "CANCEL" });
  button.disabled = asked;
  button.addEventListener("click", () => cancelJob(job.job_id));
  cell.append(button);
  return cell;
}

async function cancelJob(jobId) {
  try {
    await api(`/api/cancel/${jobId}/`, { method: "POST" });
    await Promise.all([refreshRecent(), showJob(jobId)]);
  } catch (error) { alert(error.message); }
}

async function refreshDlq() {
  const page = await api("/api/dlq/?limit=50");
  const rows = page.jobs.map((job) => {
    const last = job.errors.length ? job.errors[job.errors.length - 1] : null;
    const row = el("tr", undefined, { "data-job": job.job_id });
    const id = el("td"); id.append(jobLink(job.job_id));
    const actions = el("td");
    for (const [label, action] of [["Requeue", "REQUEUE"], ["Force success", "FORCE_SUCCESS"]]) {
      const button = el("button", label, { type: "button", "data-action": action });
      button.addEventListener("click", () => act(job.job_id, action));
      actions.append(button);
    }
    row.append(id, el("td", job.user_id), el("td", job.task), el("td", job.attempts),
      el("td", last ? `${last.error_type}: ${last.error_message}` : "", { title: job.dead_letter_reason || "" }),
      el("td", job.dead_letter_reason || "", { class: "reason" }), actions);
    return row;
  });
  $("#dlq tbody").replaceChildren(...rows);
}

async function refreshScaleEvents() {
  const page = await api("/api/scale-events/?limit=20");
  const rows = page.events.map((e) => {
    const row = el("tr", undefined, { "data-event": String(e.id) });
    const change = e.workers_after > e.workers_before ? "up" : "down";
    row.append(el("td", time(e.at)), el("td", e.pool_id), el("td", `${e.workers_before} → ${e.workers_after}`, { class: `scale-${change}` }),
      el("td", e.backlog), el("td", e.running), el("td", e.reason));
    return row;
  });
  $("#scale-events tbody").replaceChildren(...rows);
  $("#scale-none").hidden = rows.length > 0;
}

async function refreshSchedules() {
  const found = await api("/api/schedules/");
  const rows = found.schedules.map((s) => {
    const row = el("tr", undefined, { "data-schedule": s.name });
    const verb = s.paused ? "resume" : "pause";
    const button = el("button", verb === "pause" ? "Pause" : "Resume", { type: "button" });
    button.addEventListener("click", () => toggleSchedule(s.name, verb));
    const actions = el("td");
    actions.append(button);
    row.append(el("td", s.name), el("td", s.task), el("td", s.cron), el("td", s.timezone),
      el("td", time(s.next_run_at)), el("td", s.last_tick_at ? time(s.last_tick_at) : ""),
      el("td", s.paused ? "paused" : "active"), actions);
    return row;
  });
  $("#schedules tbody").replaceChildren(...rows);
  $("#schedules-none").hidden = rows.length > 0;
}

async function toggleSchedule(name, verb) {
  try {
    await api(`/api/schedules/${encodeURIComponent(name)}/${verb}/`, { method: "POST" });
    await refreshSchedules();
  } catch (error) { alert(error.message); }
}

async function act(jobId, action) {
  try {
    await api(`/api/requeue/${jobId}/`, { method: "POST", body: JSON.stringify({ action }) });
    await Promise.all([refreshDlq(), refreshRecent(), showJob(jobId)]);
  } catch (error) { alert(error.message); }
}

async function showJob(jobId) {
  const box = $("#job-detail");
  try {
    const job = await api(`/api/status/${jobId}/`);
    const parts = [
      el("p", `${job.job_id} · ${job.status} · ${job.attempts} of ${job.max_retries + 1} attempts · user ${job.user_id} · task ${job.task}`, { id: "job-summary" }),
      el("p", `payload: ${JSON.stringify(job.payload)}`, { class: "payload" }),
      el("p", `result: ${JSON.stringify(job.result)}${job.forced ? " (forced)" : ""}`),
    ];
    if (job.cancel_requested_at && job.status === "RUNNING") {
      parts.push(el("p", `cancel requested at ${time(job.cancel_requested_at)}, waiting for its worker to stop it`, { id: "job-cancel-requested" }));
    }
    if (job.status === "PENDING" || job.status === "RUNNING") {
      const cancel = el("p");
      cancel.append(cancelCell(job).firstChild);
      parts.push(cancel);
    }
    if (job.dead_letter_reason) parts.push(el("p", `dead-letter reason: ${job.dead_letter_reason}`, { id: "job-dead-letter-reason" }));
    if (job.progress !== null && job.progress !== undefined) {
      const note = job.progress_message ? ` · ${job.progress_message}` : "";
      parts.push(el("p", `progress ${Math.round(job.progress * 100)}%${note}`, { id: "job-progress" }));
    }
    for (const attempt of job.history) {
      const head = `attempt ${attempt.number} · ${attempt.outcome} · ${attempt.worker_id || ""} · ${time(attempt.finished_at)}`;
      parts.push(el("p", head));
      if (attempt.error_type) parts.push(el("pre", `${attempt.error_type}: ${attempt.error_message}\n${attempt.traceback || ""}`));
    }
    for (const action of job.actions) {  // manual actions: what, when, who
      const what = action.action.toLowerCase().replace("_", " ");
      parts.push(el("p", `${what} from ${action.from_status} · ${time(action.at)} · by ${action.by || "(not said)"}`, { class: "job-action" }));
    }
    box.replaceChildren(...parts);
    box.dataset.job = job.job_id;
    box.dataset.status = job.status;
  } catch (error) { box.textContent = error.message; }
}

$("#submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = $("#submit-result");
  try {
    const body = { user_id: form.get("user_id"), task: form.get("task"), payload: JSON.parse(form.get("payload") || "{}"),
      priority: Number(form.get("priority") || 0) };
    const delay = Number(form.get("delay_seconds") || 0);
    if (delay > 0) body.delay_seconds = delay;
    const job = await api("/api/submit/", { method: "POST", body: JSON.stringify(body) });
    result.textContent = `submitted ${job.job_id}`;
    result.dataset.job = job.job_id;
    await showJob(job.job_id);
  } catch (error) { result.textContent = `error: ${error.message}`; }
});

$("#requeue-all").addEventListener("click", async () => {
  try {
    const done = await api("/api/dlq/requeue/", { method: "POST", body: "{}" });
    $("#submit-result").textContent = `requeued ${done.requeued} job(s)`;
    await refreshDlq();
  } catch (error) { alert(error.message); }
});

async function tick() {
  try {
    await Promise.all([refreshStats(), refreshRecent(), refreshDlq(), refreshScaleEvents(), refreshSchedules()]);
    const selected = $("#job-detail").dataset.job;
    if (selected) await showJob(selected);
    $("#connection").textContent = `live · ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $("#connection").textContent = `error: ${error.message}`;
  }
}

tick();
setInterval(tick, 1000);
