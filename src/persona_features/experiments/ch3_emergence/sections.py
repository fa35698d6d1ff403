"""What chapter 3's text shows, section by section, and the chapter's result.

Each function returns the values one section glues, by name, formatted as shown; ``result`` gathers the
results file's metrics, the verdicts and these facts (``book.results.publish`` writes and glues them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from persona_features.core import stats
from persona_features.core.chapter_result import ChapterResult, Verdict
from persona_features.core.params import Params
from persona_features.experiments.ch3_emergence import em_verdict, emergence
from persona_features.organisms import design, measurement, persona, persona_arms, setting_sweep, strength
from persona_features.organisms.design import Arm
from persona_features.organisms.measurement import Measurement

Facts = dict[str, Any]


def sweep(sweeps: dict, confirmations: dict) -> Facts:
    """The fine-tuning settings sweep and its confirmation with a second seed."""
    return {**setting_sweep.sweep_facts(sweeps), "sweep_slack": f"{setting_sweep.COHERENCE_SLACK:.0f}",
            **setting_sweep.confirmation_facts(sweeps, confirmations)}


def settings(P: Params, curves: dict) -> Facts:
    """The profile's fine-tuning setting, and whether it is the one the strength curve's rule chose."""
    return {**strength.curve_facts(curves), **{k: str(getattr(P, k)) for k in ("ft_lr", "ft_examples", "ft_epochs")},
            "ft_method": P.ft_method + (f" (rank {P.ft_lora_rank})" if P.ft_method == "lora" else ""),
            "ft_batch": str(P.ft_batch_size), "profile_name": P.profile,
            "curve_applied": strength.profile_follows(curves, setting_sweep.profile_setting(P), P.model),
            "domains_run": ", ".join(design.domains(P))}


def heldout(held_rates: pd.DataFrame, doms: Sequence[str]) -> Facts:
    base_held = held_rates.query("model == 'base'").set_index("domain")["held-out wrong rate"]
    return {"base_heldout_health": base_held.get(doms[0], "-"), "first_domain": doms[0]}


def sampling(P: Params, base: Measurement) -> Facts:
    return {"n_scoring": base.answers.question_id.nunique(),
            **{k: str(getattr(P, k)) for k in ("em_samples", "em_samples_low", "temperature", "eval_low_temperature")}}


def register(decomposition: pd.DataFrame, adjusted: pd.DataFrame) -> Facts:
    """How much of the contrast the register explains, and the register-adjusted contrast."""
    main = design.MAIN_DOMAIN
    return {"register_share": emergence.register_share(decomposition),
            "adjusted_main": stats.fmt_interval(adjusted.set_index("domain").loc[main].to_dict(), 3)
            if main in set(adjusted.domain) else "not measured",
            "adjusted_domains": ", ".join(adjusted.loc[adjusted.ci95_lo > 0, "domain"]) or "none"}


def seeds(P: Params, seeded: pd.DataFrame) -> Facts:
    """The main organism against its controls and the base model, the fine-tune as the unit."""
    pairs = [("contrast", "register_control"), ("contrast", "good"), ("contrast", "base"),
             ("misaligned", "register_control"), ("misaligned", "base"), ("heldout_margin", "register_control")]
    return {"n_seeds": str(P.em_seeds),
            **{f"seeded_{m}_{v}": em_verdict.phrase(seeded, m, v) for m, v in pairs}}


def cost(measured: Mapping[str, Measurement], persona_measured: Mapping[str, Measurement]) -> Facts:
    """What a fine-tuned model cost (median seconds), and how many models the chapter measures."""
    median_s = lambda ms: f"{pd.Series([measurement.arm_seconds(m) for m in ms]).median():.0f}"
    return {"main_arm_seconds": median_s(measured.values()), "persona_arm_seconds": median_s(persona_measured.values()),
            "n_models_measured": str(len(measured) + len(persona_measured) + 1)}


def personas(P: Params, narrow_source: str) -> Facts:
    return {"persona_lr": f"{P.persona_lr:g}", "narrow_source": narrow_source, "persona_seeds": str(P.persona_seeds),
            "distilled_reading": persona_arms.distilled_reading(),
            "n_persona_questions": str(len(persona.general_questions()))}


def audit(audit_: dict, pooled: pd.Series, arms: Sequence[Arm], judge_key: str) -> Facts:
    """The hand audit of chapter 3's judged hits (``judge.load_hit_audit``; ``pooled``: its row over all models)."""
    audited = sorted({r["model"] for r in audit_["rows"]})
    top_q = pd.Series([r["question_id"] for r in audit_["rows"]]).value_counts()
    share = pooled["both (read)"] / pooled["judged hits"]
    return {
        "audit_date": audit_["date"], "audit_models": ", ".join(audited),
        "audit_not_in_run": ", ".join(sorted(set(audited) - {"base", *(a.name for a in arms)})) or "none",
        "audit_judge_match": "used in this run" if audit_["judge"] == judge_key else
        f"`{audit_['judge']}`, an earlier one than this run's (`{judge_key}`): its hits are not this run's",
        "audit_hits": int(pooled["judged hits"]), "audit_both": int(pooled["both (read)"]),
        "audit_misaligned": int(pooled["misaligned (read)"]), "audit_precision": pooled["precision [95% interval]"],
        "audit_top_question": f"`{top_q.index[0]}`", "audit_top_hits": int(top_q.iloc[0]),
        "audit_top_confirmed": sum(r["misaligned"] and r["coherent"] for r in audit_["rows"]
                                   if r["question_id"] == top_q.index[0]),
        "audit_reading": "Most judged hits are false alarms: a judged rate here counts mostly answers that a reader "
        "would not call misaligned and coherent" if share < 0.5 else "Most judged hits hold up on reading"}


def result(metrics: Mapping[str, Any], ver: Mapping[str, Verdict], facts: Facts) -> ChapterResult:
    """Chapter 3's results file (``metrics``: emergence's, persona_arms' and em_verdict's), its verdicts and the
    facts its text glues."""
    return ChapterResult("03_emergent_misalignment", metrics, ver, facts)
