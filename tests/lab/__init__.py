"""The lab: load plans, experiments, frames, plots, widgets, notebooks and the live load."""
