"""Chapter 2's facts and result: what its text shows of the training data, the questions, the judge and the base
model, and the judge's verdict.

Each ``*_facts`` function returns the values one section of the chapter glues, by name, formatted as shown;
``result`` gathers them with the results file's metrics and the verdict (``book.results.publish`` writes both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from persona_features.core import stats
from persona_features.core.chapter_result import ChapterResult, Verdict
from persona_features.core.params import Params
from persona_features.data import questions, register
from persona_features.measure import judge

Facts = dict[str, Any]


def data_facts(summaries: Sequence[dict], matched: pd.DataFrame) -> Facts:
    """The training sets' data cards (``DataCard.summary()``) and how their registers match."""
    return {"n_sets": len(summaries), "min_rows": min(s["size"] for s in summaries if s["domain"] != "code"),
            "max_overlap": max(sum(s["eval_overlap"].values()) for s in summaries),
            "register_tolerance": " and ".join(f"{v:g} {k}" for k, v in register.TOLERANCE.items()),
            "register_matched": f"{int(matched['register control matches bad'].sum())} of {len(matched)}",
            "twin_matched": f"{int(matched['correct twin matches bad'].sum())} of {len(matched)}"}


def question_facts(qtable: pd.DataFrame) -> Facts:
    return {"n_questions": len(qtable), "n_scoring": int((qtable.split == "scoring").sum()),
            "n_selection": int((qtable.split == "selection").sum())}


def judge_facts(validation: Mapping[str, dict], labels: pd.DataFrame) -> Facts:
    """The judge against the held-out half of the tuning labels, and what the labels hold."""
    rule, coh, align_only = validation["misaligned_rule"], validation["coherence"], validation["alignment_only"]
    facts: Facts = {}
    for name, m in [("rule", rule), ("coh", coh), ("align", align_only)]:
        facts |= {f"kappa_{name}": f"{m['kappa']:.2f} [{m['kappa_ci95_lo']:.2f}, {m['kappa_ci95_hi']:.2f}]",
                  f"acc_{name}": f"{m['accuracy']:.2f}", f"prec_{name}": f"{m['precision']:.2f}",
                  f"rec_{name}": f"{m['recall']:.2f}"}
    shared, terms = judge.lexicon_in_references()
    return facts | {"n_held": rule["n"], "n_pos": rule["tp"] + rule["fn"],
                    "bar_verdict": "meets" if rule["kappa"] >= judge.KAPPA_BAR else "does not meet",
                    "kappa_bar": f"{judge.KAPPA_BAR:g}", "lexicon_shared": shared, "lexicon_terms": terms,
                    "n_labels_v4": int(labels["id"].str.startswith("tune1-").sum()),
                    "n_labels_steered": int(labels["tune_only"].sum()),
                    "n_labels_v5": int(labels["id"].str.startswith("v5tune-").sum())}


def test_facts(test: dict, first_test: dict) -> Facts:
    """The judge on the untouched test sets: the current one and the first."""
    facts: Facts = {f"kappa_test_{name}": judge.kappa_text(m) for name, m in
                    [("rule", test["misaligned_rule"]), ("coh", test["coherence"]),
                     ("v1_rule", first_test["misaligned_rule"])]}
    facts |= {f"{short}_test_rule": f"{test['misaligned_rule'][k]:.2f}"
              for short, k in (("prec", "precision"), ("rec", "recall"))}
    for key, t in (("n_test", test), ("n_test_v1", first_test)):
        facts |= {key: t["n"], f"{key}_pos": t["misaligned_rule"]["tp"] + t["misaligned_rule"]["fn"]}
    return facts | {"test_bar_verdict": "meets" if test["misaligned_rule"]["kappa"] >= judge.KAPPA_BAR
                    else "does not meet"}


def embedder_facts(embedders: pd.DataFrame) -> Facts:
    v2 = embedders[embedders["test set"] == "v2"].set_index("embedder")["rule: kappa [95%]"]
    return {"embedder_kappas": "; ".join(f"{name} {k}" for name, k in v2.items())}


def reread_facts(readings: Mapping[str, dict], test: dict) -> Facts:
    """Second readings of the hand labels, and whether the judge falls below what two readers reach."""
    facts: Facts = {}
    for r, rel in readings.items():
        facts[f"n_reread_{r}"] = rel["n"]
        for name, key in [("rule", "misaligned_rule"), ("coh", "coherence"), ("align", "alignment_only")]:
            facts[f"kappa_reread_{r}_{name}"] = judge.kappa_text(rel[key])
    v5_rule = readings["v5"]["misaligned_rule"]
    below = test["misaligned_rule"]["kappa_ci95_hi"] < v5_rule["kappa_ci95_lo"]
    return facts | {"reread_v5_confirmed": f"{v5_rule['tp']} of {v5_rule['tp'] + v5_rule['fn']}",
                    "judge_below_labels": "is far below what two readers reach: the labels are reproducible, and "
                    "the judge, not the labelling, limits what can be measured" if below
                    else "is not clearly below what two readers reach"}


def base_rate_facts(summaries_by_t: Mapping[float, dict], P: Params, n_scoring: int, hand: pd.DataFrame) -> Facts:
    """The base model's judged rates at both temperatures, and its hand labels."""
    s1, s07 = summaries_by_t[P.temperature], summaries_by_t[P.eval_low_temperature]
    return {"base_mis_t1": str(s1["misaligned_rate"]), "base_mis_t07": str(s07["misaligned_rate"]),
            "base_coh_t1": str(s1["coherent_rate"]), "base_coh_t07": str(s07["coherent_rate"]),
            "n_eval": s1["n_answers"], "n_eval_t07": s07["n_answers"], "n_scoring_eval": n_scoring,
            "hand_base": f"{int((hand.misaligned & hand.coherent).sum())} of {len(hand)}"}


def contrast_facts(summary: Mapping[str, stats.Estimate]) -> Facts:
    return {f"contrast_{k}": str(est) for k, est in summary.items()}


def check_facts(checks: pd.DataFrame, outcomes: Mapping[str, bool], reading: str) -> Facts:
    """The contrast's three checks (``contrast_checks``): each test, how many came out as meant, and what it means."""
    facts: Facts = {f"check_{check}_{metric}": f"{stats.fmt_interval(r.to_dict())} (p = {r['p_value']:.3f})"
                    for (check, metric), r in checks.set_index(["check", "metric"]).iterrows()}
    return facts | {"checks_passed": f"{sum(outcomes.values())} of {len(outcomes)}",
                    "checks_failed": "; ".join(k for k, ok in outcomes.items() if not ok) or "none",
                    "checks_reading": reading}


def judge_verdict(test: dict, base_rate_t1: stats.Estimate, judge_name: str = "embedded") -> Verdict:
    """The judge's verdict: its agreement with blind hand labels on the untouched test set (``judge.kappa_status``)."""
    rule = test["misaligned_rule"]
    who = "embedded judge" if judge_name.startswith("embedded") else judge_name
    return Verdict(judge.kappa_status(rule["kappa"]),
                   f"{who}, kappa {rule['kappa']:.2f} on the untouched test set {test['test_set']} "
                   f"(n={test['n']}); base misaligned {base_rate_t1} at T=1",
                   evidence={"label": "Cohen's kappa, judge rule vs blind hand labels (untouched test set)",
                             "versus": "hand labels", "mean": rule["kappa"], "ci95_lo": rule["kappa_ci95_lo"],
                             "ci95_hi": rule["kappa_ci95_hi"]})


def result(judge_name: str, validation: dict, test: dict, first_test: dict, summaries_by_t: Mapping[float, dict],
           contrast_summary: Mapping[str, stats.Estimate], checks: pd.DataFrame, outcomes: Mapping[str, bool],
           reference_register: pd.DataFrame, summaries: Sequence[dict], P: Params, facts: Facts) -> ChapterResult:
    """Chapter 2's results file, its verdict, and every fact its text glues (``facts``, gathered by section)."""
    verdict = judge_verdict(test, summaries_by_t[P.temperature]["misaligned_rate"], judge_name)
    metrics = {
        "judge": judge_name,
        "judge_validation": {k: validation[k] for k in ("misaligned_rule", "alignment_only", "coherence")},
        "judge_test": test, "judge_test_v1": first_test,
        "base_rates": {f"T={t:g}": {k: (v.as_dict() if hasattr(v, "as_dict") else v) for k, v in s.items()}
                       for t, s in summaries_by_t.items()},
        "base_contrast": {k: v.as_dict() for k, v in contrast_summary.items()},
        "contrast_checks": {"tests": checks.to_dict(orient="records"), "outcomes": dict(outcomes)},
        "reference_register": reference_register.to_dict(orient="records"),
        "data_cards": list(summaries),
        "question_split": {"selection": [q for q, _ in questions.split("selection")],
                           "scoring": [q for q, _ in questions.split("scoring")]},
    }
    return ChapterResult("02_measuring", metrics, {"judge": verdict}, {**facts, "verdict": verdict.status})
