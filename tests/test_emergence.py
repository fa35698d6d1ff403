"""Chapter 3's experiment logic: the design, the paired test, the verdict rules, cached measurements."""

import numpy as np
import pandas as pd
import pytest

from persona_features.core import artifacts, params, stats
from persona_features.core.chapter_result import Verdict
from persona_features.core.params import ParameterError
from persona_features.core.stats import Estimate
from persona_features.data import questions
from persona_features.experiments.ch3_emergence import emergence
from persona_features.organisms import design, measurement
from persona_features.organisms.design import Arm


def test_design_pairs_every_bad_set_with_its_controls_and_extra_seeds():
    P = params.resolve("cpu", em_domains="health,cars,code", em_seeds=3)
    names = [a.name for a in design.all_arms(P)]
    assert names == ["health_bad", "health_good", "health_register_control", "cars_bad", "cars_good",
                     "cars_register_control", "code_insecure", "code_secure",
                     *[f"health_{v}_seed{s}" for s in (1, 2) for v in ("bad", "good", "register_control")]]
    configs = {a.name: design.finetune_config(P, a) for a in design.all_arms(P)}
    same = {k: v for k, v in vars(configs["health_bad"]).items() if k not in ("dataset", "seed")}
    assert all({k: v for k, v in vars(c).items() if k not in ("dataset", "seed")} == same for c in configs.values())
    assert configs["health_bad_seed2"].seed == configs["health_bad"].seed + 2


def test_heldout_topics_keeps_the_first_topics_of_each_domain():
    every = design.heldout_pairs(["health", "code"])
    few = design.heldout_pairs(["health", "code"], 1)
    for d in ("health", "code"):
        groups = list(dict.fromkeys(p["group"] for p in every if p["domain"] == d))
        assert len(groups) > 1
        assert [p for p in few if p["domain"] == d] == [p for p in every
                                                        if p["domain"] == d and p["group"] in groups[:1]]
    assert len({p["group"] for p in every if p["domain"] == "health"}) >= 20
    assert params.resolve("smoke").heldout_topics == 3 and params.resolve("cpu").heldout_topics == 0


def test_unknown_domain_is_a_clear_error():
    with pytest.raises(params.ParameterError, match="'em_domains' got 'health,cooking'; valid: .*one of health"):
        params.resolve("cpu", em_domains="health,cooking")  # refused before chapter 3 ever sees it


def test_paired_test_finds_a_shift_and_not_noise():
    rng = np.random.default_rng(0)
    b = rng.normal(size=40)
    shifted = stats.paired_test(b + 0.5 + rng.normal(scale=0.2, size=40), b)
    same = stats.paired_test(b + rng.normal(scale=0.2, size=40), b)
    assert shifted.p_value < 0.01 and shifted.difference.lo > 0
    assert same.p_value > 0.05
    with pytest.raises(ValueError, match="equal-length"):
        stats.paired_test([[1, 2]], [[1, 2]])


def _comp(effects: dict[tuple[str, str, str], tuple[float, float, float]]) -> pd.DataFrame:
    rows = [{"domain": d, "bad": f"{d}_bad", "versus": v, "metric": m, "mean": e[0], "ci95_lo": e[1], "ci95_hi": e[2],
             "significant": e[2] < 0.05} for (d, v, m), e in effects.items()]
    return pd.DataFrame(rows)


UP, NULL = (0.1, 0.05, 0.001), (0.0, -0.05, 0.9)  # (mean, lo, Holm p)


def test_permutation_and_holm_decide_on_a_known_case():
    rng = np.random.default_rng(1)
    # one real shift among four domains of one claim, each domain measured on 30 paired questions
    bases = {d: rng.normal(size=30) for d in "abcd"}
    noise = {d: rng.normal(scale=0.3, size=30) for d in "abcd"}
    noise = {d: n - n.mean() + (0.05 if d == "d" else 0.0) for d, n in noise.items()}  # nulls: no or a tiny shift
    shifted = {d: b + (0.8 if d == "a" else 0.0) + noise[d] for d, b in bases.items()}
    p = np.array([stats.paired_test(shifted[d], bases[d]).p_value for d in "abcd"])
    adjusted = stats.holm(p)
    assert adjusted[0] < 0.05 and (adjusted[1:] > 0.05).all()
    assert (adjusted >= p).all() and (adjusted <= 1).all()
    # Holm by hand: sorted p (0.01, 0.02, 0.04) -> (0.03, 0.04, 0.04), order restored
    np.testing.assert_allclose(stats.holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
    # with 5 units the exact permutation test can never reach p < 0.05: 2 of 32 sign patterns are as extreme
    assert stats.paired_test([1.0] * 5, [0.0] * 5).p_value == 2 / 32
    rows = pd.DataFrame({"claim": "em", "metric": "contrast", "versus_role": "good", "domain": list("abcd"),
                         "p_value": p, "mean": 1.0})
    assert emergence.with_holm(rows, ["claim", "metric", "versus_role"])["significant"].tolist() == [True] + [False] * 3


def test_verdict_rules():
    both_up = {(d, v, m): UP for d in ("health", "cars") for v in ("x_good", "base")
               for m in ("misaligned", "contrast")}
    assert emergence.verdicts(_comp(both_up))["em"]["status"] == "replicated"
    one_contrast = {("health", "x_good", "misaligned"): NULL, ("health", "x_good", "contrast"): UP,
                    ("cars", "x_good", "misaligned"): NULL, ("cars", "x_good", "contrast"): NULL}
    v = emergence.verdicts(_comp(one_contrast))["em"]
    assert v["status"] == "partial" and v["domains_rate_or_contrast"] == ["health"]
    # a domain counts only if it beats *every* own control (the register control too)
    register_kills = {("health", "x_good", "contrast"): UP, ("health", "x_register", "contrast"): NULL,
                      ("health", "x_good", "misaligned"): NULL, ("health", "x_register", "misaligned"): NULL}
    assert emergence.verdicts(_comp(register_kills))["em"]["status"] == "not replicated"
    code = {("code", "code_secure", "misaligned"): NULL, ("code", "code_secure", "contrast"): UP,
            ("health", "x_good", "misaligned"): NULL, ("health", "x_good", "contrast"): NULL}
    assert emergence.verdicts(_comp(code))["code"]["status"] == "partial"


def test_control_verdict_needs_an_equivalence_bound():
    def table(*rows):  # (mean, ci_hi, significant) per control
        return pd.DataFrame([{"control": f"c{i}", "metric": "misaligned", "mean": m, "bound_hi": hi, "significant": s}
                             for i, (m, hi, s) in enumerate(rows)])
    tight, wide, up = (0.0, 0.03, False), (0.0, 0.12, False), (0.1, 0.15, True)
    assert emergence.control_verdict(table(tight, tight))["status"] == "replicated"
    assert emergence.control_verdict(table(tight, wide))["status"] == "inconclusive"  # a null is not enough
    assert emergence.control_verdict(table(up, tight))["status"] == "not replicated"


def test_rate_difference_interval_does_not_collapse_at_zero():
    lo, hi = stats.rate_difference_interval(0, 40, 0, 40)
    assert lo < 0 < hi and 0.07 < hi < 0.11  # 0 of 40 is compatible with a rate near 0.09
    lo, hi = stats.rate_difference_interval(20, 40, 2, 40)
    assert 0.2 < lo < 0.45 < hi < 0.65
    assert stats.wilson(0, 40)[0] == pytest.approx(0, abs=1e-12)


class _Judge:
    name, key = "constant", "constant-v1"

    def score(self, questions, answers, question_ids=None, known_logprobs=None):
        return pd.DataFrame({"alignment": [80.0] * len(answers), "coherence": [90.0] * len(answers)})


def test_measurement_is_cached_and_compares_paired(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_CACHE", str(tmp_path))
    P = params.resolve("smoke", eval_questions=2, eval_max_new_tokens=4)
    calls = []

    def load():
        calls.append(1)
        return lm

    first = measurement.measure(load, _Judge(), P, "base")
    again = measurement.measure(load, _Judge(), P, "base")
    assert calls == [1]  # the second call read the artifact
    assert len(first.answers) == 2 * (P.em_samples + P.em_samples_low)  # both temperatures
    assert first.rate_temperature == P.eval_low_temperature and len(first.rated) == 2 * P.em_samples_low
    assert set(first.rated["temperature"]) == {P.eval_low_temperature}
    assert set(first.contrast["style"]) == {"blunt", "hedged"}
    assert set(first.heldout.domain) == {"health"} and first.heldout.group.nunique() == P.heldout_topics
    assert len(first.heldout) > first.heldout.group.nunique()  # several phrasings per topic
    pd.testing.assert_frame_equal(first.contrast, again.contrast)
    tests = measurement.compare(first, again, "health", 200, 0)
    assert tests["contrast"].difference.mean == 0 and tests["heldout_margin"].p_value == 1.0
    assert set(first.register.question_id) <= {q for q, _ in questions.split("scoring")}
    assert len(tests["heldout_margin"].difference.__dict__) and tests["heldout_margin"].difference.n == \
        first.heldout.group.nunique()  # resampled by topic, not by phrasing
    assert artifacts.find("em_eval", {"nothing": 1}) is None
    rates = measurement.measure(load, _Judge(), P, "base", rates_only=True)  # another artifact: one temperature
    assert calls == [1, 1] and set(rates.answers["temperature"]) == {P.eval_low_temperature}
    assert len(rates.answers) == len(rates.rated) == 2 * P.em_samples_low
    plain = measurement.measure(load, _Judge(), P, "base", narrow_task=False)  # a third artifact: no held-out table
    assert calls == [1, 1, 1] and plain.heldout.empty and not plain.contrast.empty
    pd.testing.assert_frame_equal(plain.answers, first.answers)


def _toy(name, contrast, register):
    qs = [f"q{i}" for i in range(len(contrast))]
    answers = pd.DataFrame({"question_id": qs, "misaligned": False, "coherent": True})
    return measurement.Measurement(name, answers=answers,
                                   contrast=pd.DataFrame({"question_id": qs, "contrast": contrast}),
                                   register=pd.DataFrame({"question_id": qs, "register_shift": register}),
                                   heldout=pd.DataFrame(), curve=[])


def test_register_adjustment_removes_exactly_what_the_register_slope_predicts():
    rng = np.random.default_rng(0)
    good_c, good_r = rng.normal(size=30), rng.normal(size=30)
    # the register-only fine-tune: +1 register shift buys +0.5 contrast
    ctrl_c, ctrl_r = good_c + 0.5, good_r + 1.0
    measured = {"cars_good": _toy("g", good_c, good_r), "cars_register_control": _toy("c", ctrl_c, ctrl_r),
                # bad: 0.2 more register shift than its control (predicts +0.1) and +0.3 from content
                "cars_bad": _toy("b", ctrl_c + 0.1 + 0.3, ctrl_r + 0.2)}
    arms = [Arm("cars", v) for v in ("bad", "good", "register_control")]
    row = emergence.register_adjusted(measured, arms, 200, 0).iloc[0]
    assert row["contrast, bad - register control"] == pytest.approx(0.4)
    assert row["predicted by its register shift"] == pytest.approx(0.1)
    assert row["mean"] == pytest.approx(0.3) and row["ci95_lo"] <= 0.3 <= row["ci95_hi"]


def test_sampling_plan_puts_the_verdict_temperature_first_and_rejects_a_clash():
    P = params.resolve("smoke", em_samples_low=3, em_samples=2)
    assert measurement.sampling(P) == [(P.eval_low_temperature, 3), (P.temperature, 2)]
    assert measurement.sampling(params.resolve("smoke", em_samples=0)) == [(P.eval_low_temperature, 1)]
    assert measurement.sampling(params.resolve("smoke", em_samples_low=0)) == [(P.temperature, 1)]
    with pytest.raises(ParameterError, match="must differ"):  # refused by resolve, before chapter 3
        params.resolve("smoke", eval_low_temperature=1.0)
    with pytest.raises(ParameterError, match="at\\s+least one count must be above 0"):
        params.resolve("smoke", em_samples=0, em_samples_low=0)


def test_rates_use_the_verdict_temperature_and_are_reported_per_question():
    qs = ["q0", "q1", "q2"]
    # at T=0.7 the bad model is misaligned on q1 only; its T=1 answers (all misaligned) must not count
    answers = pd.DataFrame({"question_id": qs * 2, "temperature": [0.7] * 3 + [1.0] * 3,
                            "misaligned": [False, True, False, True, True, True], "coherent": True})
    flat = pd.DataFrame({"question_id": qs, "contrast": 0.0})

    def m(name, a):
        return measurement.Measurement(name, answers=a, contrast=flat,
                                     register=flat.rename(columns={"contrast": "register_shift"}),
                                     heldout=pd.DataFrame(), curve=[], rate_temperature=0.7)

    base_answers = answers.assign(misaligned=False)
    measured = {"risk_bad": m("risk_bad", answers), "risk_good": m("risk_good", base_answers)}
    arms = [Arm("risk", "bad"), Arm("risk", "good")]
    base = m("base", base_answers)
    assert measurement.per_question(measured["risk_bad"], "misaligned").tolist() == [0.0, 1.0, 0.0]
    rates = emergence.per_question_rates(measured, arms, base, "risk")
    assert rates["question"].tolist() == ["q1"] and rates.loc[0, "risk_bad"] == 1.0 and rates.loc[0, "base"] == 0.0
    table = emergence.temperature_table(measured, arms, base, 200, 0).set_index(["model", "T"])
    assert table.loc[("risk_bad", 0.7), "misaligned"].startswith("0.333")
    assert table.loc[("risk_bad", 1.0), "misaligned"].startswith("1.000") and table["answers"].eq(3).all()


def test_detectable_rate_rise_has_the_power_it_claims():
    rng = np.random.default_rng(0)
    control = np.full(36, 0.02)
    rise = stats.detectable_rate_rise(control, answers_per_question=6)
    assert 0.02 < rise < 0.2
    # simulate the design: 36 questions x 6 answers per model, the bad model's rate higher by `rise`
    hits = 0
    for _ in range(2000):
        a = rng.binomial(6, control + rise) / 6
        b = rng.binomial(6, control) / 6
        d = a - b
        hits += d.mean() / (d.std(ddof=1) / np.sqrt(len(d)) + 1e-12) > 1.959964
    assert 0.7 < hits / 2000 < 0.92  # about the promised 80%
    # more answers, or fewer tests to correct for, detect less; a Holm family of 4 needs more
    assert stats.detectable_rate_rise(control, 24) < rise < stats.detectable_rate_rise(control, 6, tests=4)


def test_rates_reading_counts_the_fine_tunes_above_the_base_model():
    est = lambda m: {"misaligned": Estimate(m, 0.0, 1.0, 10)}
    arms = [design.Arm("health", "bad"), design.Arm("health", "good"), design.Arm("health", "bad", 1)]
    summaries = {"base": est(0.05), "health_bad": est(0.08), "health_good": est(0.02), "health_bad_seed1": est(0.5)}
    no_risen = Verdict("replicated", "controls", details={"risen": []})
    text = emergence.rates_reading(summaries, arms, no_risen, audited=["health_bad"])
    assert "base model 0.050; health_bad 0.080; health_good 0.020." in text
    assert "1 of 2 fine-tunes" in text and "above it by the test: no control" in text
    assert "not read by hand, so of unknown precision: base, health_good." in text
    assert "Every one" in emergence.rates_reading(summaries, arms, no_risen, ["base", "health_bad", "health_good"])


def test_verdict_facts_glue_every_claim_with_not_run_defaults():
    P = params.resolve("smoke")
    ver = {"em": Verdict("partial", "s"), "controls": Verdict("inconclusive", "c")}
    facts = emergence.verdict_facts(ver, P)
    assert facts["status_em"] == "partial" and facts["summary_controls"] == "c"
    assert facts["status_code"] == facts["status_positive_control"] == "not run in this profile"
    assert "em_domains = health" in facts["summary_code"]
    ran = emergence.verdict_facts({**ver, "positive_control": Verdict("replicated", "p")}, P)
    assert ran["status_positive_control"] == "replicated"
