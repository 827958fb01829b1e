"""The run's figures as matplotlib :class:`~matplotlib.figure.Figure` objects (never
pyplot, so nothing global is touched): drain rate against workers beside the floor, every
throughput as a fraction of its floor, a worker's memory over the long run, and the churn
run's curves (claim p50, dead tuples, sizes) over the jobs pushed through."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from queuelab.bench.report import Row
from queuelab.bench.results import Series

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLORS = {"thread": "#2a9d8f", "process": "#e76f51", "sqlite": "#264653", "postgresql": "#e9c46a"}


def _figure(ncols: int, size: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def _databases(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(r.result.database for r in rows))


def drain_vs_workers(rows: Sequence[Row]) -> Figure:
    """Jobs per second against workers, slot threads and worker processes (on the defaults,
    and processes with prefetch 0), one panel per database, with the raw floors."""
    drains = [r for r in rows if r.result.scenario == "drain"]
    databases = _databases(drains)
    fig, axes = _figure(len(databases), (5.2 * len(databases), 3.8))
    for ax, database in zip(axes, databases, strict=True):
        mine = [r for r in drains if r.result.database == database and "prefetch" not in r.result.case]
        for mode, label in (("thread", "slot threads, 1 process"), ("process", "worker processes")):
            points = sorted((r.result.workers, r.result.value) for r in mine if r.result.mode == mode)
            ax.plot(*zip(*points, strict=True), marker="o", color=COLORS[mode], label=f"queuelab, {label}")
        ahead = [r for r in drains if r.result.database == database and "prefetch" in r.result.case]
        if ahead:
            points = sorted((r.result.workers, r.result.value) for r in ahead)
            label = "queuelab, worker processes, " + ahead[0].result.case.rsplit(", ", 1)[1]
            ax.plot(*zip(*points, strict=True), marker="s", ls="-.", color=COLORS["process"], label=label)
        for key, label, style in (
            ("turn/1", "raw floor, 1 job/txn", ":"),
            ("turn/batch", "raw floor, 100 jobs/txn", "-."),
        ):
            value = next((r.floor.value for r in drains if r.result.database == database and r.floor
                          and r.floor.key == key), None)  # fmt: skip
            if value is not None:
                ax.axhline(value, ls=style, color="grey", label=label)
        ax.set_xscale("log", base=2)
        ax.minorticks_off()
        ax.set_xticks([1, 2, 4, 8], labels=["1", "2", "4", "8"])
        ax.set(xlabel="workers (slot threads or processes)", ylabel="jobs per second", title=database)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def floor_ratios(rows: Sequence[Row]) -> Figure:
    """Every throughput as a fraction of the raw floor it is compared with."""
    compared = [r for r in rows if r.ratio is not None]
    databases = _databases(compared)
    height = max(3.0, 0.22 * max((sum(r.result.database == d for r in compared) for d in databases), default=1) + 1)
    fig, axes = _figure(len(databases), (6.5 * len(databases), height))
    for ax, database in zip(axes, databases, strict=True):
        mine = [r for r in compared if r.result.database == database]
        labels = [f"{r.result.scenario}: {r.result.case}"[:60] for r in mine]
        ratios = [r.ratio or 0.0 for r in mine]
        bars = ax.barh(range(len(mine)), ratios, color=COLORS.get(database, "grey"))
        ax.bar_label(bars, labels=[f"{x:.2f}" for x in ratios], fontsize=6, padding=2)
        ax.set_yticks(range(len(mine)), labels=labels, fontsize=6)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set(xlabel="queuelab / raw SQL floor (same run)", title=database)
        ax.grid(axis="x", alpha=0.3)
    return fig


def rss_over_run(series: Sequence[Series]) -> Figure:
    fig, (ax,) = _figure(1, (6.0, 3.4))
    for s in series:
        xs, ys = zip(*s.points, strict=True)
        ax.plot(xs, ys, marker=".", color=COLORS.get(s.database, "grey"), label=s.database)
    ax.set(xlabel="jobs done", ylabel="worker RSS (MB)", title="One worker process's memory over a long run")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


CHURN = "churn: "


def churn_over_run(series: Sequence[Series]) -> Figure:
    """One panel per quantity the churn run sampled (claim p50, dead tuples, sizes), a line
    per database and autovacuum variant."""
    from matplotlib.figure import Figure

    labels = list(dict.fromkeys(s.y_label for s in series))
    fig = Figure(figsize=(4.0 * min(4, len(labels)), 3.2 * ((len(labels) + 3) // 4)), layout="constrained")
    axes = fig.subplots((len(labels) + 3) // 4, min(4, len(labels)), squeeze=False).flatten()
    for ax, label in zip(axes, labels, strict=False):
        for s in (s for s in series if s.y_label == label):
            xs, ys = zip(*s.points, strict=True)
            variant = s.name.rpartition(", ")[2]
            ax.plot(xs, ys, marker=".", label=f"{s.database}, {variant}")
        ax.set(xlabel=series[0].x_label, ylabel=label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(labels) :]:
        ax.set_visible(False)
    fig.suptitle("Churn: submit, run, prune; no manual VACUUM")
    return fig


def save(rows: Sequence[Row], series: Sequence[Series], folder: Path, stem: str) -> list[Path]:
    """Write the PNGs that have data; the paths written."""
    figures: list[tuple[str, Figure]] = []
    if any(r.result.scenario == "drain" for r in rows):
        figures.append(("drain", drain_vs_workers(rows)))
    if any(r.ratio is not None for r in rows):
        figures.append(("floor-ratios", floor_ratios(rows)))
    curves = [s for s in series if s.points and not s.name.startswith(CHURN)]
    if curves:
        figures.append(("rss", rss_over_run(curves)))
    churn = [s for s in series if s.points and s.name.startswith(CHURN)]
    if churn:
        figures.append(("churn", churn_over_run(churn)))
    paths = []
    for name, fig in figures:
        path = folder / f"{stem}-{name}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths
