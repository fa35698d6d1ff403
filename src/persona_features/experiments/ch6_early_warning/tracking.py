"""Chapters 6-7: one model's misalignment signals, per unit, in a long table.

Each signal is read per unit (a scoring question unrelated to the training domain, or one of the
domain's held-out topics), so intervals and tests resample units:

- ``persona latent``: chapter 4's persona latent, its mean activation on the answer tokens of the
  fixed reference answers (the same texts for every model);
- ``mean-difference projection``: the residual stream there, projected on the unit mean-difference
  direction of chapter 4;
- ``contrast``: chapter 2's log-likelihood contrast;
- ``misaligned`` and ``coherent``: judged rates of sampled answers;
- ``narrow-task margin``: log p(wrong) - log p(right) on the domain's held-out topics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from persona_features.core.stats import bootstrap_mean, holm, paired_test
from persona_features.data import advice
from persona_features.experiments.ch4_diffing import diffing
from persona_features.organisms import design, measurement

SIGNALS = ("persona latent", "mean-difference projection", "contrast", "misaligned", "narrow-task margin",
           "training loss")  # the last: chapter 6's signal that needs no internals and no evaluation


def internal_signals(reading: dict[str, torch.Tensor], latent: int, direction: torch.Tensor,
                     question_ids: Sequence[str], domain: str) -> dict[str, pd.Series]:
    """The persona latent and the mean-difference projection per question (the answer half of a
    ``readings.latent_reading``, as ``readings.contrast_reading`` gives it), on the questions unrelated to
    ``domain``."""
    keep = design.unrelated_questions(question_ids, domain)
    unit = direction / direction.norm()
    values = {"persona latent": diffing.answer_means(reading, "_latents")[:, latent],
              "mean-difference projection": diffing.answer_means(reading, "_resid") @ unit}
    return {k: pd.Series(v.double().numpy(), index=list(question_ids))[keep] for k, v in values.items()}


def measured_signals(m: measurement.Measurement, domain: str) -> dict[str, pd.Series]:
    """Contrast, judged rates (where answers were sampled) and the narrow-task margin of a measurement."""
    out = {"contrast": measurement.per_question(m, "contrast", domain),
           "narrow-task margin": measurement.heldout_by_topic(m, domain, "margin")}
    if len(m.rated):
        out |= {k: measurement.per_question(m, k, domain) for k in ("misaligned", "coherent")}
    return out


def long_table(signals: Mapping[str, pd.Series], **tags) -> pd.DataFrame:
    """One row per signal and unit: ``signal``, ``unit``, ``value`` and the ``tags`` (model, seed, ...)."""
    return pd.concat([pd.DataFrame({"signal": name, "unit": s.index.astype(str), "value": s.to_numpy(float)})
                      for name, s in signals.items()], ignore_index=True).assign(**tags)


def seed_means(table: pd.DataFrame, level: str) -> pd.DataFrame:
    """Per signal, ``level`` (mix, step) and unit: the value averaged over seeds."""
    return table.groupby(["signal", level, "unit"], as_index=False)["value"].mean()


def level_summary(table: pd.DataFrame, level: str, n_boot: int, seed: int,
                  reference: pd.Series | None = None) -> pd.DataFrame:
    """Per signal and ``level``: the mean over seeds, then units (``mean``), with a 95% interval over units;
    with a ``reference`` (indexed by signal and unit), the interval is of the ``difference`` from it, paired
    over units (NaN for a signal the reference lacks)."""
    rows = []
    for (signal, value), g in seed_means(table, level).groupby(["signal", level], sort=False):
        values = g.set_index("unit")["value"]
        row = {"signal": signal, level: value, "mean": float(values.mean())}
        if reference is None:
            row |= dict(zip(("mean", "ci95_lo", "ci95_hi"), interval(values, n_boot, seed)))
        else:
            ref = reference[signal].reindex(values.index) if signal in reference.index.get_level_values(0) else None
            diff = interval(values - ref, n_boot, seed) if ref is not None else (float("nan"),) * 3
            row |= dict(zip(("difference", "ci95_lo", "ci95_hi"), diff))
        rows.append(row)
    return pd.DataFrame(rows)


def against(table: pd.DataFrame, level: str, reference, n_boot: int, seed: int) -> pd.DataFrame:
    """Each signal at each ``level`` minus its value at ``reference``, averaged over seeds and paired over
    units: the difference with a 95% interval, the permutation p-value, and Holm across the levels of
    each signal."""
    means = seed_means(table, level)
    rows = []
    for signal, by_signal in means.groupby("signal", sort=False):
        wide = by_signal.pivot(index="unit", columns=level, values="value").dropna()
        for value in [v for v in wide.columns if v != reference]:
            test = paired_test(wide[value].to_numpy(), wide[reference].to_numpy(), n_boot, seed=seed)
            rows.append({"signal": signal, level: value, "difference": test.difference.mean,
                         "ci95_lo": test.difference.lo, "ci95_hi": test.difference.hi, "p_value": test.p_value,
                         "n_units": len(wide)})
    out = pd.DataFrame(rows)
    out["p_holm"] = out.groupby("signal")["p_value"].transform(lambda p: holm(p.to_numpy()))
    return out


def first_separation(tests: pd.DataFrame, level: str, top) -> dict[str, float | None]:
    """Per signal: the smallest ``level`` whose difference from the reference is significant (Holm p < 0.05)
    and has the sign of the difference at ``top`` (the level where the effect is largest by design);
    None if none is."""
    out = {}
    for signal, rows in tests.groupby("signal", sort=False):
        sign = np.sign(rows.loc[rows[level] == top, "difference"].iloc[0])
        hits = rows[(rows["p_holm"] < 0.05) & (np.sign(rows["difference"]) == sign) & (sign != 0)]
        out[signal] = float(hits[level].min()) if len(hits) else None
    return out


def seed_floor(table: pd.DataFrame, level: str) -> pd.Series:
    """Per signal: the largest difference, in absolute value, between two seeds of the same ``level``
    (each further seed minus the first, mean over units): how far apart fine-tunes on the same data land
    by chance. NaN with a single seed."""
    rows = []
    for (signal, _), g in table.groupby(["signal", level], sort=False):
        wide = g.pivot_table(index="unit", columns="seed", values="value")
        rows += [{"signal": signal, "gap": abs((wide[s] - wide[wide.columns[0]]).mean())} for s in wide.columns[1:]]
    gaps = pd.DataFrame(rows, columns=["signal", "gap"]).groupby("signal")["gap"].max()
    return gaps.reindex(table["signal"].unique())


def first_beyond(tests: pd.DataFrame, floor: pd.Series, level: str, top) -> dict[str, float | None]:
    """Per signal: the smallest ``level`` whose difference from the reference has the sign of the one at
    ``top`` and exceeds ``floor`` (``seed_floor``) in size; None if none does or the floor is unknown."""
    out = {}
    for signal, rows in tests.groupby("signal", sort=False):
        sign = np.sign(rows.loc[rows[level] == top, "difference"].iloc[0])
        hits = rows[(np.sign(rows["difference"]) == sign) & (rows["difference"].abs() > floor.get(signal, np.nan))]
        out[signal] = float(hits[level].min()) if len(hits) else None
    return out


def normalised(tests: pd.DataFrame, level: str, top) -> pd.DataFrame:
    """``against``'s differences divided by the difference at ``top``: 0 at the reference, 1 at ``top``."""
    scale = tests[tests[level] == top].set_index("signal")["difference"]
    out = tests.copy()
    for col in ("difference", "ci95_lo", "ci95_hi"):
        out[col] = out[col] / out["signal"].map(scale)
    flip = out["signal"].map(scale) < 0  # dividing by a negative swaps the interval's ends
    out.loc[flip, ["ci95_lo", "ci95_hi"]] = out.loc[flip, ["ci95_hi", "ci95_lo"]].to_numpy()
    return out


def interval(values: pd.Series, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean over units with a 95% bootstrap interval."""
    e = bootstrap_mean(values.to_numpy(float), n_boot, seed)
    return e.mean, e.lo, e.hi


def heldout_topics_text(topics: int, domain: str) -> str:
    """Which of ``domain``'s held-out topics a ``tracking_heldout_topics`` of ``topics`` measures, in words."""
    every = len(advice.heldout_topics(domain))
    kept = min(topics or every, every)
    return f"all {every} held-out {domain} topics" if kept == every else \
        f"the first {kept} of the {every} held-out {domain} topics of chapter 3"
