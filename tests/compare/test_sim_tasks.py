"""The simulation tasks of compare/_tasks.py: frozen values the engine compiles once per value,
fixed draws from a seed, and the targets they define."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from theorysim.compare._tasks import (
    DigitsImages,
    InContextRegression,
    ModularAddition,
    SyntheticImages,
    TanhTeacher,
    model_for,
)
from theorysim.sims import TrainConfig, train

TASKS = [TanhTeacher(), SyntheticImages(), DigitsImages(), InContextRegression(),
         ModularAddition()]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: type(t).__name__)
def test_tasks_are_values_with_reproducible_draws(task):
    twin = type(task)(**{f.name: getattr(task, f.name) for f in dataclasses.fields(task)})
    assert twin == task and hash(twin) == hash(task)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.seed = 3  # noqa: B018 - every task is frozen
    (x1, y1), (x2, y2), (x3, _) = task.sample(6, 0), task.sample(6, 0), task.sample(6, 1)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert x1.shape[0] == y1.shape[0] == 6 and not np.array_equal(x1, x3)


def test_in_context_regression_target_is_the_context_regression():
    """Noiseless: the least-squares fit of the n context pairs (n >= D) predicts y_q exactly."""
    task = InContextRegression(D=3, n_context=6)
    x, y = task.sample(5, 2)
    tok = x.reshape(5, 7, 4)
    for s in range(5):
        w = np.linalg.lstsq(tok[s, :-1, :3], tok[s, :-1, 3], rcond=None)[0]
        assert tok[s, -1, 3] == 0.0
        np.testing.assert_allclose(tok[s, -1, :3] @ w, y[s], rtol=1e-4, atol=1e-5)


def test_modular_addition_split_covers_every_pair_once():
    task = ModularAddition(p=7, train_fraction=0.4, seed=1)
    xtr, ytr, xte, yte = task.split()
    x, y = np.concatenate([xtr, xte]), np.concatenate([ytr, yte])
    assert len(xtr) == round(0.4 * 49) and len({tuple(r) for r in x}) == 49
    np.testing.assert_array_equal(y, (x[:, 0] + x[:, 1]) % 7)
    assert np.all(x[:, 2] == 7)


def test_digits_split_is_disjoint_and_labelled():
    xtr, ytr, xte, yte = DigitsImages(n_train=40, n_test=30, seed=3).split()
    assert xtr.shape == (40, 64) and xte.shape == (30, 64)
    assert not ({r.tobytes() for r in xtr} & {r.tobytes() for r in xte})
    assert set(np.unique(np.concatenate([ytr, yte]))) <= {-1.0, 1.0}


def test_tasks_drive_the_engine_as_samplers():
    """A task is a sampler: online training of a model sized by model_for."""
    for task, model in ((InContextRegression(D=2, n_context=3), "transformer"),
                        (SyntheticImages(shape=(4, 4, 1)), "cnn"), (TanhTeacher(D=3), "mlp")):
        cfg = model_for(model, task, 8, 1, "mup", **({"heads": 2} if model == "transformer"
                                                     else {}))
        res = train(cfg, TrainConfig(steps=3, lr=0.1, batch_size=4, num_records=2,
                                     observables=("loss",)), sampler=task)
        assert np.all(np.isfinite(res.records["loss"]))


@pytest.mark.parametrize("make, match", [
    (lambda: model_for("rnn", TanhTeacher(), 8, 1, "mup"), "model"),
    (lambda: model_for("cnn", TanhTeacher(), 8, 1, "mup"), "model"),
    (lambda: SyntheticImages(shape=(4, 4)), "shape"),
    (lambda: SyntheticImages(kernel=9), "kernel"),
    (lambda: DigitsImages(n_train=0), "n_train"),
    (lambda: DigitsImages(n_train=1000, n_test=1000), "n_test"),
    (lambda: InContextRegression(noise=-1.0), "noise"),
    (lambda: ModularAddition(p=1), "p"),
    (lambda: ModularAddition(train_fraction=1.0), "train_fraction"),
])
def test_bad_task_parameters_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()
