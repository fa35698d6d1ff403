"""Chapter 3's EM verdict with the fine-tune as the unit: seeded design, seed-level tests, the named outcomes."""

import numpy as np
import pandas as pd
import pytest

from persona_features.book import scorecard
from persona_features.core import params
from persona_features.experiments.ch3_emergence import em_verdict, emergence
from persona_features.organisms import design
from persona_features.organisms.design import Arm
from persona_features.organisms.measurement import Measurement

QUESTIONS = [f"q{i}" for i in range(10)]
TOPICS = [f"t{i}" for i in range(6)]


def fake(name: str, contrast: float, misaligned: float = 0.0, margin: float = 0.0, seed: int = 0) -> Measurement:
    """A measurement whose per-question contrast is ``contrast`` plus small question noise (the same for
    every model of one seed, so that differences are exact) and whose judged rate is ``misaligned``."""
    rng = np.random.default_rng(seed)
    c = pd.DataFrame({"question_id": QUESTIONS, "contrast": contrast + 0.01 * rng.standard_normal(len(QUESTIONS))})
    n = 2 * len(QUESTIONS)
    answers = pd.DataFrame({"question_id": QUESTIONS * 2, "misaligned": [i < round(misaligned * n) for i in range(n)],
                            "coherent": [True] * n, "alignment": np.linspace(0, 100, n)})
    held = pd.DataFrame({"domain": "health", "group": TOPICS, "margin": margin, "prefers_wrong": margin > 0})
    register = pd.DataFrame({"question_id": QUESTIONS, "register_shift": 0.0})
    return Measurement(name, answers, c, register, held, curve=[])


def _measured(bad, register, good, seeds=3, bad_rate=None):
    """Main-domain arms with these per-seed contrasts; the bad model's judged rate per seed (others 0)."""
    arms = [Arm("health", v, s) for s in range(seeds) for v in ("bad", "good", "register_control")]
    values = {"bad": bad, "register_control": register, "good": good}
    rate = lambda a: (bad_rate or [0.0] * seeds)[a.seed] if a.is_bad else 0.0
    return arms, {a.name: fake(a.name, values[a.variant][a.seed], rate(a), seed=a.seed) for a in arms}


def test_design_trains_every_main_domain_arm_at_every_seed_and_later_chapters_read_seed0_controls():
    P = params.resolve("cpu", em_domains="health,risk", em_seeds=3)
    names = [a.name for a in design.all_arms(P)]
    assert names[:6] == ["health_bad", "health_good", "health_register_control", "risk_bad", "risk_good",
                         "risk_register_control"]
    assert set(names[6:]) == {f"health_{v}_seed{s}" for v in ("bad", "good", "register_control") for s in (1, 2)}
    assert em_verdict.seeded_domains(design.all_arms(P)) == {"health": [0, 1, 2]}
    diffed = [a.name for a in design.diffed_arms(P)]
    assert "health_bad_seed2" in diffed and "health_good_seed1" not in diffed and "risk_good" in diffed
    configs = {a.name: design.finetune_config(P, a) for a in design.all_arms(P)}
    assert configs["health_register_control_seed2"].seed == configs["health_bad_seed2"].seed  # seeds pair


def test_above_every_control_and_the_base_model_in_every_seed_is_seen_and_a_lucky_seed_is_not():
    base = fake("base", 0.0)
    arms, measured = _measured([0.10, 0.12, 0.11], [0.02, 0.03, 0.02], [0.0, 0.01, 0.0])
    seeded = em_verdict.comparisons(measured, arms, base, 200, 0)
    r = seeded[(seeded.metric == "contrast") & (seeded.versus_role == "register_control")].iloc[0]
    assert r["mean"] == pytest.approx(0.087, abs=0.005) and r["n_seeds"] == 3 and r["above"]
    assert r["seed_floor"] == pytest.approx(0.02, abs=0.005)
    assert em_verdict.status(seeded) == "partial"  # the contrast, not the judged rate
    v = em_verdict.verdict(seeded, pd.DataFrame(columns=["domain", "versus", "metric", "significant", "mean"]),
                           em_verdict.judged_counts(measured, arms, base))
    assert v.evidence is not None and v.evidence["mean"] == pytest.approx(r["mean"]) and "over 3 seeds" in v.summary

    # one lucky seed: seeds disagree, so no seed-level effect however many questions agree within a seed
    arms, measured = _measured([0.30, 0.0, -0.02], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    seeded = em_verdict.comparisons(measured, arms, base, 200, 0)
    r = seeded[(seeded.metric == "contrast") & (seeded.versus_role == "register_control")].iloc[0]
    assert r["p_questions"] < 0.05 and not r["above"] and em_verdict.status(seeded) == "not replicated"


def test_above_the_controls_but_not_the_base_model_is_its_own_outcome_and_the_rate_decides_replication():
    base = fake("base", 0.10)
    arms, measured = _measured([0.10, 0.11, 0.10], [0.02, 0.03, 0.02], [0.0, 0.01, 0.0])  # controls fell below base
    seeded = em_verdict.comparisons(measured, arms, base, 200, 0)
    assert em_verdict.status(seeded) == em_verdict.CONTROLS_MOVED
    base = fake("base", 0.0)
    arms, measured = _measured([0.10, 0.12, 0.11], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], bad_rate=[0.5, 0.45, 0.55])
    seeded = em_verdict.comparisons(measured, arms, base, 200, 0)
    assert em_verdict.status(seeded) == "replicated"
    assert set(em_verdict.RULES) <= set(scorecard.VERDICTS)


def test_one_seed_gives_no_seed_level_test_and_says_so():
    base = fake("base", 0.0)
    arms, measured = _measured([0.1], [0.0], [0.0], seeds=1)
    seeded = em_verdict.comparisons(measured, arms, base, 200, 0)
    assert seeded.empty and em_verdict.status(seeded) == "inconclusive"
    assert "no seed-level test" in em_verdict.phrase(seeded, "contrast", "register_control")
    assert "note" in em_verdict.table(seeded).columns


def test_seeds_that_all_agree_have_no_spread_to_test_and_are_not_called_above():
    base = fake("base", 0.0)
    arms, measured = _measured([0.1, 0.1], [0.0, 0.0], [0.0, 0.0], seeds=2, bad_rate=[0.5, 0.5])
    seeded = em_verdict.comparisons(measured, arms, base, 200, 0)
    r = seeded[(seeded.metric == "misaligned") & (seeded.versus_role == "register_control")].iloc[0]
    assert r["mean"] == 0.5 and pd.isna(r["p_seeds"]) and not r["above"]
    assert "every seed alike" in em_verdict.phrase(seeded, "misaligned", "register_control")
    assert em_verdict.status(seeded) != "replicated"


def test_the_base_model_is_compared_with_seed0_controls_only_in_the_question_level_table():
    P = params.resolve("cpu", em_domains="health", em_seeds=3)
    arms = design.all_arms(P)
    base = fake("base", 0.0)
    measured = {a.name: fake(a.name, 0.1 if a.is_bad else 0.0, seed=a.seed) for a in arms}
    comp = emergence.comparisons(measured, arms, base, 50, 0)
    assert set(comp["versus"]) == {"health_good", "health_register_control", "base"}
