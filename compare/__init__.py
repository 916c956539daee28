"""Theory vs simulation: tasks, experiments, the comparison layer, sweep runner, result store,
plots and the CLI.

Scripts and notebooks use the same path as the CLI::

    from theorysim.compare import get_experiment, run
    exp = get_experiment("ridge-learning-curve")
    result = run(exp, exp.make_config("quick", {"M": "500"}), "runs")
    result.dataset, result.report, result.run_dir

A new experiment is one file in ``compare/experiments/``: a config (fields declared with
:func:`param`) and a :class:`Sweep` subclass with its grid, one ``sample`` and one ``predict``
(a KRR learning curve on a data set: a :class:`PopulationCurve` with one ``population``).
"""

from ._compare import FAMILY_ALPHA as FAMILY_ALPHA
from ._compare import Check as Check
from ._compare import Comparison as Comparison
from ._compare import Prediction as Prediction
from ._compare import Sweep as Sweep
from ._compare import agreement as agreement
from ._compare import agreement_report as agreement_report
from ._compare import by_category as by_category
from ._compare import compare as compare
from ._compare import diagnostics_rows as diagnostics_rows
from ._compare import mean_field_states as mean_field_states
from ._compare import power_fit as power_fit
from ._compare import power_fits as power_fits
from ._compare import seed_mean_fit as seed_mean_fit
from ._compare import solve as solve
from ._compare import solver_diagnostics as solver_diagnostics
from ._compare import table_rows as table_rows
from ._compare import theory_checks as theory_checks
from ._compare import theory_dataset as theory_dataset
from ._compare import theory_failure as theory_failure
from ._configio import config_from_dict as config_from_dict
from ._configio import config_hash as config_hash
from ._configio import config_to_dict as config_to_dict
from ._configio import describe_config as describe_config
from ._configio import field_bounds as field_bounds
from ._configio import param as param
from ._datasets import SphereHarmonics as SphereHarmonics
from ._executors import Executor as Executor
from ._executors import LocalExecutor as LocalExecutor
from ._executors import SequentialExecutor as SequentialExecutor
from ._executors import SubmititExecutor as SubmititExecutor
from ._experiment import Experiment as Experiment
from ._experiment import ExperimentConfig as ExperimentConfig
from ._experiment import Report as Report
from ._experiment import get_experiment as get_experiment
from ._experiment import register as register
from ._experiment import registry as registry
from ._grid import RunStatus as RunStatus
from ._grid import SweepResult as SweepResult
from ._grid import open_sweep as open_sweep
from ._grid import run_status as run_status
from ._grid import sweep as sweep
from ._jaxcache import compilation_cache_dir as compilation_cache_dir
from ._jaxcache import enable_compilation_cache as enable_compilation_cache
from ._plots import figure as figure
from ._plots import heatmaps as heatmaps
from ._plots import legend as legend
from ._plots import predicted_slope as predicted_slope
from ._plots import reference_power_law as reference_power_law
from ._plots import seed_curve as seed_curve
from ._plots import sim_markers as sim_markers
from ._plots import spectra as spectra
from ._plots import theory_vs_sim as theory_vs_sim
from ._population import PopulationCurve as PopulationCurve
from ._population import PopulationCurveConfig as PopulationCurveConfig
from ._population import held_out_theory as held_out_theory
from ._report import Ratio as Ratio
from ._report import render_markdown as render_markdown
from ._report import render_text as render_text
from ._runner import PointsFailedError as PointsFailedError
from ._runner import RunProblem as RunProblem
from ._runner import RunResult as RunResult
from ._runner import run as run
from ._runner import run_many as run_many
from ._stats import SeedStats as SeedStats
from ._stats import curve_minima as curve_minima
from ._stats import curve_minimum as curve_minimum
from ._stats import seed_stats as seed_stats
from ._stats import z_scores as z_scores
from ._store import DamagedEntryError as DamagedEntryError
from ._store import RunDirectoryError as RunDirectoryError
from ._tasks import PGridConfig as PGridConfig
from ._tasks import PowerLawConfig as PowerLawConfig
from ._tasks import SweepConfig as SweepConfig
from ._tasks import log_grid as log_grid
