"""Theory vs simulation: tasks, experiments, sweep runner, result store, plots and the CLI.

Scripts and notebooks use the same path as the CLI::

    from theorysim.compare import get_experiment, run
    exp = get_experiment("ridge-learning-curve")
    result = run(exp, exp.make_config("quick", {"M": "500"}), "runs")
    result.dataset, result.report, result.run_dir
"""

from ._experiment import Experiment as Experiment
from ._experiment import ExperimentConfig as ExperimentConfig
from ._experiment import Report as Report
from ._experiment import get_experiment as get_experiment
from ._experiment import register as register
from ._experiment import registry as registry
from ._runner import RunResult as RunResult
from ._runner import run as run
from ._store import RunDirectoryError as RunDirectoryError
from ._tasks import PowerLawGaussian as PowerLawGaussian
