"""``make figures`` waits for a quiet machine and says when, where and how each figure was drawn."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from queuelab.lab import notebooks


@pytest.mark.parametrize(
    ("load", "cores", "refused"),
    [(0.2, 2, False), (1.0, 2, False), (1.1, 2, True), (9.0, 8, True), (3.9, 8, False)],
)
def test_a_load_above_half_a_core_each_is_busy(load: float, cores: int, refused: bool) -> None:
    reason = notebooks.busy(load, cores)
    assert (reason is not None) == refused
    if reason is not None:
        assert f"load average {load:.1f} on {cores} core(s)" in reason


def test_figures_are_refused_on_a_busy_machine_before_anything_runs(tmp_path: Path) -> None:
    figures, work = tmp_path / "figures", tmp_path / "work"
    argv = ["--figures", str(figures), "--work", str(work), "no-such-notebook.ipynb"]
    assert notebooks.main(argv, load=lambda: 64.0) == notebooks.EXIT_BUSY
    assert not figures.exists()  # nothing was started, nothing drawn
    assert not work.exists()


def test_the_captions_say_which_notebook_drew_each_figure_when_and_where() -> None:
    drawn = {"01_quickstart.ipynb": ["quickstart_throughput.png"], "06_autoscaling.ipynb": ["a.png", "b.png"]}
    when = datetime(2026, 12, 6, 11, 45, tzinfo=UTC)
    text = notebooks.captions(drawn, when=when, where="lab (2 cores, load 0.3)", command="make figures")
    assert "Drawn 2026-12-06 11:45 UTC on lab (2 cores, load 0.3) by `make figures`." in text
    assert "| `quickstart_throughput.png` | `notebooks/01_quickstart.ipynb` |" in text
    assert text.count("06_autoscaling.ipynb") == 2


def test_without_a_notebooks_folder_the_runner_says_where_to_point_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Installed from a wheel, the default folder (beside the package) does not exist."""
    assert notebooks.main(["--dir", str(tmp_path / "absent"), "--work", str(tmp_path / "work")]) == 2
    assert "(the notebooks ship with the source repository, not the package): pass --dir" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_the_notebooks_own_load_after_the_run_does_not_mark_the_figures_busy(tmp_path: Path) -> None:
    """Loads read before and after the run: the run's own workers raise the second."""
    (tmp_path / "nb").mkdir()
    loads = iter([0.4, 1.9])
    argv = ["--dir", str(tmp_path / "nb"), "--figures", str(tmp_path / "figures"), "--work", str(tmp_path / "work")]
    assert notebooks.main(argv, load=lambda: next(loads)) == 0
    text = (tmp_path / "figures" / "CAPTIONS.md").read_text()
    assert "load average 0.4 before, 1.9 after, the notebooks' own work included" in text
    assert "busier than figures should be drawn on" not in text
