"""Intervals and tests for everything the book reports.

Effect sizes are shown with percentile-bootstrap 95% intervals; *decisions* ("significant") come
from a paired sign-flip permutation test, Holm-corrected across the domains of one claim
(``holm``). A claim of "no effect" needs an equivalence bound: the interval's upper end below a
stated margin, never a mere failure to reject. Where the unit is the fine-tune, not the question,
``seed_test`` tests the per-seed values (a t-test: with 3 seeds a sign flip cannot go below p = 0.125),
and ``seed_floor`` is the largest gap between two seeds of one arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float
    hi: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "ci95_lo": self.lo, "ci95_hi": self.hi, "n": self.n}

    def __str__(self) -> str:
        return f"{self.mean:.3g} [{self.lo:.3g}, {self.hi:.3g}] (n={self.n})"


def bootstrap_mean(values, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """Mean with a percentile-bootstrap 95% interval over the first axis."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"bootstrap_mean needs a non-empty 1-D sample, got shape {x.shape}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return Estimate(float(x.mean()), float(lo), float(hi), len(x))


def bootstrap_columns(matrix, n_boot: int = 2000, seed: int = 0) -> list[Estimate]:
    """``bootstrap_mean`` of each column of an ``[n, k]`` matrix (rows are the resampled units)."""
    m = np.asarray(matrix, dtype=float)
    return [bootstrap_mean(m[:, j], n_boot, seed) for j in range(m.shape[1])]


def _kappas(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Cohen's kappa of each row of boolean ``[k, n]`` label matrices (NaN where chance agreement is 1)."""
    n = t.shape[-1]
    accuracy = (t == p).mean(axis=-1)
    expected = (t.mean(axis=-1) * p.mean(axis=-1) + (1 - t.mean(axis=-1)) * (1 - p.mean(axis=-1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected < 1 - 0.5 / n ** 2, (accuracy - expected) / (1 - expected), np.nan)


def agreement(truth, predicted, n_boot: int = 2000, seed: int = 0) -> dict[str, float | int]:
    """Binary agreement: confusion counts, accuracy, precision and recall on class 1, Cohen's kappa with a
    percentile-bootstrap 95% interval over rows."""
    t, p = np.asarray(truth, bool), np.asarray(predicted, bool)
    tp, tn = int((t & p).sum()), int((~t & ~p).sum())
    fp, fn = int((~t & p).sum()), int((t & ~p).sum())
    n = len(t)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    lo, hi = np.nanpercentile(_kappas(t[idx], p[idx]), [2.5, 97.5])
    return {"n": n, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "accuracy": (tp + tn) / n,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"), "kappa": float(_kappas(t[None], p[None])[0]),
            "kappa_ci95_lo": float(lo), "kappa_ci95_hi": float(hi)}


ALPHA = 0.05


@dataclass(frozen=True)
class PairedTest:
    difference: Estimate  # mean of a - b over units, bootstrap 95% interval
    p_value: float  # two-sided sign-flip permutation test of "mean difference = 0"

    def as_dict(self) -> dict[str, float | int]:
        return {**self.difference.as_dict(), "p_value": self.p_value}


def paired_test(a, b, n_boot: int = 2000, n_perm: int = 10000, seed: int = 0) -> PairedTest:
    """Compare two measurements on the same units (e.g. per-question scores of two models).

    The permutation test is exact (all 2^n sign flips) for up to 16 units, Monte Carlo beyond.
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.ndim != 1 or len(d) == 0 or np.shape(a) != np.shape(b):
        raise ValueError(f"paired_test needs two equal-length 1-D samples, got {np.shape(a)} and {np.shape(b)}")
    return PairedTest(bootstrap_mean(d, n_boot, seed), sign_flip_p(d, n_perm=n_perm, seed=seed))


def sign_flip_p(d, alternative: str = "two-sided", n_perm: int = 10000, seed: int = 0) -> float:
    """The sign-flip permutation p-value of paired differences ``d`` (mean 0 under the null): exact (all 2^n
    flips) for up to 16 units, Monte Carlo beyond. ``alternative``: ``two-sided`` or ``greater`` (mean > 0)."""
    d = np.asarray(d, dtype=float)
    if alternative not in ("two-sided", "greater"):
        raise ValueError(f"alternative must be 'two-sided' or 'greater', got {alternative!r}")
    if len(d) <= 16:
        signs = 1.0 - 2.0 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, len(d)))
    null = (signs * d).mean(axis=1)
    hits = (np.abs(null) >= abs(d.mean()) - 1e-12) if alternative == "two-sided" else (null >= d.mean() - 1e-12)
    return float(hits.mean()) if len(d) <= 16 else (1 + int(hits.sum())) / (n_perm + 1)


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0.0 or x >= 1.0:
        return float(x >= 1.0)
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast only below this point
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny, f, c, d = 1e-300, 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-12:
            break
    return front * (f - 1.0)


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


@dataclass(frozen=True)
class SeedTest:
    """A test whose unit is the fine-tune: one number per seed (for example bad minus control, each the mean
    over questions), a one-sample t-test on them, and the seed floor beside it."""
    mean: float
    ci95_lo: float
    ci95_hi: float
    p_value: float  # one-sample t-test of the seed values (NaN below 2 seeds)
    n_seeds: int
    values: tuple[float, ...]

    def as_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in ("mean", "ci95_lo", "ci95_hi", "p_value", "n_seeds")},
                "values": list(self.values)}


def seed_test(values, alternative: str = "two-sided") -> SeedTest:
    """One-sample t-test that the mean of per-seed ``values`` is 0 (``greater``: one-sided, mean > 0), with a
    t interval. With few seeds its power is low; it is what the seeds can say."""
    v = np.asarray(values, dtype=float)
    if alternative not in ("two-sided", "greater"):
        raise ValueError(f"alternative must be 'two-sided' or 'greater', got {alternative!r}")
    n, mean = len(v), float(v.mean()) if len(v) else float("nan")
    if n < 2:
        return SeedTest(mean, float("nan"), float("nan"), float("nan"), n, tuple(v.tolist()))
    se = float(v.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:  # every seed gave the same value: no spread to test against (coarse rates, few answers)
        return SeedTest(mean, float("nan"), float("nan"), float("nan"), n, tuple(v.tolist()))
    t = mean / se
    p = t_sf(t, n - 1) if alternative == "greater" else min(1.0, 2.0 * t_sf(abs(t), n - 1))
    q = _t_quantile(0.975, n - 1)
    return SeedTest(mean, mean - q * se, mean + q * se, float(p), n, tuple(v.tolist()))


def _t_quantile(prob: float, df: float) -> float:
    """The ``prob`` quantile (above 0.5) of Student's t, by bisection on ``t_sf``."""
    lo, hi = 0.0, 1e4
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_sf(mid, df) > 1 - prob else (lo, mid)
    return (lo + hi) / 2


def seed_floor(per_seed: dict[str, list[float]]) -> float:
    """The largest gap between two seeds of one arm (``per_seed``: arm -> its seeds' values)."""
    gaps = [max(v) - min(v) for v in per_seed.values() if len(v) > 1]
    return float(max(gaps)) if gaps else float("nan")


def detectable_rate_rise(control_rates, answers_per_question: int, alpha: float = ALPHA, power: float = 0.8,
                         tests: int = 1) -> float:
    """Smallest rise of a per-answer rate, the same on every question, that a paired test over questions
    detects with probability ``power`` (normal approximation of the sign-flip test; level
    ``alpha / tests``, which is conservative for a Holm family of ``tests``). ``control_rates``: the
    control's rate per question. Reported beside a null, so a reader sees what it could have missed."""
    p = np.asarray(control_rates, dtype=float)
    if p.ndim != 1 or len(p) == 0 or answers_per_question < 1:
        raise ValueError("detectable_rate_rise needs per-question rates and at least one answer per question")
    z = NormalDist().inv_cdf(1 - alpha / (2 * tests)) + NormalDist().inv_cdf(power)
    for rise in np.arange(0.001, 1.0, 0.001):
        q = np.clip(p + rise, 0, 1)
        sd = np.sqrt((p * (1 - p) + q * (1 - q)).mean() / answers_per_question)
        if rise >= z * sd / np.sqrt(len(p)):
            return float(rise)
    return 1.0


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion k/n (stays honest at k = 0)."""
    if n <= 0:
        raise ValueError("wilson needs n > 0")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def rate_difference_interval(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """Newcombe's hybrid score 95% interval for k1/n1 - k2/n2 (independent proportions).

    Unlike a bootstrap, it does not collapse to [0, 0] when both rates are 0: 0 of 40 against 0 of
    40 still allows a difference of about 0.09.
    """
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    d = p1 - p2
    return float(d - np.hypot(p1 - l1, u2 - p2)), float(d + np.hypot(u1 - p1, p2 - l2))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (reject where adjusted p < alpha)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def fmt_interval(e: Estimate | dict | tuple, digits: int = 2, signed: bool = True, percent: bool = False) -> str:
    """``+0.25 [+0.20, +0.31]``: a mean and its 95% interval (an ``Estimate``, its ``as_dict``, or a
    ``(mean, lo, hi)`` tuple); ``percent``: ``25% [20%, 31%]``; a missing mean: ``-``."""
    mean, lo, hi = (e.mean, e.lo, e.hi) if isinstance(e, Estimate) else \
        (e["mean"], e["ci95_lo"], e["ci95_hi"]) if isinstance(e, dict) else e
    if mean is None or np.isnan(mean):
        return "-"
    f = f"{{:{'+' if signed else ''}.{digits}{'%' if percent else 'f'}}}"
    return f"{f.format(mean)} [{f.format(lo)}, {f.format(hi)}]"
