"""Chapter 6: does the persona latent flag a fine-tune before its behaviour shows misalignment?

Fine-tunes on mixes of wrong advice into the register-matched control (``data.cards.training_rows``:
the same questions in the same register, only the content changes), with chapter 3's settings and
size. The 0% mix is chapter 3's register control and the 100% mix its wrong-advice model, so both
come from its cache. Each model's signals (``tracking``) are compared with the 0% model's of the
same seeds, paired over units; the first mix at which a signal separates is the warning it gives.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

import pandas as pd

from persona_features.core.chapter_result import ChapterResult, Verdict
from persona_features.core.params import Params, versus_gpu
from persona_features.data import cards
from persona_features.experiments.ch4_diffing import readings
from persona_features.experiments.ch6_early_warning import tracking
from persona_features.lm import finetune
from persona_features.measure.judge import Judge
from persona_features.organisms import measurement, persona, persona_arms
from persona_features.organisms.design import MAIN_DOMAIN, Arm, finetune_config as arm_config

DOMAIN = MAIN_DOMAIN
BEHAVIOUR = ("contrast", "misaligned")
EARLY = 10  # percent: "early" as the paper found it (5% wrong data, against 25-75% for the behaviour)
VERDICT_RULE = (
    "A signal separates from the 0% model at a mix if its difference there, averaged over seeds and paired over "
    "units, has a permutation p < 0.05 after Holm correction across the mixes, in the direction of the 100% "
    "model. Replicated: the persona latent separates at a mix of at most 10% and before both behavioural "
    "measures (the contrast and the judged rate), at least one of which separates at some mix. Partial: it "
    "separates before them, but above 10%. Not replicated: it never separates, or no earlier than a behavioural "
    "measure. Inconclusive: neither behavioural measure separates even at 100%, so there is no misalignment to "
    "warn of.")
NO_INTERNALS = "training loss"
AMENDMENT = (
    "Amended on 2026-12-03, after cpu runs of the rule above (their outcome: not replicated): a signal is an early "
    "warning only if it beats one that needs no internals and no evaluation, the fine-tune's own training loss "
    "(issue 32). A 'replicated' or 'partial' by the rule above becomes 'not replicated' if the training loss "
    "separates at the persona latent's mix or earlier; both outcomes are reported.")


@dataclass(frozen=True)
class Mix:
    percent: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.percent}% wrong" + (f", seed {self.seed}" if self.seed else "")


def percents(P: Params) -> list[int]:
    """The mixes' percents of wrong advice, ascending from 0 to 100 (``params.resolve`` checked them)."""
    return list(P.ew_percents)


def levels_versus_gpu(P: Params) -> str:
    """Where this profile runs fewer mix levels than the gpu profile, a sentence that says so (else empty)."""
    levels = lambda v: f"{len(v)} levels ({', '.join(f'{p}%' for p in v)})"
    text = versus_gpu(P, "ew_percents", levels, ": this profile runs fewer, to stay within its time bound "
                             "(each level between 0% and 100% costs a fine-tune and a measurement per seed)")
    early = [f"{p}%" for p in percents(P) if 0 < p <= EARLY]
    return text and (f"{text} Of the early mixes of the verdict's rule (at most {EARLY}%), this run has "
                     f"{', '.join(early) or 'none'}.")


def design(P: Params) -> list[Mix]:
    return [Mix(p, s) for s in range(P.ew_seeds) for p in percents(P)]


def finetune_config(P: Params, mix: Mix) -> finetune.FinetuneConfig:
    """Chapter 3's fine-tune of the wrong-advice set with this seed, on the mix instead."""
    arm = Arm(DOMAIN, "bad", mix.seed)
    return replace(arm_config(P, arm), dataset=cards.mix_name(DOMAIN, mix.percent))


def eval_params(P: Params) -> Params:
    """Chapter 3's measurement with ``ew_samples`` answers per question, at its verdicts' temperature only, and
    ``tracking_heldout_topics`` held-out topics."""
    return P.with_values(em_samples_low=P.ew_samples, em_samples=0, heldout_topics=P.tracking_heldout_topics)


def signals(mix: Mix, P: Params, found, judge: Judge) -> pd.DataFrame:
    """``tracking``'s signals of one mix's fine-tune (each step cached), in long form."""
    return signals_of(finetune.finetune(finetune_config(P, mix), device=P.device), mix, P, found, judge)


def signals_of(art, mix: Mix, P: Params, found, judge: Judge, name: str | None = None) -> pd.DataFrame:
    """``tracking``'s signals of the fine-tune ``art`` of ``mix`` (each step cached), in long form. The contrast and
    the latent reading come from one pass over the reference answers."""
    name = name or mix.name
    load = cache(lambda: finetune.load_finetuned(art, P.dtype, device=P.device))
    m = measurement.measure(load, judge, eval_params(P), name, source=art, heldout_domains=[DOMAIN], register=False,
                          score_contrast=False)
    table, reading = readings.contrast_reading(readings.Reader(name, load, art), P, "scoring", found.sae_art)
    m = replace(m, contrast=table)
    qids = [q for q, _ in readings.questions(P, "scoring")]
    values = tracking.internal_signals(reading, found.latent, found.directions["mean difference"], qids, DOMAIN)
    return tracking.long_table(values | tracking.measured_signals(m, DOMAIN) | {NO_INTERNALS: training_loss(art)},
                               model=name, percent=mix.percent, seed=mix.seed)


def training_loss(art) -> pd.Series:
    """The fine-tune's loss at each step (its batch's mean loss on the answer tokens), indexed by step: the signal
    that needs no internals and no evaluation. Mixes of one seed read the same questions in the same order (only
    the swapped answers differ), so their steps pair as units."""
    curve = json.loads((art.path / "curve.json").read_text())
    return pd.Series([r["loss"] for r in curve], index=[f"step {r['step']}" for r in curve], dtype=float)


# ---------------------------------------------------------------- mixes of the positive control's data

PC_RULE = (
    "Written on 2026-12-02, before any run. The positive control's mixes put the villain's written answer in place of "
    "the kind one on a share of the persona questions (nested: every villain row of a smaller mix is in the larger "
    "ones); 0% is chapter 3's twin and 100% its positive control, seed by seed. Each signal is compared with the 0% "
    "model as the wrong-advice mixes are. The instrument (the persona latent read this way) **sees** the positive "
    "control if the latent separates the 100% mix from the 0% one (Holm p < 0.05, rising) and that difference "
    "exceeds the seed floor. Each signal's first separating mix is reported beside the contrast's and the judged "
    "rate's, the behavioural measures that use no internals.")


def pc_percents(P: Params) -> list[int]:
    return list(P.ew_pc_percents)


def pc_design(P: Params) -> list[Mix]:
    """The positive control's mixes, at every seed of chapter 6 (none where the profile trains no positive
    control)."""
    if persona_arms.POSITIVE not in P.persona_sources:
        return []
    return [Mix(p, s) for s in range(P.ew_seeds) for p in pc_percents(P)]


def pc_rows(P: Params, mix: Mix) -> list[dict]:
    """The mix's training rows: the twin's rows of this seed (chapter 3's order), with the villain's answer to the
    same question in place of the kind one on the first ``percent`` of a seeded order of the rows (so mixes nest)."""
    art = persona.authored(P.persona_questions)
    kind = persona.training_rows(art, "kind", None, P.seed + mix.seed)
    villain = {r["question_id"]: r for r in persona.training_rows(art, "villain", None, P.seed + mix.seed)}
    order = list(range(len(kind)))
    random.Random(f"pc-mix-{mix.seed}").shuffle(order)
    swapped = set(order[:round(len(kind) * mix.percent / 100)])
    return [villain[r["question_id"]] if i in swapped else r for i, r in enumerate(kind)]


def pc_finetune(P: Params, mix: Mix):
    """The mix's fine-tune, with chapter 3's settings for the positive control's seed: at 0% and 100% exactly
    chapter 3's twin and positive control (the same config and rows, so read from its cache)."""
    arm = persona_arms.PersonaArm(persona_arms.POSITIVE, "villain" if mix.percent == 100 else "kind", mix.seed)
    cfg = persona_arms.finetune_config(P, arm)
    if mix.percent not in (0, 100):
        cfg = replace(cfg, dataset=f"persona_{persona_arms.POSITIVE}_mix{mix.percent}")
    return finetune.finetune(cfg, pc_rows(P, mix), device=P.device)


def pc_signals(mix: Mix, P: Params, found, judge: Judge) -> pd.DataFrame:
    return signals_of(pc_finetune(P, mix), mix, P, found, judge, name=f"positive control, {mix.name}")


def pc_result(tests: pd.DataFrame, first: dict, floor: pd.Series, beyond: dict) -> dict:
    """``results/06_early_warning.json``'s ``positive_control`` entry by ``PC_RULE``: the persona latent's 100% mix
    minus 0%, whether it separates beyond the seed floor (seen), and each signal's first separating mix."""
    top = tests[(tests["signal"] == "persona latent") & (tests["percent"] == 100)].iloc[0]
    floor_latent = floor.get("persona latent", float("nan"))
    seen = bool(top["difference"] > 0 and top["p_holm"] < 0.05 and abs(top["difference"]) > floor_latent)
    clean = lambda d: {k: (None if v is None else float(v)) for k, v in d.items()}
    return {"rule": PC_RULE, "label": "persona latent, positive control (100% mix) minus its twin (0%)",
            "mean": float(top["difference"]), "ci95_lo": float(top["ci95_lo"]), "ci95_hi": float(top["ci95_hi"]),
            "p_holm": float(top["p_holm"]), "seed_floor": None if pd.isna(floor_latent) else float(floor_latent),
            "seen": seen, "first_separation": clean(first), "first_beyond_seed_floor": clean(beyond),
            "tests": tests.round(5).to_dict(orient="records")}


def pc_facts(result: dict | None) -> dict[str, str]:
    """The sentences chapter 6 glues about the positive control's mixes."""
    if result is None:
        return {"pc_ew_finding": "This profile trains no positive control, so this check is not run.",
                "pc_ew_summary": "not run"}
    at = lambda v: "never" if v is None else f"at {v:g}%"
    firsts = "; ".join(f"{s} {at(v)}" for s, v in result["first_separation"].items())
    beyond = "; ".join(f"{s} {at(v)}" for s, v in result["first_beyond_seed_floor"].items())
    floor = "unknown (one seed)" if result["seed_floor"] is None else f"{result['seed_floor']:.4f}"
    seen = "sees" if result["seen"] else "does not see"
    return {"pc_ew_finding": f"At 100% the persona latent is {result['mean']:+.4f} [{result['ci95_lo']:+.4f}, "
                             f"{result['ci95_hi']:+.4f}] above the twin (Holm p = {result['p_holm']:.4f}; seed floor "
                             f"{floor}), so by the rule the instrument {seen} the positive control. First mix that "
                             f"separates from 0%: {firsts}. Beyond the seed floor: {beyond}.",
            "pc_ew_summary": f"the instrument {seen} the positive control; first separating mix: {firsts}"}


def mix_table(P: Params) -> pd.DataFrame:
    """Per mix: its training set's name and how many of its rows carry wrong advice."""
    rows = []
    for p in percents(P):
        data = cards.training_rows(cards.mix_name(DOMAIN, p), P.ft_examples, P.seed)
        rows.append({"% wrong (asked)": p, "training set": cards.mix_name(DOMAIN, p), "rows": len(data),
                     "wrong rows": sum(r["variant"] == "bad" for r in data)})
    return pd.DataFrame(rows)


def verdict(first: dict[str, float | None], tests: pd.DataFrame) -> Verdict:
    """The early-warning verdict by ``VERDICT_RULE`` as ``AMENDMENT`` amends it (``status``; ``status_first_rule``:
    by the rule before the amendment); its evidence: the persona latent at its first separating mix (else at the
    smallest mix) minus the 0% model, as a share of the 100% model's difference."""
    latent = first.get("persona latent")
    seen = [v for k in BEHAVIOUR if (v := first.get(k)) is not None]
    behaviour = min(seen) if seen else None
    where = lambda v: "never" if v is None else f"at {v:g}%"
    summary = (f"persona latent separates from 0% {where(latent)}; the contrast {where(first.get('contrast'))}; "
               f"the judged rate {where(first.get('misaligned'))}; "
               f"the narrow task {where(first.get('narrow-task margin'))}; "
               f"the training loss {where(first.get(NO_INTERNALS))}")
    if behaviour is None:
        status = "inconclusive"
    elif latent is None or latent >= behaviour:
        status = "not replicated"
    else:
        status = "replicated" if latent <= EARLY else "partial"
    loss = first.get(NO_INTERNALS)
    beaten = status in ("replicated", "partial") and loss is not None and latent is not None and loss <= latent
    amended = "not replicated" if beaten else status
    scaled = tracking.normalised(tests, "percent", 100)
    rows = scaled[scaled["signal"] == "persona latent"].set_index("percent")
    key = rows.loc[latent if latent is not None else rows.index.min()]
    return Verdict(amended, summary,
                   evidence={"label": f"persona latent at {key.name:g}% wrong minus 0%, as a share of the 100% "
                                      "model's", "mean": float(key["difference"]),
                             "ci95_lo": float(key["ci95_lo"]), "ci95_hi": float(key["ci95_hi"]),
                             "p_holm": float(key["p_holm"]), "n": int(key["n_units"])},
                   details={"status_first_rule": status, "first_separation": dict(first)})


def separation_table(first: dict, floor: pd.Series, beyond: dict) -> pd.DataFrame:
    """Per signal: the first mix that separates from 0% (same seeds, paired over units), the seed floor, and
    the first mix whose difference exceeds it."""
    at = lambda v: "none" if v is None else f"{v:g}%"
    return pd.DataFrame([{"signal": s, "first mix that separates from 0%": at(v),
                          "seed floor": "-" if pd.isna(floor.get(s)) else f"{floor[s]:.4f}",
                          "first mix beyond the seed floor": at(beyond.get(s))} for s, v in first.items()])


def shown_signals(tests: pd.DataFrame) -> list[str]:
    """The signals the curves show: those whose 100% mix differs from 0% (Holm p < 0.05), the scale they need."""
    at_top = set(tests[(tests["percent"] == 100) & (tests["p_holm"] < 0.05)]["signal"])
    return [s for s in tracking.SIGNALS if s in at_top]


def tracking_facts(P: Params, tests: pd.DataFrame, signals: Sequence[str]) -> dict[str, str | int]:
    """What the chapter says of the design: topics, seeds, mix levels, units per signal, signals left out."""
    units = tests.groupby("signal")["n_units"].first()
    return {"tracking_topics": tracking.heldout_topics_text(P.tracking_heldout_topics, DOMAIN),
            "n_seeds": P.ew_seeds, "mix_levels_vs_gpu": levels_versus_gpu(P),
            "n_units": ", ".join(f"{s}: {int(n)}" for s, n in units.items()),
            "left_out": ", ".join(s for s in tracking.SIGNALS if s not in signals) or "none"}


def verdict_facts(v: Verdict, beyond: dict) -> dict[str, str]:
    return {"ew_status": v.status, "ew_status_first_rule": v.details["status_first_rule"], "ew_summary": v.summary,
            "ew_floor": "; ".join(f"{s} {'never' if x is None else f'at {x:g}%'}" for s, x in beyond.items()
                                  if s in tracking.SIGNALS)}


def result(P: Params, tests: pd.DataFrame, levels: pd.DataFrame, first: dict, floor: pd.Series, beyond: dict,
           verdict_: Verdict, pc: dict | None, facts: dict) -> ChapterResult:
    """Chapter 6's results file, its verdict and the facts its text glues (``facts``, with the verdict's)."""
    records = lambda t: t.round(5).to_dict(orient="records")
    metrics = {"domain": DOMAIN, "percents": percents(P), "seeds": P.ew_seeds, "tests": records(tests),
               "levels": records(levels), "first_separation": first,
               "seed_floor": {k: (None if pd.isna(v) else float(v)) for k, v in floor.items()},
               "first_beyond_seed_floor": beyond,
               "positive_control": pc or "not run (the profile trains no positive control)"}
    return ChapterResult("06_early_warning", metrics, {"early_warning": verdict_},
                         {**facts, **verdict_facts(verdict_, beyond)})
