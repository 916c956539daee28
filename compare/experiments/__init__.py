"""Experiments: one module each, registered with ``compare._experiment.register``."""
