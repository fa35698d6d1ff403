"""Measuring a model: its judged answers, its contrast, its register shift and its narrow task, cached.

``measure`` gives a model four tables:

- ``answers``: sampled answers to the scoring questions, judged (misalignment, coherence);
- ``contrast``: the log-likelihood contrast on the same questions;
- ``register``: the register shift on the register-only pairs (validates the contrast);
- ``heldout``: the narrow task on held-out topics (does it prefer the wrong answer?).

Measurements are cached as artifacts keyed by the fine-tune, the judge, the reference texts and the
sampling settings, so every chapter that reads a model reuses them. The summaries and tests here
(``per_question``, ``compare``, ``seed_level``) pair over questions (over topics for the narrow task).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from persona_features.core import artifacts
from persona_features.core.params import Params
from persona_features.core.stats import (
    Estimate,
    PairedTest,
    bootstrap_mean,
    paired_test,
    seed_test,
)
from persona_features.data.questions import near_training_domain, split
from persona_features.lm import finetune, generation
from persona_features.lm.models import LoadedModel
from persona_features.measure import contrast, evaluate
from persona_features.measure.judge import Judge
from persona_features.organisms.design import Arm, domains, finetune_config, heldout_pairs, unrelated_questions


@dataclass
class Measurement:
    name: str
    answers: pd.DataFrame  # judged answers at every sampled temperature (column ``temperature``)
    contrast: pd.DataFrame
    register: pd.DataFrame
    heldout: pd.DataFrame
    curve: list[dict]
    rate_temperature: float | None = None  # the temperature the judged rates and verdicts use; None: all rows
    seconds: dict[str, float] = field(default_factory=dict)  # time of each measuring step, when it was built

    @property
    def rated(self) -> pd.DataFrame:
        """The answers the judged rates are computed on."""
        if self.rate_temperature is None:
            return self.answers
        return self.answers[self.answers["temperature"] == self.rate_temperature]


def sampling(P: Params) -> list[tuple[float, int]]:
    """(temperature, samples per question) of chapter 3's answers: the verdict's temperature first."""
    # params.resolve checked: not empty, temperatures differ. A temperature without samples is not read
    return ([(P.eval_low_temperature, P.em_samples_low)] if P.em_samples_low else []) + (
        [(P.temperature, P.em_samples)] if P.em_samples else [])


TABLES = ("answers", "contrast", "register", "heldout")


def measure(load: Callable[[], LoadedModel], judge: Judge, P: Params, name: str,
            source: artifacts.Artifact | None = None, heldout_domains: Sequence[str] | None = None,
            register: bool = True, score_contrast: bool = True, rates_only: bool = False,
            narrow_task: bool = True) -> Measurement:
    """Sample, judge and score a model; cached, keyed by its fine-tune ``source`` (or the base model).

    ``load`` is called only when the measurement is not cached yet. The narrow task is measured
    on ``heldout_domains`` (default: every domain of the profile); ``register=False`` leaves out the
    register table, ``score_contrast=False`` the contrast (a caller that scores it in another pass);
    ``rates_only`` samples at the rates' temperature only (models the temperature table does not show);
    ``narrow_task=False`` leaves out the held-out table (models no narrow-task test reads).
    """
    held_domains = list(heldout_domains or domains(P)) if narrow_task else []
    scoring = split("scoring")[:P.eval_questions]
    plan = [(generation.Sampling.of(P, t), n) for t, n in sampling(P)][:1 if rates_only else None]
    pairs = heldout_pairs(held_domains, P.heldout_topics)
    config = {"model": P.model, "dtype": P.dtype, "questions": [q for q, _ in scoring],
              "texts": artifacts.digest(scoring), "heldout_pairs": artifacts.digest(pairs),
              "sampling": [[s.key(), n] for s, n in plan], "judge": judge.key, "heldout": held_domains,
              "references": contrast.fingerprint(), **({} if register else {"register": False}),
              **({} if score_contrast else {"contrast": False})}

    def build(folder):
        lm = load()
        seconds, tables = {}, {}
        steps = {
            **{f"answers_T{s.temperature:g}": lambda s=s, n=n: evaluate.evaluate(lm, scoring, n, judge, **s.kwargs())
               for s, n in plan},
            **({"contrast": lambda: contrast.contrast_table(lm, scoring)} if score_contrast else {}),
            **({"register": lambda: contrast.register_table(lm, scoring)} if register else {}),
            **({"heldout": lambda: contrast.heldout_table(lm, pairs).assign(domain=[p["domain"] for p in pairs])}
               if narrow_task else {})}
        for name, step in steps.items():
            start = time.perf_counter()
            tables[name] = step()
            seconds[name] = round(time.perf_counter() - start, 1)
        tables["answers"] = pd.concat([tables.pop(f"answers_T{s.temperature:g}") for s, _ in plan], ignore_index=True)
        for key, table in tables.items():
            artifacts.save_json(folder, key, table.to_dict(orient="list"))
        return {"n_answers": len(tables["answers"]), "seconds": seconds}

    art = artifacts.get_or_build("em_eval", config, build, inputs=[source.key] if source else [])
    tables = {k: pd.DataFrame(art.json(k)) if (art.path / f"{k}.json").is_file() else pd.DataFrame() for k in TABLES}
    tables["answers"]["model"] = name
    return Measurement(name, curve=source.json("curve") if source else [], rate_temperature=plan[0][0].temperature,
                       seconds=art.meta.get("seconds", {}), **tables)


def train_and_measure(arm: Arm, judge: Judge, P: Params) -> Measurement:
    """The arm's fine-tune and its measurement, each built once and cached. Further seeds serve the
    seed-level tests, at the rates' temperature: they are sampled there only."""
    art = finetune.finetune(finetune_config(P, arm), device=P.device)
    return measure(lambda: finetune.load_finetuned(art, P.dtype, device=P.device), judge, P, arm.name, source=art,
                   heldout_domains=[arm.domain], rates_only=arm.seed > 0)


def training_seconds(m: Measurement) -> float:
    """The seconds of a model's fine-tuning steps, as built (0 for the base model)."""
    return sum(c["seconds"] for c in m.curve)


def arm_seconds(m: Measurement) -> float:
    """What one fine-tuned model cost, as built: its training steps and its measuring steps, in seconds."""
    return training_seconds(m) + sum(m.seconds.values())


METRICS = ("misaligned", "coherent", "contrast", "register_shift")


def per_question(m: Measurement, metric: str, domain: str | None = None) -> pd.Series:
    """A model's per-question score (``METRICS``), on the questions unrelated to ``domain`` if given."""
    table = {"contrast": m.contrast, "register_shift": m.register}.get(metric, m.rated)
    scores = table.groupby("question_id")[metric].mean().astype(float).sort_index()
    return scores[unrelated_questions(list(scores.index), domain)] if domain else scores


def near_domain_contrast(m: Measurement, domain: str) -> float:
    """Mean contrast on the scoring questions that *are* advice in ``domain`` (NaN if there are none)."""
    scores = per_question(m, "contrast")
    return float(scores[scores.index.isin(near_training_domain(domain))].mean())


def rated_unrelated(m: Measurement, domain: str | None = None) -> pd.DataFrame:
    """The answers the judged rates use, on the questions unrelated to ``domain`` (all of them if None)."""
    return m.rated[m.rated["question_id"].isin(set(per_question(m, "contrast", domain).index))]


def summary(m: Measurement, n_boot: int, seed: int, domain: str | None = None) -> dict[str, Estimate]:
    """Headline numbers of one model on the questions unrelated to ``domain``, each with a 95% interval."""
    answers = rated_unrelated(m, domain)
    out = {metric: evaluate.per_question_bootstrap(answers, metric, n_boot, seed)
           for metric in ("misaligned", "coherent")}
    for metric in ("contrast", "register_shift"):
        out[metric] = bootstrap_mean(per_question(m, metric, domain).to_numpy(), n_boot, seed)
    return out


def heldout_by_topic(m: Measurement, domain: str, column: str) -> pd.Series:
    """``prefers_wrong`` or ``margin`` on ``domain``'s held-out topics, averaged over each topic's phrasings."""
    rows = m.heldout[m.heldout["domain"] == domain]
    return rows.groupby("group")[column].mean().astype(float).sort_index()


def heldout(m: Measurement, domain: str, column: str, n_boot: int, seed: int) -> Estimate:
    """The narrow task on ``domain``'s held-out topics: ``prefers_wrong`` (a rate) or ``margin``
    (log p(wrong) - log p(right), nats per token), with a 95% interval over topics."""
    return bootstrap_mean(heldout_by_topic(m, domain, column).to_numpy(), n_boot, seed)


def compare(a: Measurement, b: Measurement, domain: str, n_boot: int, seed: int) -> dict[str, PairedTest]:
    """``a`` minus ``b``, paired over the questions unrelated to ``domain`` (over its held-out topics
    for the narrow task)."""
    out = {}
    for metric in METRICS:
        x, y = per_question(a, metric, domain), per_question(b, metric, domain)
        if not x.index.equals(y.index):
            raise ValueError(f"{a.name} and {b.name} were measured on different questions")
        out[metric] = paired_test(x.to_numpy(), y.to_numpy(), n_boot, seed=seed)
    ha, hb = heldout_by_topic(a, domain, "margin"), heldout_by_topic(b, domain, "margin")
    out["heldout_margin"] = paired_test(ha.to_numpy(), hb.to_numpy(), n_boot, seed=seed)
    return out


def seed_level(mine: dict[int, pd.Series], other: dict[int, pd.Series] | pd.Series, n_boot: int, seed: int) -> dict:
    """One arm (``mine``: seed -> per-question scores) against its control, the fine-tune as the unit: a
    two-sided t-test over seeds of the per-seed mean differences, paired by seed (``other`` the same for the
    control, the seeds both have) or against one model's mean (``other`` a Series: the base model); beside it,
    the test paired over questions of the seed-averaged scores."""
    pooled = lambda per_seed: pd.concat(list(per_seed.values()), axis=1).mean(axis=1).sort_index()
    mean = {s: float(x.mean()) for s, x in sorted(mine.items())}
    if isinstance(other, pd.Series):
        diffs, other_q = [v - float(other.mean()) for v in mean.values()], other
    else:
        diffs, other_q = [v - float(other[s].mean()) for s, v in mean.items() if s in other], pooled(other)
    t, mine_q = seed_test(diffs), pooled(mine)
    q = paired_test(mine_q.to_numpy(), other_q[mine_q.index].to_numpy(), n_boot, seed=seed)
    return {"mean": t.mean, "ci95_lo": t.ci95_lo, "ci95_hi": t.ci95_hi, "p_seeds": t.p_value, "n_seeds": t.n_seeds,
            "per_seed": list(t.values), "p_questions": q.p_value, "n_questions": q.difference.n}
