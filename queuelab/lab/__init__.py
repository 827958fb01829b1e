"""The lab: load experiments against a real queue (:mod:`.experiment`), load shapes
(:mod:`.load`) and live load (:mod:`.live_load`), I/O-bound drains of async tasks against
slot threads (:mod:`.io_bound`), the lab's pandas frames (:mod:`.frames`)
and plots (:mod:`.plots`), the autoscaling simulator (:mod:`.simulator`), the ipywidgets
control panel (:mod:`.widgets`), the notebooks runner and the terminal demo. It uses the
queue through its facade; nothing below imports it.

    from queuelab import lab
    from queuelab.lab import frames, load, plots
    result = lab.run_experiment("sqlite:///lab.db", load.Poisson(rate=200, seconds=10), workers=4)
"""

from queuelab.extras import LAB, require

# Before any lab module imports them: a missing package names the extra to install.
require(LAB, extra="lab", feature="queuelab.lab")

from queuelab.lab.experiment import ExperimentResult, run_experiment, summarize, sweep, wait_for  # noqa: E402

__all__ = ["ExperimentResult", "run_experiment", "summarize", "sweep", "wait_for"]
