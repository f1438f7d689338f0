"""Tooling around the notebooks, not taught in them: the runner, the learner copy, the environment check,
the launcher of N ranks and notebook 05's measuring runs."""
