"""Theory vs simulation: tasks, experiments, sweep runner, result store, plots and the CLI."""
