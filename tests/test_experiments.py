"""helpers.experiments: tidy results, Student-t intervals, paired differences, the plot."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from helpers import experiments


@pytest.fixture(autouse=True)
def own_machine(monkeypatch):
    """These tests exercise the parallel path: pretend no other xdist worker shares the cores."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)


def test_mean_ci_matches_scipy_t_interval():
    x = [0.91, 0.93, 0.90, 0.94, 0.92]
    e = experiments.mean_ci(x)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert e.n == 5 and math.isclose(e.mean, np.mean(x))
    assert math.isclose(e.ci_low, low, rel_tol=1e-12) and math.isclose(e.ci_high, high, rel_tol=1e-12)


def test_mean_ci_single_value_is_unbounded_and_empty_is_an_error():
    e = experiments.mean_ci([0.5])
    assert e.ci_low == -math.inf and e.ci_high == math.inf
    with pytest.raises(ValueError, match="at least one"):
        experiments.mean_ci([])


def test_run_builds_a_tidy_table_with_every_condition_and_seed():
    exp = experiments.run({"a": lambda s: {"acc": 0.5 + s / 100}, "b": lambda s: 0.4}, seeds=range(3))
    r = exp.results
    assert list(r.columns) == ["condition", "seed", "metric", "value"]
    assert set(r["metric"]) == {"acc", "seconds", "metric"}
    assert len(r[(r["condition"] == "a") & (r["metric"] == "acc")]) == 3
    assert exp.values("a", "acc").tolist() == pytest.approx([0.50, 0.51, 0.52])
    s = exp.summary("acc")
    assert s.loc[0, "mean"] == pytest.approx(0.51)


def test_paired_difference_uses_the_same_seeds():
    # a = b + 0.1 exactly on every seed, while both vary a lot between seeds:
    # the paired difference has zero width, an unpaired one would not.
    noise = {0: 0.0, 1: 0.3, 2: -0.2, 3: 0.1}
    exp = experiments.run({"a": lambda s: 0.6 + noise[s], "b": lambda s: 0.5 + noise[s]}, seeds=range(4))
    d = exp.difference("a", "b")
    assert d.mean == pytest.approx(0.1) and d.ci_low == pytest.approx(0.1) and d.ci_high == pytest.approx(0.1)
    assert "a − b" in str(d)


def test_unknown_names_give_clear_errors():
    exp = experiments.run({"a": lambda s: 1.0}, seeds=[0, 1])
    with pytest.raises(ValueError, match="condition='z' unknown"):
        exp.values("z")
    with pytest.raises(ValueError, match="metric='acc' not measured"):
        exp.summary("acc")
    with pytest.raises(ValueError, match="at least one seed"):
        experiments.run({"a": lambda s: 1.0}, seeds=[])


def test_plot_draws_one_error_bar_per_condition():
    import matplotlib

    matplotlib.use("Agg")
    exp = experiments.run({"a": lambda s: s * 1.0, "b": lambda s: 2.0 + s}, seeds=range(3))
    ax = exp.plot()
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["a", "b"]
    means = ax.lines[0].get_ydata() if ax.lines else None
    assert means is not None and list(means) == pytest.approx([1.0, 3.0])


def _seeded_score(seed: int) -> dict[str, float]:
    """A condition that depends on torch's global RNG, as a training run does."""
    import os

    import torch

    torch.manual_seed(seed)
    net = torch.nn.Linear(4, 1)
    with torch.no_grad():
        return {"score": float(net(torch.randn(8, 4)).sum()), "pid": float(os.getpid())}


@pytest.fixture
def one_thread():
    """torch on one thread (as the notebooks that run seeds in parallel), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_parallel_workers_give_the_serial_table_from_other_processes(one_thread):
    import os

    if experiments.available_workers() < 2:
        pytest.skip("needs Linux and at least 2 cores")
    stored = {}

    def keeps_model(seed: int) -> dict[str, float]:
        stored[seed] = seed  # e.g. the trained model a later cell draws
        return _seeded_score(seed + 10)

    conditions = {"a": _seeded_score, "b": keeps_model}
    serial = experiments.run(conditions, seeds=range(4))
    stored.clear()
    parallel = experiments.run(conditions, seeds=range(4), workers=2)
    assert stored == {0: 0}  # only the first seed ran in this process
    scores = [e.results.query("metric == 'score'").reset_index(drop=True) for e in (serial, parallel)]
    pd.testing.assert_frame_equal(scores[0], scores[1])  # same values, same order
    pids = parallel.results.query("metric == 'pid'").set_index("seed")["value"]
    assert (pids.loc[0] == os.getpid()).all()  # the first seed runs here (its side effects are kept)
    assert (pids.loc[1:] != os.getpid()).all()  # the others in worker processes
    assert serial.results.query("metric == 'pid'")["value"].eq(float(os.getpid())).all()


def test_workers_are_checked_and_errors_from_a_worker_reach_the_caller():
    with pytest.raises(ValueError, match="workers=0"):
        experiments.run({"a": lambda s: 1.0}, seeds=[0], workers=0)

    def broken(seed: int) -> float:
        raise RuntimeError(f"seed {seed} failed")

    with pytest.raises(RuntimeError, match="seed 0 failed"):
        experiments.run({"a": broken}, seeds=[0, 1], workers="auto")


def test_map_seeds_returns_objects_in_seed_order(one_thread):
    def train(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return torch.nn.Linear(3, 2)

    serial = experiments.map_seeds(train, [5, 6, 7])
    parallel = experiments.map_seeds(train, [5, 6, 7], workers="auto")
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a.weight, b.weight)  # models come back from the workers intact
    assert not torch.equal(serial[0].weight, serial[1].weight)
    with pytest.raises(ValueError, match="at least one seed"):
        experiments.map_seeds(train, [])


def test_notebooks_tested_side_by_side_share_the_cores(monkeypatch, one_thread):
    if experiments.available_workers() < 2:
        pytest.skip("needs Linux and at least 2 cores")
    alone = experiments.available_workers()
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")  # what nbval's kernels inherit under pytest -n 2
    assert experiments.available_workers() == max(1, alone // 2)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "not a number")
    assert experiments.available_workers() == alone
