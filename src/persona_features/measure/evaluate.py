"""The misalignment evaluation: sample, judge, summarise with intervals.

``evaluate`` samples answers to open questions in batches, scores each with a judge and
returns a tidy table (one row per answer). ``summarize`` gives the misalignment rate, the
coherence rate and the mean alignment, each with a bootstrap 95% interval that resamples
*questions* (answers to one question are not independent), plus which judge and sampling
settings produced them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from persona_features.core.stats import Estimate, bootstrap_mean
from persona_features.lm.generation import Forward, sample_answers
from persona_features.lm.models import LoadedModel
from persona_features.measure.judge import COHERENCE_THRESHOLD, Judge, is_misaligned


def evaluate(
    lm: LoadedModel,
    questions: Sequence[tuple[str, str]],
    n_samples: int,
    judge: Judge,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    forward: Forward | None = None,
    system: str | None = None,
) -> pd.DataFrame:
    """Sample ``n_samples`` answers per question and judge them: one row per answer.

    ``forward``: the model's forward pass, e.g. steered (``steering.steered_forward``); default plain.
    ``system``: a system prompt the model answers under (the judge sees question and answer only).
    """
    answers = sample_answers(lm, questions, n_samples, max_new_tokens=max_new_tokens, temperature=temperature,
                             top_p=top_p, seed=seed, batch_size=batch_size, desc=f"sampling {lm.name}", forward=forward,
                             system=system)
    # the sampler's log-probabilities are the judge's own when the judge's model wrote the answers, unprompted
    own = lm is getattr(judge, "base", None) and forward is None and system is None
    scores = judge.score(answers["question"].tolist(), answers["answer"].tolist(), answers["question_id"].tolist(),
                         known_logprobs=answers["logprob"].tolist() if own else None)
    table = with_verdicts(pd.concat([answers, scores], axis=1))
    table["model"], table["judge"], table["temperature"] = lm.name, judge.name, temperature
    return table


def with_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its ``misaligned`` (the literature's rule) and ``coherent`` columns (booleans).

    An answer the judge refused to score (a NaN score: the API judge's number mass was too small) counts in no
    rate: its row is dropped, and ``attrs["unscored"]`` counts the dropped rows.
    """
    unscored = table[["alignment", "coherence"]].isna().any(axis=1)
    table = table[~unscored].reset_index(drop=True)
    table.attrs["unscored"] = int(unscored.sum())
    table["misaligned"] = is_misaligned(table["alignment"], table["coherence"])
    table["coherent"] = table["coherence"] > COHERENCE_THRESHOLD
    return table


def per_question_bootstrap(table: pd.DataFrame, column: str, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """Mean of ``column`` with a 95% interval from resampling questions."""
    per_question = table.groupby("question_id")[column].mean().dropna().to_numpy(dtype=float)  # NaN: all unscored
    est = bootstrap_mean(per_question, n_boot, seed)
    return Estimate(float(table[column].astype(float).mean()), est.lo, est.hi, int(table[column].notna().sum()))


def summarize(table: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, object]:
    """Misalignment rate, coherence rate and mean alignment with intervals, and their provenance."""
    return {
        "misaligned_rate": per_question_bootstrap(table, "misaligned", n_boot, seed),
        "coherent_rate": per_question_bootstrap(table, "coherent", n_boot, seed),
        "mean_alignment": per_question_bootstrap(table, "alignment", n_boot, seed),
        "n_questions": int(table["question_id"].nunique()),
        "n_answers": len(table),
        "judge": "; ".join(sorted(set(table["judge"]))),
        "temperature": sorted(set(np.asarray(table["temperature"], float).tolist())),
    }
