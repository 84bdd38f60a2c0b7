"""Comparative experiments over several seeds: a tidy table, mean ± 95 % CI, error-bar plots.

Every comparison in the course ("augmentation helps", "a CNN beats an MLP") is run the same
way, so its conclusion can be asserted instead of read off one lucky run::

    exp = experiments.run({
        "no augmentation": lambda seed: train_and_test(seed, augment=False),
        "crop + flip":     lambda seed: train_and_test(seed, augment=True),
    }, seeds=range(5))
    exp.summary()                                  # condition, metric, n, mean, ci_low, ci_high
    gain = exp.difference("crop + flip", "no augmentation")   # paired over seeds
    assert gain.ci_low > 0, gain                   # the claim, asserted
    exp.plot()

A condition is a function of the seed that returns one number (called `metric`) or a dict
of named numbers (e.g. `{"test_acc": ..., "train_acc": ..., "seconds": ...}`).
The 95 % interval is Student's t interval over seeds: mean ± t(0.975, n-1) · s / √n.

Small models on one CPU thread leave the other cores idle: `run(..., workers="auto")` runs
the seeds in forked worker processes (Linux, CPU only), one per free core. Each run is the
same computation as in the serial loop, so the table is identical; only the wall time drops.
Conditions must then be functions of the seed alone; what they store in the notebook's
variables is kept only for the first seed, which runs in the notebook's own process.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import stdtrit  # Student's t quantile; scipy.stats would cost ~2 s to import

from .core import interactive

__all__ = ["Estimate", "Experiment", "available_workers", "map_seeds", "mean_ci", "run"]

Result = float | Mapping[str, float]


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95 % confidence interval over `n` runs."""

    mean: float
    ci_low: float
    ci_high: float
    n: int
    label: str = ""

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def __str__(self) -> str:
        name = f"{self.label}: " if self.label else ""
        return (
            f"{name}{self.mean:+.4f} (95 % CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}], "
            f"n={self.n})"
        )

    __repr__ = __str__


def mean_ci(values: Iterable[float], confidence: float = 0.95, label: str = "") -> Estimate:
    """Mean and Student-t confidence interval of `values` (a single value has an infinite CI)."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must be in (0, 1)")
    mean = float(x.mean())
    if x.size == 1:
        return Estimate(mean, -math.inf, math.inf, 1, label)
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    half = float(stdtrit(x.size - 1, 0.5 + confidence / 2)) * sem
    return Estimate(mean, mean - half, mean + half, int(x.size), label)


class Experiment:
    """The results of `run`: one row per (condition, seed, metric) in `results`."""

    def __init__(self, results: pd.DataFrame, conditions: Sequence[str]):
        self.results = results
        self.conditions = list(conditions)

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(self.results["metric"]))

    def _metric(self, metric: str | None) -> str:
        if metric is None:
            return self.metrics[0]
        if metric not in self.metrics:
            raise ValueError(f"metric={metric!r} not measured; measured: {', '.join(self.metrics)}")
        return metric

    def values(self, condition: str, metric: str | None = None) -> pd.Series:
        """The per-seed values of one condition, indexed by seed."""
        if condition not in self.conditions:
            raise ValueError(f"condition={condition!r} unknown; conditions: {self.conditions}")
        r = self.results
        rows = r[(r["condition"] == condition) & (r["metric"] == self._metric(metric))]
        return rows.set_index("seed")["value"]

    def estimate(self, condition: str, metric: str | None = None) -> Estimate:
        """Mean ± 95 % CI of one condition."""
        return mean_ci(self.values(condition, metric), label=condition)

    def summary(self, metric: str | None = None) -> pd.DataFrame:
        """Mean, std and 95 % CI per condition (all metrics, or one)."""
        rows = []
        for m in [self._metric(metric)] if metric else self.metrics:
            for c in self.conditions:
                v = self.values(c, m)
                if v.empty:  # this condition did not report this metric
                    continue
                e = mean_ci(v)
                rows.append({"condition": c, "metric": m, "n": e.n, "mean": e.mean,
                             "std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                             "ci_low": e.ci_low, "ci_high": e.ci_high})
        return pd.DataFrame(rows)

    def difference(self, a: str, b: str, metric: str | None = None) -> Estimate:
        """Paired difference `a - b` over the seeds both ran (same seed, same data split)."""
        va, vb = self.values(a, metric), self.values(b, metric)
        common = va.index.intersection(vb.index)
        if len(common) == 0:
            raise ValueError(f"conditions {a!r} and {b!r} share no seed")
        return mean_ci(va[common] - vb[common], label=f"{a} − {b}")

    def plot(self, metric: str | None = None, ax=None, title: str | None = None):
        """Mean with 95 % CI error bars per condition, seeds as dots (seaborn)."""
        import matplotlib.pyplot as plt
        import seaborn as sns

        m = self._metric(metric)
        data = self.results[self.results["metric"] == m]
        if ax is None:
            _, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(self.conditions) + 1.5), 3.6))
        summ = self.summary(m).set_index("condition").loc[self.conditions]
        x = np.arange(len(self.conditions))
        ax.errorbar(x, summ["mean"], yerr=[summ["mean"] - summ["ci_low"], summ["ci_high"] - summ["mean"]],
                    fmt="o", color="black", capsize=6, markersize=7, zorder=3, label="mean ± 95 % CI")
        sns.stripplot(data=data, x="condition", y="value", order=self.conditions, ax=ax,
                      alpha=0.45, jitter=0.12, zorder=2)
        ax.set_xlabel("")
        ax.set_ylabel(m)
        ax.set_title(title or f"{m}: mean ± 95 % CI over {int(summ['n'].min())} seeds")
        ax.legend(loc="best", fontsize=8)
        return ax

    def __repr__(self) -> str:
        s = self.summary()
        lines = [f"Experiment({len(self.conditions)} conditions × {s['n'].max()} seeds)"]
        for _, r in s.iterrows():
            lines.append(f"  {r['condition']:<24} {r['metric']:<12} {r['mean']:.4f} "
                         f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.summary().to_html(index=False, float_format=lambda v: f"{v:.4f}")


def available_workers() -> int:
    """How many seeds can run at once: free cores / torch threads, 1 where forking is unsafe.

    Forking is used only on Linux and only before CUDA or MPS is initialised (a forked child
    cannot use the parent's GPU context); elsewhere experiments run serially. Notebooks that
    pytest-xdist tests side by side (`PYTEST_XDIST_WORKER_COUNT`, inherited by their kernels)
    share the cores: each gets its part, so the test run does not oversubscribe the machine.
    """
    import torch

    if sys.platform != "linux" or torch.cuda.is_initialized():
        return 1
    cores = len(os.sched_getaffinity(0))
    try:
        sharing = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        sharing = 1
    return max(1, cores // sharing // max(1, torch.get_num_threads()))


_JOB: Callable[[int], Any] | None = None  # the function of the current map_seeds call, read by forked workers


def _apply(seed: int) -> Any:
    return _JOB(seed)


def _check_workers(workers: int | str, n_seeds: int) -> int:
    """The number of processes to use: `workers` ("auto": `available_workers()`), capped by the seeds."""
    if workers == "auto":
        workers = available_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}: give a whole number >= 1 or 'auto'")
    return min(workers, n_seeds - 1, available_workers()) if workers > 1 else 1


def map_seeds(fn: Callable[[int], Any], seeds: Iterable[int], workers: int | str = 1,
              progress: bool | None = None, desc: str = "seeds") -> list[Any]:
    """`[fn(seed) for seed in seeds]`, with `workers` > 1 (or "auto") in forked processes.

    The first seed runs in this process while the workers run the others, so what `fn`
    stores for it (a model a later cell draws, say) is kept; the others' results come back
    pickled (numbers, tensors, models, sklearn estimators all do). Same values, same order
    as the serial loop.
    """
    global _JOB
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("needs at least one seed")
    workers = _check_workers(workers, len(seeds))
    bar = None
    if interactive() if progress is None else progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds), desc=desc, leave=False)
    _JOB = fn
    try:
        if workers == 1:
            outputs = []
            for seed in seeds:
                outputs.append(fn(seed))
                if bar is not None:
                    bar.update(1)
            return outputs
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_apply, seed) for seed in seeds[1:]]
            outputs = [fn(seeds[0])]  # here, while the workers run the other seeds
            if bar is not None:
                bar.update(1)
            for future in futures:
                outputs.append(future.result())
                if bar is not None:
                    bar.update(1)
            return outputs
    finally:
        _JOB = None
        if bar is not None:
            bar.close()


def run(
    conditions: Mapping[str, Callable[[int], Result]],
    seeds: Iterable[int],
    progress: bool | None = None,
    workers: int | str = 1,
) -> Experiment:
    """Run every condition once per seed; return an `Experiment` (tidy table + summaries).

    Each condition is called as `fn(seed)` and returns a number (stored as metric
    "metric") or a dict {metric name: number}. The wall time of each call is recorded as
    metric "seconds" unless the condition returns one itself. A progress bar (one step per
    seed) is shown in interactive sessions (`progress=None`), never in papermill/nbval runs.
    Seeds run in the outer loop, so an interrupted run still has every condition for the
    seeds it finished.

    `workers` > 1 (or "auto": `available_workers()`) runs the seeds in forked processes, all
    conditions of a seed in the same process (`map_seeds`); the table is the same as with 1,
    in the same order. The first seed always runs here, meanwhile, so whatever its
    conditions store in the notebook (the illustration seed's trained model, say) is kept;
    the other seeds' side effects stay in the workers.
    """
    seeds = [int(s) for s in seeds]
    if not conditions:
        raise ValueError("run() needs at least one condition")
    if not seeds:
        raise ValueError("run() needs at least one seed")

    def every_condition(seed: int) -> list[tuple[dict[str, float], float]]:
        out = []
        for fn in conditions.values():
            start = time.perf_counter()
            result = fn(seed)
            values = dict(result) if isinstance(result, Mapping) else {"metric": result}
            out.append(({k: float(v) for k, v in values.items()}, time.perf_counter() - start))
        return out

    outputs = map_seeds(every_condition, seeds, workers, progress, desc="experiment (seeds)")
    rows = []
    for seed, per_condition in zip(seeds, outputs, strict=True):
        for name, (values, seconds) in zip(conditions, per_condition, strict=True):
            values.setdefault("seconds", seconds)
            for metric, value in values.items():
                rows.append({"condition": name, "seed": seed, "metric": metric, "value": value})
    return Experiment(pd.DataFrame(rows), list(conditions))
