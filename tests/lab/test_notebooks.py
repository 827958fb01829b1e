"""Every notebook runs top to bottom in a fresh kernel, headless, with small parameters, and
draws its figures; the committed notebooks carry no outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest

from queuelab.lab.notebooks import DEFAULT_DIR, execute, images

pytestmark = pytest.mark.slow

SMALL: dict[str, tuple[dict[str, Any], int]] = {
    # notebook: (parameters, figures it must draw at least)
    "01_quickstart.ipynb": ({"RATE": 100, "SECONDS": 1, "WORKERS": 2}, 2),
    "02_throughput_vs_workers.ipynb": ({"JOBS": 100, "WORKER_COUNTS": [1, 2], "REPEAT": 1}, 1),
    "03_retries_and_dlq.ipynb": ({"JOBS": 60, "RETRY_BASE_SECONDS": 0.01}, 2),
    "04_rate_limits_and_fairness.ipynb": ({"HEAVY_JOBS": 200, "LIGHT_USERS": 2, "LIGHT_JOBS": 5}, 3),
    "05_control_panel.ipynb": ({"DEMO_SECONDS": 3}, 2),
    "06_autoscaling.ipynb": (
        {"BURST_JOBS": 300, "DIURNAL_RATE": 0.2, "REAL_BURST_JOBS": 150, "REAL_MAX_WORKERS": 3},
        3,
    ),
    "07_async_and_periodic.ipynb": (
        {"JOBS": 100, "ASYNC_CONCURRENCY": 50, "THREADS": [8], "TICK_SECONDS": 3, "TICK_WORKERS": 2},
        2,
    ),
}


def test_every_notebook_is_covered_and_committed_clean() -> None:
    on_disk = sorted(p.name for p in DEFAULT_DIR.glob("[0-9]*.ipynb"))
    assert set(SMALL) <= set(on_disk)
    for name in on_disk:
        notebook = nbformat.read(DEFAULT_DIR / name, as_version=4)  # type: ignore[no-untyped-call]  # nbformat leaves read() unannotated
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name} has outputs"
        assert "parameters" in code[0].metadata.get("tags", []), f"{name}: the first code cell holds the parameters"
        assert notebook.cells[0].cell_type == "markdown", f"{name} opens with its question"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs_and_draws_its_figures(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    parameters, figures = SMALL[name]
    parameters = {**parameters, "DATABASE": f"sqlite:///{tmp_path / 'lab.db'}", "FIGURES_DIR": str(tmp_path)}
    if name.startswith("02"):
        parameters["POSTGRES_URL"] = request.getfixturevalue("postgres_url")  # side by side with SQLite
    notebook = execute(DEFAULT_DIR / name, parameters, cwd=tmp_path)
    drawn = images(notebook)
    assert len(drawn) >= figures, f"{name} drew {len(drawn)} figures, expected {figures}"
    assert list(tmp_path.glob("*.png")), f"{name} saved no README figure"
    if name.startswith("02"):
        table = next(c for c in notebook.cells if c.cell_type == "code" and "pivot_table" in c.source)
        text = table.outputs[0]["data"]["text/plain"]
        assert "postgresql" in text
        assert "sqlite" in text
