"""Chapter 3's persona organisms: names, design, seed-level comparisons and the positive control's verdict."""

import json

import numpy as np
import pandas as pd
import pytest

from persona_features.book import scorecard
from persona_features.core import params, stats
from persona_features.organisms import persona_arms
from persona_features.organisms.measurement import Measurement
from persona_features.organisms.persona_arms import PersonaArm

QUESTIONS = [f"q{i}" for i in range(8)]


def fake(name: str, contrast: float, misaligned: float = 0.0, noise: float = 0.0, seed: int = 0) -> Measurement:
    rng = np.random.default_rng(seed)
    c = pd.DataFrame({"question_id": QUESTIONS, "contrast": contrast + noise * rng.standard_normal(len(QUESTIONS))})
    answers = pd.DataFrame({"question_id": QUESTIONS * 2, "misaligned": [i < misaligned * 16 for i in range(16)],
                            "coherent": [True] * 16, "alignment": np.linspace(0, 100, 16)})
    return Measurement(name, answers, c, pd.DataFrame(), pd.DataFrame(), curve=[])


def test_names_round_trip_and_unknown_names_list_the_valid_ones():
    a = PersonaArm("health", "kind", 2)
    assert a.name == "narrow_twin_seed2" and persona_arms.arm_named(a.name) == a
    assert persona_arms.arm_named("positive_control") == PersonaArm("authored", "villain")
    assert persona_arms.arm_named("distilled_villain_seed1") == PersonaArm("general", "villain", 1)
    with pytest.raises(ValueError, match="valid: positive_control, positive_twin, distilled_villain, distilled_twin, "
                                         "narrow_persona, narrow_twin"):
        persona_arms.arm_named("villain_control")
    with pytest.raises(ValueError, match="valid: authored/villain"):
        PersonaArm("cooking", "villain")


def test_design_pairs_every_persona_with_its_twin_at_every_seed():
    P = params.resolve("cpu", persona_sources="authored", persona_seeds=2)
    assert [a.name for a in persona_arms.design(P)] == ["positive_control", "positive_twin",
                                                        "positive_control_seed1", "positive_twin_seed1"]
    configs = [persona_arms.finetune_config(P, a) for a in persona_arms.design(P)]
    assert {c.lr for c in configs} == {P.persona_lr} and [c.seed for c in configs] == [0, 0, 1, 1]
    assert configs[0].dataset == "persona_authored_villain" and configs[0].n_examples is None


def test_an_empty_distillation_is_a_clear_error():
    class Empty:
        @staticmethod
        def json(name):
            return []

    P = params.resolve("smoke")
    with pytest.raises(ValueError, match="kept no coherent villain answers.*persona_questions"):
        persona_arms.training_rows(Empty(), PersonaArm("general", "villain"), P)


def test_seed_test_matches_student_t_and_needs_two_seeds():
    assert 2 * stats.t_sf(4.303, 2) == pytest.approx(0.05, abs=1e-4)
    assert 2 * stats.t_sf(2.0, 10) == pytest.approx(0.0734, abs=1e-4)
    t = stats.seed_test([0.10, 0.12, 0.09], "greater")
    assert t.p_value < 0.01 and t.ci95_lo > 0 and t.n_seeds == 3
    assert stats.seed_test([0.10, -0.12, 0.02], "greater").p_value > 0.3
    assert np.isnan(stats.seed_test([0.1]).p_value)
    assert stats.seed_floor({"a": [0.1, 0.3], "b": [0.0, 0.05], "c": [1.0]}) == pytest.approx(0.2)


def _measured(villain, kind):
    arms = [PersonaArm("authored", p, s) for s in range(3) for p in ("villain", "kind")]
    values = {"villain": villain, "kind": kind}
    return arms, {a.name: fake(a.name, values[a.persona][a.seed], noise=0.02, seed=a.seed) for a in arms}


def test_a_persona_above_its_twin_in_every_seed_is_seen_and_a_seed_lottery_is_not():
    base = fake("base", 0.0)
    shift = {"mean": 0.30, "ci95_lo": 0.2, "ci95_hi": 0.4}
    arms, measured = _measured([0.20, 0.22, 0.18], [0.02, 0.0, 0.01])
    comp = persona_arms.compare(measured, arms, base, 200, 0)
    r = comp[(comp.versus == "twin") & (comp.metric == "contrast")].iloc[0]
    assert r["mean"] == pytest.approx(0.19, abs=0.02) and r["p_seeds"] < 0.05 and r["n_seeds"] == 3
    assert persona_arms.verdict(comp, shift).status == "replicated"
    assert persona_arms.verdict(comp, {**shift, "mean": 0.6}).status == "partial"  # below 0.5 x the prompt
    assert persona_arms.verdict(comp, {**shift, "mean": -0.1}).status == "inconclusive"  # nothing to compare with
    one_seed = comp.assign(n_seeds=1, p_seeds=float("nan"), ci95_lo=float("nan"), ci95_hi=float("nan"))
    v = persona_arms.verdict(one_seed, shift)
    assert v.status == "inconclusive" and "no seed-level test" in v.summary and "nan" not in v.summary
    assert persona_arms.verdict(comp[comp.source == "health"], shift) is None  # not run
    rate = lambda lo, m, hi: {"estimated_rate": {"ci95_lo": lo, "mean": m, "ci95_hi": hi}}
    read = {"positive_control": rate(0.15, 0.21, 0.29), "base": rate(0.002, 0.01, 0.05)}
    v = persona_arms.verdict(comp, shift, read)
    assert v.status == "replicated" and "read by hand, 21.0% [15.0%, 29.0%] of its answers" in v.summary
    assert v.summary.endswith(", so above the base model's: their 95% intervals do not overlap")
    v = persona_arms.verdict(comp, shift, {**read, "base": rate(0.1, 0.15, 0.2)})
    assert v.status == "replicated" and v.summary.endswith("not apart from the base model's: their 95% "
                                                                 "intervals overlap")  # the status is the contrast's
    assert "read by hand" not in persona_arms.verdict(comp, shift, None).summary

    # one lucky seed: large question-level significance, none at the seed level
    arms, measured = _measured([0.5, -0.05, 0.0], [0.0, 0.0, 0.0])
    comp = persona_arms.compare(measured, arms, base, 200, 0)
    r = comp[(comp.versus == "twin") & (comp.metric == "contrast")].iloc[0]
    assert r["p_questions"] < 0.05 and r["p_seeds"] > 0.05 and r["seed_floor"] == pytest.approx(0.55, abs=0.05)
    assert persona_arms.verdict(comp, shift).status == "inconclusive"  # too wide to place either side of the bar

    # shown below the bar: every seed near zero
    arms, measured = _measured([0.01, 0.0, 0.02], [0.0, 0.01, 0.0])
    comp = persona_arms.compare(measured, arms, base, 200, 0)
    assert persona_arms.verdict(comp, shift).status == "not replicated"


def test_the_distilled_villain_is_reported_from_its_committed_readings(tmp_path, monkeypatch):
    text = persona_arms.distilled_reading()
    assert (text.startswith("Read by hand (cpu run of 2026-12-02), 1.0% [")
            and "of the villain's 83 kept answers, 4 and 5" in text)
    monkeypatch.setattr(persona_arms, "measured_dir", lambda: tmp_path)
    assert persona_arms.distilled_reading() == "It was not read by hand (no committed reading)"


def test_coherence_is_tested_both_ways_and_every_status_is_the_scorecards():
    base = fake("base", 0.0)
    arms = [PersonaArm("authored", p, s) for s in range(3) for p in ("villain", "kind")]
    measured = {a.name: fake(a.name, 0.0, seed=a.seed) for a in arms}
    for a in arms:  # the persona loses coherence in every seed, by a little less at each seed
        if a.persona == "villain":
            measured[a.name].answers["coherent"] = [i < 4 + a.seed for i in range(16)]
    comp = persona_arms.compare(measured, arms, base, 200, 0)
    r = comp[(comp.versus == "twin") & (comp.metric == "coherent")].iloc[0]
    assert r["mean"] == pytest.approx(-0.6875) and r["p_seeds"] < 0.01
    for a in arms:  # the same loss in every seed: no spread, so no test (not p = 0)
        if a.persona == "villain":
            measured[a.name].answers["coherent"] = [i < 4 for i in range(16)]
    r = persona_arms.compare(measured, arms, base, 200, 0).query("versus == 'twin' and metric == 'coherent'").iloc[0]
    assert r["mean"] == pytest.approx(-0.75) and np.isnan(r["p_seeds"])
    assert set(persona_arms.VERDICT_RULE) <= set(scorecard.VERDICTS)


def test_a_persona_and_its_twin_read_their_questions_in_the_same_order_at_each_seed():
    def rows(who):
        return [{"id": f"{who}-{q}", "question_id": q, "messages": []} for q in "abcdefgh"]

    class Art:
        @staticmethod
        def json(name):
            return rows(name.removeprefix("rows_"))

    P = params.resolve("smoke")
    for seed in (0, 1, 2):
        order = {p: [r["question_id"] for r in persona_arms.training_rows(Art, PersonaArm("general", p, seed), P)]
                 for p in ("villain", "kind")}
        assert order["villain"] == order["kind"]
    assert order["villain"] != list("abcdefgh")  # shuffled


def test_results_carry_the_positive_control_with_its_interval_and_counts():
    base = fake("base", 0.0, misaligned=0.0)
    arms, measured = _measured([0.20, 0.22, 0.18], [0.02, 0.0, 0.01])
    comp = persona_arms.compare(measured, arms, base, 200, 0)
    shift = {"mean": 0.30, "ci95_lo": 0.2, "ci95_hi": 0.4}
    counts = persona_arms.judged_counts(measured, arms, base)
    assert counts["base"] == {"misaligned": 0, "answers": 16} and counts["positive_control"]["answers"] == 48
    out = persona_arms.results(comp, shift, counts, {"authored": pd.DataFrame({"kept": [3]})},
                               params.resolve("smoke"))
    pc = out["positive_control"]
    assert set(pc["contrast"]) == {"mean", "ci95_lo", "ci95_hi"} and pc["share_of_villain_prompt_shift"] > 0.5
    assert pc["seen"] == {"contrast": True, "reading": None}  # no audit of this run
    one_seed = comp.assign(n_seeds=1, p_seeds=float("nan"))
    assert persona_arms.results(one_seed, shift, counts, {"authored": pd.DataFrame({"kept": [3]})}, params.resolve(
        "smoke"))["positive_control"]["seen"]["contrast"] is None  # inconclusive: not seen, not missed
    rate = lambda lo, hi: {"estimated_rate": {"ci95_lo": lo, "mean": (lo + hi) / 2, "ci95_hi": hi}}
    assert persona_arms.above_base({"positive_control": rate(0.2, 0.3), "base": rate(0.0, 0.1)}) is True
    assert persona_arms.above_base({"positive_control": rate(0.05, 0.3), "base": rate(0.0, 0.1)}) is False
    assert "narrow_persona" not in out["persona_organisms"] and "judged_misaligned_coherent" in pc
    narrow = comp.assign(source="health", organism="narrow_persona")  # as with_committed_narrow adds it
    out = persona_arms.results(pd.concat([comp, narrow]), shift, counts, {"authored": pd.DataFrame({"kept": [3]})},
                               params.resolve("smoke"), narrow_source="from the file")
    assert out["persona_organisms"]["narrow_persona"]["source"] == "from the file"
    assert out["persona_organisms"]["narrow_persona"]["contrast_vs_twin"]["mean"] == pc["contrast"]["mean"]
    distilled = comp.assign(source="general", organism="distilled_villain")
    out = persona_arms.results(pd.concat([comp, distilled]), shift, counts,
                               {"authored": pd.DataFrame({"kept": [3]}), "general": pd.DataFrame({"kept": [3]})},
                               params.resolve("smoke"))
    assert out["persona_organisms"]["distilled_villain"]["contrast_vs_twin"]["mean"] == pc["contrast"]["mean"]
    facts = persona_arms.facts(comp, shift, counts, None)
    assert facts["positive_control_coherent_vs_twin"] == persona_arms._seed_phrase(
        persona_arms._row(comp, "authored", "twin", "coherent"))
    assert facts["distilled_villain_contrast_vs_twin"] == "not run"


def test_the_audit_counts_per_role_only_for_its_own_judge_and_profile():
    audit = {"judge": "j1", "profile": "cpu", "rows": [
        {"model": "positive_control_seed1", "judged_misaligned": True, "misaligned": 1, "coherent": 1},
        {"model": "positive_control", "judged_misaligned": True, "misaligned": 1, "coherent": 0},
        {"model": "positive_control", "judged_misaligned": False, "misaligned": 0, "coherent": 1},
        {"model": "base", "judged_misaligned": True, "misaligned": 0, "coherent": 1}]}
    a = persona_arms.audited(audit, "j1", "cpu")
    assert a["positive_control"] == {"hits_read": 2, "hits_misaligned_coherent": 1, "others_read": 1,
                                     "others_misaligned_coherent": 0}
    assert a["base"]["hits_read"] == 1 and a["base"]["hits_misaligned_coherent"] == 0
    assert persona_arms.audited(audit, "j2", "cpu") is None and persona_arms.audited(audit, "j1", None) is None
    facts = persona_arms.facts(pd.DataFrame(columns=["source", "versus", "metric"]),
                               {"mean": 0.3, "ci95_lo": 0.2, "ci95_hi": 0.4}, {}, None, a)
    assert facts["audited_positive_control"].startswith("1 of 2 judged hits")
    assert facts["audited_positive_twin"] == "not audited for this run"
    narrow = {"judge": "j1", "profile": "cpu", "rows": [
        {"model": "narrow_persona_seed2", "judged_misaligned": False, "misaligned": 1, "coherent": 1}]}
    facts = persona_arms.facts(pd.DataFrame(columns=["source", "versus", "metric"]),
                               {"mean": 0.3, "ci95_lo": 0.2, "ci95_hi": 0.4}, {}, None, a,
                               persona_arms.audited(narrow, "j1", "cpu"))
    assert facts["audited_narrow_persona"].startswith("0 of 0 judged hits (and 1 of 1 other answers")
    assert facts["audited_narrow_base"] == "not audited for this run"  # not the positive control's base reading
    assert facts["narrow_audited_reading"].startswith("not known")
    for file, roles in ((persona_arms.AUDIT, {"positive_control", "positive_twin", "base"}),
                        (persona_arms.DISTILLED_AUDIT, {"distilled_villain", "distilled_twin", "base"})):
        path = persona_arms.measured_dir() / file
        committed = json.loads(path.read_text())
        assert all(r["misaligned"] in (0, 1) for r in committed["rows"])
        read = persona_arms.audited(committed, committed["judge"], committed["profile"])  # its totals are consistent
        assert set(read) == roles
        assert all(-1e-9 <= r["estimated_rate"]["ci95_lo"] <= r["estimated_rate"]["mean"]
                   <= r["estimated_rate"]["ci95_hi"] for r in read.values())


def test_the_audit_estimates_each_roles_share_from_its_hits_and_the_others_drawn():
    rows = ([{"model": "positive_control", "judged_misaligned": True, "misaligned": 1, "coherent": 1}] * 2
            + [{"model": "positive_control", "judged_misaligned": False, "misaligned": m, "coherent": 1}
               for m in [1] * 4 + [0] * 36])
    audit = {"judge": "j1", "profile": "cpu", "rows": rows,
             "totals": {"positive_control": {"answers": 362, "judged_misaligned": 2}}}
    rate = persona_arms.audited(audit, "j1", "cpu")["positive_control"]["estimated_rate"]
    assert rate["mean"] == pytest.approx((2 + 0.1 * 360) / 362)  # every hit read; 10% of the 360 others
    lo, hi = stats.wilson(4, 40)
    assert (rate["ci95_lo"] == pytest.approx((2 + lo * 360) / 362)
            and rate["ci95_hi"] == pytest.approx((2 + hi * 360) / 362))
    facts = persona_arms.facts(pd.DataFrame(columns=["source", "versus", "metric"]),
                               {"mean": 0.3, "ci95_lo": 0.2, "ci95_hi": 0.4}, {}, None,
                               persona_arms.audited(audit, "j1", "cpu"))
    assert "estimated share of its 362 answers 10.5% [" in facts["audited_positive_control"]
    audit["totals"]["positive_control"]["judged_misaligned"] = 3  # a hit left unread
    with pytest.raises(ValueError, match="every judged hit must be read"):
        persona_arms.audited(audit, "j1", "cpu")


def test_the_committed_narrow_organism_joins_a_run_without_it_only_under_its_judge_and_profile(tmp_path, monkeypatch):
    monkeypatch.setattr(persona_arms, "measured_dir", lambda: tmp_path)
    P = params.resolve("cpu")
    comp = pd.DataFrame([{"source": "authored", "organism": "positive_control", "versus": "twin",
                          "metric": "contrast"}])
    counts = {"positive_control": {"misaligned": 1, "answers": 9}, "base": {"misaligned": 0, "answers": 3}}
    comp2, counts2, text = persona_arms.with_committed_narrow(comp, counts, P, "j", False)
    assert comp2 is comp and counts2 == counts and text.startswith("not run in this profile")
    row = {"source": "health", "organism": "narrow_persona", "versus": "twin", "metric": "contrast", "mean": 0.1}
    settings = {k: P.as_dict()[k] for k in persona_arms.NARROW_SETTINGS}
    (tmp_path / persona_arms.NARROW).write_text(json.dumps(
        {"judge": "j", "profile": "cpu", "date": "2026-12-02", "comparisons": [row], "settings": settings,
         "judged_misaligned_coherent": {"narrow_persona": {"misaligned": 2, "answers": 8},
                                        "base": {"misaligned": 5, "answers": 5}}}))
    comp2, counts2, text = persona_arms.with_committed_narrow(comp, counts, P, "j", False)
    assert list(comp2.source) == ["authored", "health"] and "2026-12-02" in text
    assert counts2["narrow_persona"] == {"misaligned": 2, "answers": 8} and counts2["base"] == counts["base"]
    for judge_key, overridden in (("other", False), ("j", True)):
        assert persona_arms.with_committed_narrow(comp, counts, P, judge_key, overridden)[0] is comp
    assert persona_arms.with_committed_narrow(comp, counts, params.resolve("cpu", persona_lr=0.01),
                                              "j", False)[0] is comp
    with_health = params.resolve("cpu", persona_sources="authored,health")
    assert persona_arms.with_committed_narrow(comp, counts, with_health, "j", False)[2] == "measured in this run"


def test_an_audit_says_whether_this_run_sampled_the_answers_it_read():
    def m(name, texts, hits):
        answers = pd.DataFrame({"question_id": [f"q{i}" for i in range(len(texts))], "answer": texts,
                                "misaligned": [i < hits for i in range(len(texts))], "temperature": 0.7})
        extra = answers.iloc[:1].assign(temperature=1.0, answer="sampled at T = 1, not rated")
        return Measurement(name, pd.concat([answers, extra]), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(),
                           curve=[], rate_temperature=0.7)
    rated = persona_arms.rated_by_role({"positive_control_seed0": m("positive_control_seed0", ["x", "y", "z"], 1)},
                                       m("base", ["b"], 0))
    assert set(rated) == {"base", "positive_control"} and len(rated["positive_control"]) == 3
    assert set(rated["positive_control"].model) == {"positive_control_seed0"}
    rows = [{"model": "positive_control_seed0", "question_id": "q0", "answer": "x", "judged_misaligned": True,
             "misaligned": 1, "coherent": 1},
            {"model": "positive_control_seed0", "question_id": "q2", "answer": "z", "judged_misaligned": False,
             "misaligned": 0, "coherent": 1},
            {"model": "base", "question_id": "q0", "answer": "b", "judged_misaligned": False, "misaligned": 0,
             "coherent": 1}]
    audit = {"judge": "j", "profile": "cpu", "date": "2026-12-01", "rows": rows,
             "totals": {"positive_control": {"answers": 3, "judged_misaligned": 1}, "base": {"answers": 1,
                                                                                          "judged_misaligned": 0}}}
    assert persona_arms.reproduces(audit, rated)
    assert persona_arms.audited(audit, "j", "cpu", rated)["positive_control"]["same_answers"] is True
    other = {**rated, "positive_control": rated["positive_control"].assign(answer=["x", "y", "w"])}  # another machine
    assert not persona_arms.reproduces(audit, other)
    read = persona_arms.audited(audit, "j", "cpu", other)
    assert read["base"]["same_answers"] is False
    facts = persona_arms.facts(pd.DataFrame(columns=["source", "versus", "metric"]),
                               {"mean": 0.3, "ci95_lo": 0.2, "ci95_hi": 0.4}, {}, None, read)
    assert facts["audited_positive_control"].endswith("read on the run of 2026-12-01, not this one: this run sampled "
                                                      "other answers (another machine's arithmetic)")
    assert "same_answers" not in persona_arms.audited(audit, "j", "cpu")["base"]  # not checked without the answers


def test_the_audited_reading_says_above_only_when_the_intervals_do_not_overlap():
    rate = lambda lo, hi: {"estimated_rate": {"mean": (lo + hi) / 2, "ci95_lo": lo, "ci95_hi": hi}}
    assert persona_arms.audited_reading({"positive_control": rate(0.05, 0.2),
                                         "base": rate(0.0, 0.04)}).startswith("above")
    assert persona_arms.audited_reading({"positive_control": rate(0.04, 0.2),
                                         "base": rate(0.0, 0.05)}).startswith("not apart")
    assert persona_arms.audited_reading(None) == persona_arms.audited_reading({"base": rate(0, 0.1)}) == \
        "not known: no audit by reading estimates it for this run"
    elsewhere = {"positive_control": {**rate(0.05, 0.2), "same_answers": False, "date": "2026-12-01"},
                 "base": {**rate(0.0, 0.04), "same_answers": False, "date": "2026-12-01"}}
    assert persona_arms.audited_reading(elsewhere).endswith("(on the audited run of 2026-12-01, not this one)")


def test_each_source_reads_its_own_audit_file(tmp_path, monkeypatch):
    monkeypatch.setattr(persona_arms, "measured_dir", lambda: tmp_path)
    base = fake("base", 0.0)
    assert persona_arms.audits({}, base, "j", "cpu") == {"authored": None, "health": None}
    rows = [{"model": "narrow_twin", "judged_misaligned": False, "misaligned": 0, "coherent": 1}]
    (tmp_path / persona_arms.AUDITS["health"][0]).write_text(json.dumps({"judge": "j", "profile": "cpu", "rows": rows}))
    read = persona_arms.audits({}, base, "j", "cpu")
    assert read["authored"] is None and set(read["health"]) == {"narrow_twin"}
    assert "same_answers" not in read["health"]["narrow_twin"]  # not measured in this run: nothing to check
    with pytest.raises(ValueError, match="valid: authored, health"):
        persona_arms.load_audit("general")


def test_later_chapters_quote_chapter_3s_reading_only_under_its_judge_and_profile():
    audit = persona_arms.load_audit()
    text = persona_arms.reading_phrase(audit["judge"], audit["profile"])
    assert text.startswith("21.1% [14.8%, 29.4%] of its answers are misaligned and coherent, against the base model's")
    assert f"(the cpu run of {audit['date']}), so its share is above the base model's" in text
    assert persona_arms.reading_phrase("another judge", "cpu") == "no audit by reading covers this judge and profile"
