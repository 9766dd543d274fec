"""Intervals and differences: the one place ferlib computes a confidence interval over runs.

:func:`mean_interval` (a mean over seeds), :func:`difference` (two arms' means, Welch's or with the
experiment's pooled seed spread, :func:`seed_noise`), :func:`paired_difference` (matched pairs,
e.g. the same test faces), :func:`proportion_difference` (two single runs on ``n`` items), and
:func:`judge`, which reads a :class:`Difference` as supported, contradicted or inconclusive.
Intervals over the test items of one run (bootstrap) are in :mod:`ferlib.engine.evaluate`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def t_quantile(confidence: float, dof: float) -> float:
    """The two-sided Student-t critical value: ``t.ppf(0.5 + confidence / 2, dof)``."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t ``confidence`` interval of ``values`` (e.g. one per seed).

    With a single value the interval is undefined: ``(value, nan, nan)``.

    Examples
    --------
    >>> mean, low, high = mean_interval([0.8, 0.9])
    >>> round(mean, 2), round(low, 3), round(high, 3)
    (0.85, 0.215, 1.485)
    """
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = float(data.mean())
    if data.size == 1:
        return mean, float("nan"), float("nan")
    half = t_quantile(confidence, data.size - 1) * float(data.std(ddof=1)) / math.sqrt(data.size)
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` with a two-sided Student-t interval, and how it was computed."""

    mean: float
    low: float
    high: float
    n_a: int
    n_b: int
    method: str

    def __str__(self) -> str:
        if math.isnan(self.low):
            return f"{100 * self.mean:+.1f} points (no interval: {self.method})"
        return f"{100 * self.mean:+.1f} points [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"


def seed_noise(frame: pd.DataFrame, by: str | Sequence[str] = "model", value: str = "accuracy") -> tuple[float, int]:
    """Pooled within-group standard deviation of ``value`` over seeds, and its degrees of freedom.

    Groups with one run add nothing. Returns ``(nan, 0)`` when no group has two runs.

    Examples
    --------
    >>> runs = pd.DataFrame({"model": ["a", "a", "b", "b", "c"], "accuracy": [0.5, 0.7, 0.6, 0.6, 0.9]})
    >>> sd, df = seed_noise(runs)
    >>> round(sd, 4), df
    (0.1, 2)
    """
    squares, dof = 0.0, 0
    for _, group in frame.groupby(by):
        values = group[value].to_numpy(dtype=float)
        if len(values) > 1:
            squares += float(((values - values.mean()) ** 2).sum())
            dof += len(values) - 1
    return (math.sqrt(squares / dof), dof) if dof else (float("nan"), 0)


def difference(a: Iterable[float], b: Iterable[float], *, noise: tuple[float, int] | None = None,
               confidence: float = 0.95) -> Difference:
    """Difference of the means of ``a`` and ``b`` (e.g. per-seed accuracies of two models).

    With ``noise``, the pooled seed-to-seed standard deviation of the experiment and its degrees
    of freedom (:func:`seed_noise`), the interval is a t interval with that spread: with two or
    three seeds a side it is far tighter than Welch's, which estimates each side's spread from
    those few values alone, and it exists when a side has a single run. Without ``noise``:
    Welch's interval when both sides have at least two values, else NaN.

    Examples
    --------
    >>> d = difference([0.80, 0.82, 0.84], [0.70, 0.71, 0.72])
    >>> round(d.mean, 3), d.low > 0, d.method
    (0.11, True, 'Welch t over seeds')
    >>> difference([0.9], [0.7], noise=(0.05, 12)).method
    "t with the experiment's pooled seed spread (12 df)"
    """
    a, b = np.asarray(list(a), float), np.asarray(list(b), float)
    if a.size == 0 or b.size == 0:
        raise ValueError("difference needs at least one value on each side")
    mean = float(a.mean() - b.mean())
    if noise is not None and noise[1] > 0 and not math.isnan(noise[0]):
        sd, dof = noise
        half = t_quantile(confidence, dof) * sd * math.sqrt(1 / a.size + 1 / b.size)
        return Difference(mean, mean - half, mean + half, a.size, b.size,
                          f"t with the experiment's pooled seed spread ({dof} df)")
    if a.size > 1 and b.size > 1:
        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        se = math.sqrt(va + vb)
        if se == 0:
            return Difference(mean, mean, mean, a.size, b.size, "Welch t over seeds (no spread)")
        dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
        half = t_quantile(confidence, dof) * se
        return Difference(mean, mean - half, mean + half, a.size, b.size, "Welch t over seeds")
    return Difference(mean, float("nan"), float("nan"), a.size, b.size, "one run per side")


def judge(diff: Difference, *, margin: float = 0.0) -> str:
    """``"supported"`` when the whole interval is above ``margin``, ``"contradicted"`` when it is
    below ``-margin``, ``"inconclusive"`` otherwise (also when there is no interval).

    Examples
    --------
    >>> judge(Difference(0.1, 0.05, 0.15, 3, 3, "Welch"))
    'supported'
    >>> judge(Difference(0.02, -0.01, 0.05, 3, 3, "Welch"))
    'inconclusive'
    """
    if math.isnan(diff.low):
        return "inconclusive"
    if diff.low > margin:
        return "supported"
    if diff.high < -margin:
        return "contradicted"
    return "inconclusive"


def paired_difference(a: Iterable[float], b: Iterable[float], *, confidence: float = 0.95,
                      unit: str = "pairs") -> Difference:
    """Mean of ``a - b`` over matched pairs (e.g. the same corruption and severity) with a t interval.

    Examples
    --------
    >>> d = paired_difference([0.6, 0.5, 0.7], [0.5, 0.45, 0.6], unit="corruptions")
    >>> round(d.mean, 3), d.low > 0, d.method
    (0.083, True, 'paired t over corruptions')
    """
    a, b = np.asarray(list(a), float), np.asarray(list(b), float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired_difference needs two equally long, non-empty sequences (got {a.size} and {b.size})")
    mean, low, high = mean_interval(a - b, confidence)
    method = "one pair" if a.size < 2 else f"paired t over {unit}"
    return Difference(mean, low, high, a.size, b.size, method)


def proportion_difference(p_a: float, p_b: float, n: int, *, confidence: float = 0.95) -> Difference:
    """Difference of two accuracies measured once each on ``n`` test items (normal approximation).

    It treats the two as independent, which is conservative when both are measured on the same
    items, and it knows nothing of seed-to-seed variation: use it only where one run is all there is.

    Examples
    --------
    >>> d = proportion_difference(0.60, 0.50, 1000)
    >>> round(d.low, 3), round(d.high, 3)
    (0.057, 0.143)
    """
    if n < 1:
        raise ValueError("proportion_difference needs n >= 1 test items")
    se = math.sqrt(p_a * (1 - p_a) / n + p_b * (1 - p_b) / n)
    from scipy import stats

    half = float(stats.norm.ppf(0.5 + confidence / 2)) * se
    mean = float(p_a - p_b)
    return Difference(mean, mean - half, mean + half, 1, 1, f"one run each; binomial interval over {n} test items")
