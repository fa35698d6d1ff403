"""Chapter 5's analysis: dose tables, ablation shares, transfer and verdicts, on synthetic runs."""

import numpy as np
import pandas as pd
import pytest
import torch

from persona_features.book import scorecard
from persona_features.core import params
from persona_features.experiments.ch5_steering import interventions as iv

ALPHAS = [0.1, 0.4]
N_Q = 12


def _run(model, rows, answers=None):
    """A run as ``interventions.run`` returns it, from {setting label: per-question contrasts}."""
    frame = pd.DataFrame({label: np.asarray(v, float) for label, v in rows.items()}).T
    frame.columns = [f"q{i}" for i in range(N_Q)]
    return {"contrast": frame, "answers": answers if answers is not None else pd.DataFrame(), "model": model}


def _answers(label, misaligned, coherent):
    return pd.DataFrame({"question_id": [f"q{i}" for i in range(N_Q)], "answer": "text", "alignment": 50.0,
                         "coherence": 80.0, "misaligned": misaligned, "coherent": coherent, "setting": label})


def test_labels_and_strengths():
    assert iv.Setting("persona latent", 0.2).label == "persona latent | +0.2"
    assert iv.Setting("mean difference", 0.0, ablate=True).label == "mean difference | ablate+0"
    assert iv.Setting(iv.NONE).label == iv.NONE
    assert iv.strengths(params.resolve("cpu", steer_alphas="0.4, 0.1")) == [0.1, 0.4]
    with pytest.raises(params.ParameterError, match="steer_alphas.*list of float"):
        params.resolve("cpu", steer_alphas="0.1;0.4")
    with pytest.raises(params.ParameterError, match="steer_alphas.*> 0"):
        params.resolve("cpu", steer_alphas="-0.1")


def test_random_directions_are_unit_and_differ():
    dirs = iv.random_directions(64, 5, seed=3)
    stacked = torch.stack(list(dirs.values()))
    assert list(dirs) == [f"random {i}" for i in range(5)]
    assert torch.allclose(stacked.norm(dim=1), torch.ones(5))
    assert (stacked @ stacked.T - torch.eye(5)).abs().max() < 0.6
    assert iv.fingerprint(dirs["random 0"]) == iv.fingerprint(3 * dirs["random 0"]) != iv.fingerprint(dirs["random 1"])


def test_dose_table_compares_with_random_directions_at_the_same_strength():
    rng = np.random.default_rng(0)
    rows = {iv.NONE: rng.normal(0, 1, N_Q)}
    for a in ALPHAS:
        rows[iv.Setting("persona latent", a).label] = rows[iv.NONE] + 10 * a + rng.normal(0, 0.01, N_Q)
        for r in range(3):
            rows[iv.Setting(f"random {r}", a).label] = rows[iv.NONE] + rng.normal(0, 0.05, N_Q)
    answers = pd.concat([_answers(iv.NONE, False, True)]
                        + [_answers(iv.Setting("persona latent", a).label, np.arange(N_Q) < 6, True) for a in ALPHAS]
                        + [_answers(iv.Setting(f"random {r}", a).label, False, True) for a in ALPHAS for r in range(3)])
    table = iv.with_holm(iv.dose_table([_run("base", rows, answers)], ["persona latent"],
                                       [f"random {r}" for r in range(3)], ALPHAS, +1, 200, 0))
    latent = table[table.direction == "persona latent"].set_index("alpha")
    assert latent.loc[0.4, "contrast change"] == pytest.approx(4.0, abs=0.05)
    assert latent.loc[0.1, "random min"] <= latent.loc[0.1, "random mean"] <= latent.loc[0.1, "random max"]
    assert (latent["p_holm"] < 0.05).all() and (latent["p_holm"] >= latent["p_vs_random"]).all()
    assert (latent.loc[0.4, "misaligned"] == 0.5
            and latent.loc[0.4, "misaligned_lo"] < 0.5 < latent.loc[0.4, "misaligned_hi"])
    pooled = table[table.direction == iv.RANDOM].set_index("alpha")
    assert pooled.loc[0.4, "misaligned"] == 0 and pooled.loc[0.4, "n_answers"] == 3 * N_Q
    summary = iv.dose_summary(table, ["persona latent"])
    assert summary["cells"] == "2" and summary["beyond"] == "2" and summary["latent_rates"] == "50% to 50%"
    assert float(summary["latent"].split()[0]) == pytest.approx(1.0, abs=0.01) and summary["random_rates"] == "0% to 0%"
    shown = iv.dose_display(table).set_index(["direction", "α"])
    assert shown.loc[("persona latent", "+0.4"), "misaligned"].startswith("50% [")
    assert shown.loc[("random", "+0.4"), "minus random (Holm p)"] == "-"


def test_relative_reduction_is_the_share_of_the_rise_removed():
    before, floor = np.full(N_Q, 2.0), np.zeros(N_Q)
    share, lo, hi = iv.relative_reduction(before, np.full(N_Q, 0.5), floor, 200, 0)
    assert share == pytest.approx(0.75) and lo == pytest.approx(0.75) and hi == pytest.approx(0.75)
    assert iv.relative_reduction(before, before, floor, 200, 0)[0] == 0


def _bad_runs():
    rng = np.random.default_rng(1)
    runs = {}
    for model in ("health_bad", "risk_bad"):
        none = 1.0 + rng.normal(0, 0.1, N_Q)
        rows = {iv.NONE: none, iv.Setting("mean difference", 0.0, ablate=True).label: 0.2 + rng.normal(0, 0.05, N_Q)}
        for r in range(3):
            rows[iv.Setting(f"random {r}", 0.0, ablate=True).label] = none - 0.02
            rows[iv.Setting(f"random {r}", -0.2).label] = none + rng.normal(0, 0.02, N_Q)
        for d in ("health", "risk"):  # the own domain's direction suppresses more
            rows[iv.Setting(f"mean difference: {d}", -0.2).label] = none - (0.8 if model.startswith(d) else 0.3)
        runs[model] = _run(model, rows)
    return runs


def test_ablation_table_and_transfer_matrix():
    runs = _bad_runs()
    base = {m: _run(f"{m} register control", {iv.NONE: np.full(N_Q, level)})  # each model's own floor
            for m, level in (("health_bad", 0.0), ("risk_bad", 0.5))}
    randoms = [f"random {r}" for r in range(3)]
    table = iv.ablation_table(runs, base, ["mean difference"], randoms, 200, 0).set_index("model")
    assert table.loc["health_bad", "reduction"] == pytest.approx(0.8, abs=0.05)
    assert table.loc["health_bad", "random reduction"] == pytest.approx(0.02, abs=0.005)
    assert (table["p_holm"] < 0.05).all()
    assert table.loc["health_bad", "rise over control"] == pytest.approx(1.0, abs=0.1)
    assert table.loc["risk_bad", "rise over control"] == pytest.approx(0.5, abs=0.1) and (table["rise_p"] < 0.05).all()
    assert (table["minus_random_lo"] <= table["minus random"]).all() and (table["minus random"] < 0).all()
    assert "misaligned_before" not in table  # nothing judged
    ablated = iv.Setting("mean difference", 0.0, ablate=True).label
    judged = {**runs["health_bad"], "answers": pd.concat([_answers(iv.NONE, np.arange(N_Q) < 6, True),
                                                          _answers(ablated, np.arange(N_Q) < 3, True)])}
    rates = iv.ablation_table({"health_bad": judged}, base, ["mean difference"], randoms, 200, 0).iloc[0]
    assert (rates["misaligned_before"], rates["misaligned_after"]) == (0.5, 0.25)
    assert rates["misaligned_reduction"] == pytest.approx(0.5)  # half the rate removed
    assert rates["misaligned_reduction_lo"] <= 0.5 <= rates["misaligned_reduction_hi"]
    few = {**judged, "answers": pd.concat([_answers(iv.NONE, np.arange(N_Q) < 2, True),
                                           _answers(ablated, np.arange(N_Q) < 1, True)])}
    shown = iv.ablation_display(iv.ablation_table({"health_bad": few}, base, ["mean difference"], randoms, 200, 0))
    assert shown.iloc[0]["misaligned: share removed"] == f"- (under {iv.MIN_HITS_FOR_SHARE} hits before)"
    assert "50% [" in iv.ablation_display(iv.ablation_table({"health_bad": judged}, base, ["mean difference"], randoms,
                                                           200, 0)).iloc[0]["misaligned: unsteered → ablated"]
    matrix = iv.transfer_matrix(runs, {"health_bad": "health", "risk_bad": "risk"}, ["health", "risk"], randoms, 0.2)
    assert matrix.loc["health", "health"] == pytest.approx(-0.8, abs=0.03)
    assert matrix.loc["health", "risk"] == pytest.approx(-0.3, abs=0.03)


def test_verdicts_follow_the_rule():
    def dose(minus_random, p, misaligned_lo, coherent, sign=1):
        rows = [{"direction": "persona latent", "alpha": sign * a, "contrast change": minus_random, "ci95_lo": 0.0,
                 "ci95_hi": 1.0, "minus random": minus_random, "p_vs_random": p, "p_holm": p, "misaligned": 0.3,
                 "misaligned_lo": misaligned_lo, "coherent": coherent, "n_answers": 20} for a in ALPHAS]
        rows += [{"direction": iv.RANDOM, "alpha": sign * a, "misaligned": 0.05} for a in ALPHAS]
        return pd.DataFrame(rows)
    ablation = pd.DataFrame([{"model": "m", "direction": d, "reduction": 0.8, "ci95_lo": 0.6, "ci95_hi": 0.9,
                              "random reduction": 0.02, "minus random": -0.5, "minus_random_lo": -0.6,
                              "minus_random_hi": -0.4, "p_holm": 0.01, "rise over control": 0.3,
                              "rise_p": 0.001}
                             for d in ("persona latent", "mean difference")])
    unsteered = {"coherent": 0.8, "misaligned": 0.0}
    good = iv.verdicts(dose(0.5, 0.01, 0.2, 0.75), dose(-0.5, 0.01, 0.0, 0.75, -1), ablation, unsteered)
    assert good["steering"].status == "replicated" and good["direction"].status == "replicated"
    for v in good.values():  # the scorecard reads the evidence
        assert "[" in scorecard.key_number(v.as_dict()) and v.status in scorecard.VERDICTS
    incoherent = iv.verdicts(dose(0.5, 0.01, 0.2, 0.2), dose(0.1, 0.5, 0.0, 0.75, -1),
                             ablation.assign(**{"minus random": 0.1, "p_holm": 0.6}), unsteered)
    assert incoherent["steering"].status == "not replicated"  # raised only where coherence collapsed
    assert incoherent["direction"].status == "not replicated"
    weak = iv.verdicts(dose(0.5, 0.01, 0.0, 0.75), dose(0.1, 0.5, 0.0, 0.75, -1),
                       ablation.assign(ci95_lo=0.2), unsteered)
    assert weak["steering"].status == "partial" and weak["direction"].status == "partial"
    no_rise = iv.verdicts(dose(0.5, 0.01, 0.2, 0.75), dose(-0.5, 0.01, 0.0, 0.75, -1), ablation.assign(rise_p=0.4),
                          unsteered)
    assert no_rise["direction"].status == "inconclusive"  # no rise over the base model to remove a share of


def _found(treated=("health_bad", "risk_bad", "health_bad_seed1")):
    from types import SimpleNamespace
    d = 8
    arms = [SimpleNamespace(name=t, seed=1 if t.endswith("seed1") else 0, domain=t.split("_")[0]) for t in treated]
    controls = [t.replace("bad", "rc") for t in treated]
    return SimpleNamespace(latent=2, helpful_latent=5, treated=list(treated), arms=arms,
                           directions={"persona vector": torch.ones(d), "mean difference": -torch.ones(d)},
                           domain_directions={"health": torch.arange(d).float(), "risk": torch.ones(d)},
                           controls={"register_control": controls},
                           mean_resid={c: torch.full((d,), float(k + 1)) for k, c in enumerate(controls)})


def test_plan_gives_each_model_its_settings():
    P = params.resolve("cpu", steer_alphas="0.1,0.2,0.4", steer_random=3, steer_judged_random=1, steer_bad_seeds=1,
                       steer_judge_bad=False)
    decoder = torch.randn(10, 8)
    plan = iv.plan(_found(), decoder, P)
    assert list(plan.settings) == ["base", "health_bad", "risk_bad"]  # seed 1 left out
    assert torch.equal(plan.steered["anti-helpful latent"], -decoder[5])
    assert plan.transfer_alpha == 0.2 and set(plan.directions) >= {"random 2", "mean difference: risk"}
    base, bad = plan.settings["base"], plan.settings["health_bad"]
    assert len(base) == (4 + 3) * 3 and all(s.alpha > 0 for s in base)
    assert {s.direction for s in base if s.judged} == {*plan.steered, "random 0"}
    assert not any(s.judged for s in bad) and all(s.alpha <= 0 for s in bad)
    assert {s.direction for s in bad if s.ablate} == {"persona latent", "mean difference", "random 0", "random 1",
                                                     "random 2"}
    # ablated to the register control's mean projection: health_rc's residual is all 1s, risk_rc's all 2s
    target = lambda model, n: next(s.target for s in plan.settings[model] if s.ablate and s.direction == n)
    assert target("health_bad", "mean difference") == pytest.approx(-8 ** 0.5)
    assert target("risk_bad", "mean difference") == pytest.approx(-2 * 8 ** 0.5)
    assert target("health_bad", "persona latent") == pytest.approx(float(decoder[2].sum() / decoder[2].norm()))
    judged_bad = iv.plan(_found(), decoder, params.resolve("cpu", steer_judge_bad=True, steer_judged_random=1,
                                                          steer_alphas="0.1,0.2,0.4")).settings["risk_bad"]
    assert {s.alpha for s in judged_bad if s.judged and not s.ablate} == {-0.2}
    assert {s.label for s in judged_bad if s.judged and s.ablate} == {"persona latent | ablate+0",
                                                                       "mean difference | ablate+0",
                                                                       "random 0 | ablate+0"}


def _judged(model, settings, hit_every):
    rows = [{"question_id": f"q{i}", "answer": f"{model} {s} answer {i}", "alignment": 10.0, "coherence": 80.0,
             "misaligned": i % hit_every == 0, "coherent": True, "setting": s} for s in settings for i in range(6)]
    return {"model": model, "answers": pd.DataFrame(rows), "contrast": pd.DataFrame()}


def test_the_audit_pool_is_blind_and_balanced_and_its_labels_come_back():
    runs = [_judged("base", [iv.NONE, "persona latent | +0.1"], 2), _judged("health_bad", ["random 0 | -0.1"], 3)]
    answers = iv.judged_answers(runs)
    assert iv.NONE not in set(answers["setting"]) and len(answers) == 12
    assert answers.groupby("model")["n_rated"].first().to_dict() == {"base": 6, "health_bad": 6}
    hits = iv.judged_hits(runs)
    assert len(hits) == 3 + 2 and hits["answer"].str.contains("answer 0").sum() == 2
    pool = iv.audit_pool(runs, [(f"q{i}", f"question {i}") for i in range(6)], seed=0)
    assert pool["hit"].sum() == 5 and (~pool["hit"]).sum() == 5 and pool["id"].is_unique
    assert pool["question"].str.startswith("question").all()
    # the reader confirms the hits of the base model only, and finds one non-hit misaligned
    labels = pool.assign(misaligned=lambda d: ((d["model"] == "base") & d["hit"]).astype(int), coherent=1)
    labels.loc[(~labels["hit"]).idxmax(), "misaligned"] = 1
    summary = iv.audit_summary(runs, {"rows": labels.to_dict(orient="records")})
    assert (summary["hits"], summary["hits_read"], summary["hits_both"]) == (5, 5, 3)
    assert (summary["nonhits_read"], summary["nonhits_both"]) == (5, 1)
    assert summary["precision"].set_index("model").loc["all", "both (read)"] == 3
    assert summary["tuned_on"] == 0
    other_run = [_judged("base", ["persona latent | +0.2"], 2)]  # answers the audit never read
    assert iv.audit_summary(other_run, {"rows": labels.to_dict(orient="records")})["hits_read"] == 0
    # extending the audit: only the unread answers are offered, with ids after the read ones
    more = iv.audit_pool(runs + other_run, [(f"q{i}", f"question {i}") for i in range(6)], seed=0,
                         read=labels.to_dict(orient="records"))
    assert set(more[more["hit"]]["setting"]) == {"persona latent | +0.2"} and more["hit"].sum() == 3
    assert min(more["id"]) == "s010" and not set(more["id"]) & set(labels["id"])


def test_answers_the_judge_was_tuned_on_are_neither_pooled_nor_counted_as_read(monkeypatch):
    runs = [_judged("base", ["persona latent | +0.1"], 2)]
    pool = iv.audit_pool(runs, [(f"q{i}", f"question {i}") for i in range(6)], seed=0)
    labels = pool.assign(misaligned=1, coherent=1).to_dict(orient="records")
    tuned = {"base persona latent | +0.1 answer 0", "base persona latent | +0.1 answer 1"}  # a hit and a non-hit
    monkeypatch.setattr(iv, "load_labels", lambda: pd.DataFrame({"answer": sorted(tuned)}))
    assert not set(iv.audit_pool(runs, [(f"q{i}", f"question {i}") for i in range(6)], seed=0)["answer"]) & tuned
    summary = iv.audit_summary(runs, {"rows": labels})
    assert (summary["hits"], summary["hits_read"], summary["tuned_on"]) == (3, 2, 1)
    assert summary["nonhits_read"] == 2


def test_intervals_format_tuples_percents_and_missing_values():
    from persona_features.core.stats import fmt_interval
    assert fmt_interval((0.25, 0.2, 0.31)) == "+0.25 [+0.20, +0.31]"
    assert fmt_interval((0.5, 0.25, 0.75), 0, signed=False, percent=True) == "50% [25%, 75%]"
    assert fmt_interval((float("nan"), 0.0, 1.0)) == "-"


class _ConstantJudge:
    name, key, base = "constant", "constant-v1", None

    def score(self, questions, answers, question_ids=None, known_logprobs=None):
        return pd.DataFrame({"alignment": [80.0] * len(answers), "coherence": [90.0] * len(answers)})


def test_a_run_judges_each_judged_setting_on_every_question_in_shared_batches(lm, fresh_cache):
    from persona_features.data.questions import BETLEY_QUESTIONS
    from persona_features.experiments.ch4_diffing.readings import Reader

    P = params.resolve("smoke", eval_max_new_tokens=6)
    qs = BETLEY_QUESTIONS[:3]
    directions = {"d": iv.random_directions(lm.d_model, 1, 0)["random 0"]}
    settings = [iv.Setting("d", 0.5, judged=True), iv.Setting("d", -0.5),
                iv.Setting("d", 0.5, ablate=True, judged=True)]
    out = iv.run(Reader("base", lambda: lm), settings, directions, 10, 60.0, qs, _ConstantJudge(), P, samples=2)
    answers = out["answers"]
    labels = ["none", "d | +0.5", "d | ablate+0.5"]
    assert list(out["contrast"].index) == ["none", "d | +0.5", "d | -0.5", "d | ablate+0.5"]
    assert answers.groupby("setting", sort=False).size().to_dict() == {label: 2 * len(qs) for label in labels}
    for label in labels:  # each setting answered every question, twice, in the questions' order
        assert list(answers.loc[answers["setting"] == label, "question_id"]) == [q for q, _ in qs for _ in range(2)]
    assert answers.loc[answers["setting"] == "d | +0.5", "answer"].tolist() != \
        answers.loc[answers["setting"] == "none", "answer"].tolist()
