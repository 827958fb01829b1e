"""Matplotlib figures of the lab's frames. Each function takes a frame (a timeline from
:func:`queuelab.stats.timeline` or an experiment, a sweep, or an experiment's samples) and
returns a :class:`~matplotlib.figure.Figure`; nothing touches pyplot's global state, so the
functions are safe in threads, loops and headless runs. In Jupyter a returned figure shows
itself; elsewhere ``fig.savefig("x.png")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from queuelab.errors import InvalidArgument
from queuelab.lab import frames

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SIZE = (7.0, 3.6)
COLORS = {"COMPLETED": "#2a9d8f", "FAILED": "#e76f51", "RUNNING": "#e9c46a", "PENDING": "#8d99ae"}


def _figure(ncols: int = 1, size: tuple[float, float] = SIZE) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _need(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidArgument(f"{what} needs a frame with columns {list(columns)}; missing {missing}")


def throughput(timeline: pd.DataFrame, *, freq: float | None = None, title: str = "Throughput") -> Figure:
    """Jobs completed (and sent to the DLQ) per second over the run, in bins of ``freq``
    seconds (default: sized to the run, :func:`~queuelab.lab.frames.bin_seconds`, so a
    sub-second run draws a curve, not one bar). Each bin is drawn to its end."""
    _need(timeline, ["status", "finished"], "throughput")
    freq = frames.bin_seconds(timeline) if freq is None else freq
    per = frames.throughput(timeline, freq=freq)
    fig, (ax,) = _figure()
    # One more point at the end of the last bin: a step "post" draws each bin's full width.
    edges = np.append(per["time"].to_numpy(), per["time"].iloc[-1] + freq) if len(per) else np.array([])
    for column, color, label in (("completed", "COMPLETED", "completed"), ("failed", "FAILED", "to the DLQ")):
        if column == "failed" and not per["failed"].any():
            continue
        rates = per[column].to_numpy() / freq
        ax.step(edges, np.append(rates, rates[-1:]), where="post", color=COLORS[color], label=label)
    unit = "s" if freq >= 1 else "ms"
    width = f"{freq:g} s" if unit == "s" else f"{freq * 1000:g} ms"
    ax.set(xlabel=f"time since start (s), bins of {width}", ylabel="jobs per second", title=title)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    return fig


def wait_cdf(timeline: pd.DataFrame, *, by: str | None = None, title: str = "Submit-to-start wait") -> Figure:
    """The distribution of waits as a CDF (log time axis), with p50/p95/p99 per group beside it."""
    _need(timeline, ["wait"], "wait_cdf")
    started = timeline[timeline["wait"].notna()]
    fig, (cdf, bars) = _figure(2, (9.0, 3.6))
    groups = [("all", started)] if by is None else list(started.groupby(by))
    for key, part in groups:
        ms = np.sort(np.clip(part["wait"].to_numpy() * 1000, 1e-3, None))
        cdf.step(ms, np.arange(1, len(ms) + 1) / max(len(ms), 1), where="post", label=str(key))
    cdf.set_xscale("log")
    cdf.set(xlabel="wait (ms, log scale)", ylabel="fraction of jobs started", title=title, ylim=(0, 1.02))
    cdf.grid(alpha=0.3)
    if by is not None:
        cdf.legend(fontsize="small")
    table = frames.wait_percentiles(timeline, by=by)
    width = 0.8 / max(len(table), 1)
    for i, (_, row) in enumerate(table.iterrows()):
        bars.bar(np.arange(3) + i * width, [row["p50"] * 1000, row["p95"] * 1000, row["p99"] * 1000], width)
    bars.set_xticks(np.arange(3) + width * (len(table) - 1) / 2, ["p50", "p95", "p99"])
    bars.set(ylabel="wait (ms)", title="percentiles")
    return fig


def retries_histogram(timeline: pd.DataFrame, *, title: str = "Attempts per job") -> Figure:
    """How many attempts jobs took, stacked by final status (COMPLETED, FAILED = in the DLQ)."""
    _need(timeline, ["attempts", "status"], "retries_histogram")
    ran = timeline[timeline["attempts"] > 0]
    fig, (ax,) = _figure()
    top = int(ran["attempts"].max()) if len(ran) else 1
    bins = np.arange(1, top + 2)
    bottom = np.zeros(top)
    for status in ("COMPLETED", "FAILED", "RUNNING", "PENDING"):
        counts = np.histogram(ran.loc[ran["status"] == status, "attempts"], bins=bins)[0]
        if counts.any():
            ax.bar(bins[:-1], counts, bottom=bottom, color=COLORS[status], label=status.lower())
            bottom += counts
    ax.set(xlabel="attempts", ylabel="jobs", title=title, xticks=bins[:-1])
    ax.legend()
    return fig


def dlq_growth(timeline: pd.DataFrame, *, title: str = "Dead-letter queue") -> Figure:
    """Jobs in the DLQ over time (cumulative), beside the jobs completed."""
    _need(timeline, ["status", "finished"], "dlq_growth")
    fig, (ax,) = _figure()
    for status, label in (("FAILED", "in the DLQ"), ("COMPLETED", "completed")):
        times = np.sort(timeline.loc[timeline["status"] == status, "finished"].dropna().to_numpy())
        target = ax if status == "FAILED" else ax.twinx()
        target.step(np.r_[0.0, times], np.arange(len(times) + 1), where="post", color=COLORS[status], label=label)
        target.set_ylabel(f"jobs {label}", color=COLORS[status])
    ax.set(xlabel="time since start (s)", title=title)
    return fig


def user_waits(timeline: pd.DataFrame, *, title: str = "Wait by user (fairness)", top: int = 20) -> Figure:
    """Each user's waits as a box, users ordered by how many jobs they submitted: with fair
    scheduling a light user's box sits well below a heavy user's."""
    _need(timeline, ["user_id", "wait"], "user_waits")
    started = timeline[timeline["wait"].notna()]
    order = started["user_id"].value_counts().index[:top]
    fig, (ax,) = _figure(size=(max(5.0, 0.6 * len(order) + 2), 3.6))
    data = [started.loc[started["user_id"] == u, "wait"].to_numpy() * 1000 for u in order]
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(order) + 1), [f"{u}\n({len(d)})" for u, d in zip(order, data, strict=True)])
    ax.set(xlabel="user (jobs)", ylabel="wait (ms)", title=title)
    ax.grid(axis="y", alpha=0.3)
    return fig


_RATES = ("throughput", "drain_rate")  # a sweep's columns in jobs per second


def throughput_vs_workers(
    sweep: pd.DataFrame, *, x: str = "workers", y: str = "throughput", hue: Sequence[str] = ("backend", "mode")
) -> Figure:
    """A sweep's ``y`` against ``x``, one line per combination of the ``hue`` columns (e.g.
    SQLite threads, SQLite processes, PostgreSQL threads...), the mean of repeats with
    their range."""
    _need(sweep, [x, y], "throughput_vs_workers")
    hues = [h for h in hue if h in sweep.columns]
    fig, (ax,) = _figure()
    groups = sweep.groupby(hues) if hues else [((), sweep)]
    for key, part in groups:
        agg = part.groupby(x)[y].agg(["mean", "min", "max"]).sort_index()
        label = " ".join(str(k) for k in (key if isinstance(key, tuple) else (key,))) or y
        line = ax.plot(agg.index, agg["mean"], marker="o", label=label)[0]
        ax.fill_between(agg.index, agg["min"], agg["max"], color=line.get_color(), alpha=0.15)
    name = y.replace("_", " ")
    ylabel = f"{name} (jobs/s)" if y in _RATES else name
    ax.set(xlabel=x.replace("_", " "), ylabel=ylabel, title=f"{name} against {x.replace('_', ' ')}")
    ax.set_ylim(bottom=0)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def workers_over_time(samples: pd.DataFrame, *, title: str = "Workers and backlog") -> Figure:
    """The pool size (step) and the pending backlog over time, from an experiment's samples
    (or any frame with ``time``, ``workers`` and ``pending``)."""
    _need(samples, ["time", "workers", "pending"], "workers_over_time")
    fig, (ax,) = _figure()
    ax.step(samples["time"], samples["workers"], where="post", color="#264653", label="workers")
    ax.set(xlabel="time since start (s)", ylabel="workers", title=title)
    ax.set_ylim(bottom=0)
    backlog = ax.twinx()
    backlog.plot(samples["time"], samples["pending"], color=COLORS["PENDING"], label="pending")
    backlog.set_ylabel("pending jobs", color=COLORS["PENDING"])
    backlog.set_ylim(bottom=0)
    return fig
