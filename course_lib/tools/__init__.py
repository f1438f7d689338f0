"""Tooling around the notebooks, not taught in them: the runner, the learner copy and the environment check."""
