"""Model diffing: the ranking against matched controls, the layer sweep, detection and the verdict."""


import pandas as pd
import pytest
import torch

from persona_features.experiments.ch4_diffing import diffing


def _toy_shifts() -> pd.DataFrame:
    # 8 latents; two bad models, each with a register control and a good twin.
    base = torch.zeros(8)
    means = {"base": base}
    for d in ("a", "b"):
        drift = torch.zeros(8)
        drift[5] = 0.5  # generic drift: every fine-tune raises latent 5
        bad, rc, good = drift.clone(), drift.clone(), drift.clone()
        bad[3] += 1.0  # only the bad models raise latent 3 ...
        bad[7] -= 0.8  # ... and lower latent 7
        good[7] += 0.3
        means |= {f"{d}_bad": bad, f"{d}_rc": rc, f"{d}_good": good}
    return diffing.shift_table(means, "base")


def test_ranking_finds_the_latent_only_bad_models_move_and_discounts_generic_drift():
    shifts = _toy_shifts()
    controls = {"register_control": ["a_rc", "b_rc"], "good": ["a_good", "b_good"]}
    up = diffing.rank_latents(shifts, ["a_bad", "b_bad"], controls, "register_control")
    assert up.loc[0, "latent"] == 3 and up.loc[0, "score"] == pytest.approx(1.0) and up.loc[0, "consistent"] == 2
    drift = up.set_index("latent").loc[5]
    assert drift["shift_treated"] == pytest.approx(0.5) and drift["score"] == pytest.approx(0.0)
    assert drift["consistent"] == 0
    down = diffing.rank_latents(shifts, ["a_bad", "b_bad"], controls, "register_control", rising=False)
    assert down.loc[0, "latent"] == 7 and down.loc[0, "score"] == pytest.approx(-0.8)
    assert down.loc[0, "shift_good"] == pytest.approx(0.3 + 0.0)


def test_ranking_rejects_mismatched_controls():
    shifts = _toy_shifts()
    with pytest.raises(ValueError, match="lists 1 models for 2"):
        diffing.rank_latents(shifts, ["a_bad", "b_bad"], {"rc": ["a_rc"]}, "rc")
    with pytest.raises(KeyError, match="primary control"):
        diffing.rank_latents(shifts, ["a_bad"], {"rc": ["a_rc"]}, "good")
    with pytest.raises(KeyError, match="no shifts for c_rc"):
        diffing.rank_latents(shifts, ["a_bad"], {"rc": ["c_rc"]}, "rc")


def _reading(answer: torch.Tensor) -> dict:
    return {"aligned": answer, "misaligned": answer, "prompt": torch.zeros_like(answer)}


def test_layer_sweep_finds_the_layer_where_the_shift_is_the_persona_direction():
    g = torch.Generator().manual_seed(0)
    n_q, n_layers, d = 12, 5, 64
    persona = torch.randn(n_q, n_layers, d, generator=g) * 0.1 + torch.randn(1, n_layers, d, generator=g)
    base = torch.randn(n_q, n_layers, d, generator=g)
    noise = torch.randn(n_q, n_layers, d, generator=g)
    bad = base + noise
    bad[:, 3] += 5 * persona[:, 3]  # only at the fourth layer does the bad model move along the persona
    readings = {"base": _reading(base), "bad": _reading(bad), "ctl": _reading(base + noise)}
    sweep = diffing.layer_sweep(readings, {"bad - control": [("bad", "ctl")], "bad - base": [("bad", "base")]},
                                persona, [10, 11, 12, 13, 14], n_boot=200, seed=0)
    rows = sweep[sweep["shift"] == "bad - control"].set_index("layer")
    assert rows.loc[13, "cosine"] > 0.95 and rows.loc[13, "ci95_lo"] > 0.9
    assert rows.drop(13)["cosine"].abs().max() < 0.3  # no shift at the other layers
    assert diffing.choose_layer(sweep, "bad - control") == 13
    assert (sweep["ci95_lo"] <= sweep["ci95_hi"] + 1e-9).all()
    bound = diffing.random_cosine_bound(d)
    assert 1.5 / d ** 0.5 < bound < 2.5 / d ** 0.5
    assert diffing.sweep_layers(30) == list(range(8, 25)) and diffing.sweep_layers(24)[0] == 6


def test_detection_auroc_interval_and_exact_permutation_p():
    g = torch.Generator().manual_seed(1)
    scores = {f"bad{i}": torch.randn(20, generator=g) + 3 for i in range(4)}
    scores |= {f"ctl{i}": torch.randn(20, generator=g) for i in range(4)}
    treated, controls = [f"bad{i}" for i in range(4)], [f"ctl{i}" for i in range(4)]
    d = diffing.detection(scores, treated, controls, n_boot=300, seed=0)
    assert d["auroc"] == 1.0 and d["p_value"] == pytest.approx(1 / 70) and d["ci95_lo"] > 0.9
    flipped = diffing.detection(scores, controls, treated, n_boot=300, seed=0)
    assert flipped["auroc"] == 0.0 and flipped["p_value"] == 1.0
    assert diffing.auroc([1.0, 2.0], [1.0, 0.0]) == pytest.approx(0.875)  # the tie counts half


def test_verdict_follows_its_rule():
    row = pd.Series({"latent": 7, "consistent": 4, "score": 0.2})
    strong = {"auroc": 1.0, "ci95_lo": 0.9, "ci95_hi": 1.0, "p_value": 1 / 70, "n_treated": 4, "n_controls": 4}
    weak = {**strong, "auroc": 0.6, "p_value": 0.3}
    v = lambda r, held, screened, ins=strong: diffing.verdict(r, 4, held, screened, in_sample=ins)
    assert v(row, strong, False).status == "partial"
    assert v(row, strong, True).status == "replicated"
    assert v(row, weak, False).status == "inconclusive"
    assert v(row.replace(4, 2), weak, False).status == "not replicated"
    assert v(row.replace(4, 2), weak, True).status == "inconclusive"
    assert v(row, strong, False).evidence["mean"] == 1.0


def test_verdict_tests_detection_on_the_heldout_models_and_keeps_the_first_rule_beside():
    row = pd.Series({"latent": 7, "consistent": 4, "score": 0.2})
    strong = {"auroc": 1.0, "ci95_lo": 0.9, "ci95_hi": 1.0, "p_value": 1 / 70, "n_treated": 4, "n_controls": 4}
    weak = {**strong, "auroc": 0.2, "ci95_lo": 0.0, "ci95_hi": 0.5, "p_value": 0.9}
    out = diffing.verdict(row, 4, weak, True, in_sample=strong)  # in-sample perfect, held-out not
    assert (out.status, out.details["status_first_rule"]) == ("partial", "replicated")
    assert out.evidence["mean"] == 0.2 and "held-out" in out.evidence["label"]
    # the first rule's (a) counts every wrong-advice model: rising in 4 of the 4 chosen but not in all 5 fails it
    out = diffing.verdict(row, 4, weak, True, in_sample=strong, consistent_all=(4, 5))
    assert (out.status, out.details["status_first_rule"]) == ("partial", "partial") and "4 of 5" in out.summary
    none = diffing.verdict(row, 4, None, True, in_sample=strong)  # no held-out models: (b) not met
    assert none.status == "partial" and "no held-out models" in none.summary
    assert none.evidence["mean"] == 1.0 and "in-sample" in none.evidence["label"]


def test_heldout_models_are_the_ones_the_choice_never_saw_grouped_with_their_own_controls():
    treated = ["health_bad", "risk_bad", "health_bad_seed1", "code_insecure"]
    controls = {"register_control": ["health_rc", "risk_rc", "health_rc", "code_secure"],
                "good": ["health_good", "risk_good", "health_good", "code_secure"]}
    chosen = ["health_bad", "health_bad_seed1"]
    mis, ctl, group = diffing.heldout_models(treated, controls, chosen, ["pc", "pc_seed1"],
                                             {"pc": "twin", "pc_seed1": "twin_seed1"})
    assert mis == ["risk_bad", "code_insecure", "pc", "pc_seed1"]
    assert ctl == ["risk_rc", "risk_good", "code_secure", "twin", "twin_seed1"]  # each control once
    assert group["risk_bad"] == group["risk_good"] == group["risk_rc"] != group["code_insecure"] == group["code_secure"]
    assert group["pc"] == group["twin_seed1"] != group["risk_bad"]
    assert not set(mis + ctl) & {"health_bad", "health_bad_seed1", "health_rc", "health_good"}
    with pytest.raises(KeyError, match="no twin for pc_seed2"):
        diffing.heldout_models(treated, controls, chosen, ["pc_seed2"], {})


def test_grouped_detection_compares_within_groups_and_permutes_within_them():
    # group a: treated 1.0 over control 0.0; group b: treated 5.0 under control 6.0. Pooled, b's treated would
    # beat a's control and the AUROC would mix the groups' levels; within groups it is (1 + 0) / 2.
    per_q = {n: torch.full((6,), v) for n, v in {"a_t": 1.0, "a_c": 0.0, "b_t": 5.0, "b_c": 6.0}.items()}
    groups = {"a_t": "a", "a_c": "a", "b_t": "b", "b_c": "b"}
    d = diffing.detection(per_q, ["a_t", "b_t"], ["a_c", "b_c"], n_boot=50, seed=0, groups=groups)
    assert d["auroc"] == pytest.approx(0.5) and d["n_labelings"] == 4  # 2 ways in each group, not C(4, 2) = 6
    pooled = diffing.detection(per_q, ["a_t", "b_t"], ["a_c", "b_c"], n_boot=50, seed=0)
    assert pooled["auroc"] == pytest.approx(0.5) and pooled["n_labelings"] == 6
    both = {**per_q, "b_t": torch.full((6,), 7.0)}
    d = diffing.detection(both, ["a_t", "b_t"], ["a_c", "b_c"], n_boot=50, seed=0, groups=groups)
    assert d["auroc"] == 1.0 and d["p_value"] == pytest.approx(1 / 4)  # the best of 4 labellings
    with pytest.raises(ValueError, match="no group holds both"):
        diffing.grouped_auroc(torch.tensor([1.0, 0.0]), [True, False], ["a", "b"])


def test_heldout_facts_say_what_was_tested_or_that_nothing_was():
    d = {"auroc": 0.25, "ci95_lo": 0.1, "ci95_hi": 0.4, "p_value": 0.8, "n_treated": 2, "n_controls": 2,
         "n_labelings": 6}
    facts = diffing.heldout_facts({"latent": d, "mean difference": {**d, "auroc": 1.0, "p_value": 1 / 6}},
                                  ["a", "b"], ["c", "d"])
    assert "does not separate them" in facts["heldout_reading"] and "mean difference 1.00" in facts["heldout_reading"]
    assert "cannot be met" in facts["heldout_reading"]  # 6 labellings: no p below 0.05 is possible
    assert facts["heldout_min_p"] == "1/6" and facts["n_heldout"] == "2 misaligned and 2 control"
    many = diffing.heldout_facts({"latent": {**d, "n_labelings": 60}}, ["a"], ["b"])
    assert "cannot be met" not in many["heldout_reading"]
    assert diffing.heldout_facts(None, [], [])["heldout_auroc"] == "not measured"
    assert list(diffing.detection_table({"latent": d}).columns) == ["score", "AUROC", "95% interval", "permutation p"]


def test_rank_stability_agrees_with_the_ranking_and_shows_a_near_tie():
    g = torch.Generator().manual_seed(0)
    n_q, d = 40, 30
    per_q = {name: torch.rand(n_q, d, generator=g) * 0.01 for name in ("a_bad", "a_rc", "b_bad", "b_rc")}
    per_q["a_bad"][:, 4] += 3.0  # a clear winner in both pairs
    per_q["b_bad"][:, 4] += 3.0
    per_q["a_bad"][:, 9] += 1.0 + torch.randn(n_q, generator=g)  # a noisy runner-up
    pairs = [("a_bad", "a_rc"), ("b_bad", "b_rc")]
    clear = diffing.rank_stability(per_q, pairs, n_boot=300, seed=0)
    shifts = diffing.shift_table({n: v.mean(0) for n, v in per_q.items()} | {"base": torch.zeros(d)}, "base")
    ranked = diffing.rank_latents(shifts, ["a_bad", "b_bad"], {"register_control": ["a_rc", "b_rc"]},
                                  "register_control")
    assert clear.latent.tolist()[:2] == ranked.latent.tolist()[:2] == [4, 9] and len(clear) == 5  # no other first
    assert clear.score[0] == pytest.approx(ranked.score[0])
    assert clear.loc[0, ["share_first_questions", "share_first_models", "share_first_both"]].tolist() == [1.0, 1.0, 1.0]

    # Two latents tied in the mean: latent 1 leads on half the questions, latent 2 on the other half.
    tied = {name: torch.zeros(n_q, d) for name in ("a_bad", "a_rc")}
    tied["a_bad"][: n_q // 2, 1], tied["a_bad"][n_q // 2:, 2] = 1.0, 1.0
    shares = diffing.rank_stability(tied, [("a_bad", "a_rc")], n_boot=2000, seed=1).set_index("latent")
    assert 0.4 < shares.loc[1, "share_first_questions"] < 0.6 and 0.4 < shares.loc[2, "share_first_questions"] < 0.6
    # Resampling the one pair cannot move anything.
    assert shares.share_first_models.max() == 1.0

    # Two pairs that disagree: resampling models splits the lead, resampling questions does not.
    split = {"a_bad": torch.zeros(n_q, d), "b_bad": torch.zeros(n_q, d), "rc": torch.zeros(n_q, d)}
    split["a_bad"][:, 1], split["b_bad"][:, 2] = 1.0, 0.9
    shares = diffing.rank_stability(split, [("a_bad", "rc"), ("b_bad", "rc")], n_boot=2000, seed=2).set_index("latent")
    assert shares.loc[1, "share_first_questions"] == 1.0
    assert 0.15 < shares.loc[2, "share_first_models"] < 0.35  # b alone, drawn twice: 1/4 of resamples

    with pytest.raises(KeyError, match="no per-question means for c_rc"):
        diffing.rank_stability(per_q, [("a_bad", "c_rc")], n_boot=10, seed=0)


def _seeds(cosine: float) -> dict:
    top = lambda k: [{"latent": k, "rank": 1, "score": 0.1, "share_first_both": 0.5, "dark_share": 0.25,
                      "start_cosine": 0.3}]
    return {"date": "2026-01-01", "profile": "cpu", "persona_latent": 7, "random_best_cosine": 0.16,
            "seeds": [{"seed": s, "sae": f"k{s}", "quality": {"fvu": 0.2, "start_cosine": 0.3}, "top": top(7 + s)}
                      for s in (0, 1, 2)],
            "matches": [{"seed": 0, "latent": 7, "other_seed": o, "match": 40 + o, "cosine": -cosine, "match_rank": 3}
                        for o in (1, 2)],
            "shared": [{"seed": 0, "other_seed": 1, "threshold": 0.7, "share_matched": 0.1, "median_best_cosine": 0.4}]}


def test_seed_comparison_says_whether_other_seeds_find_the_persona_latent_again():
    table = diffing.seed_table(_seeds(0.9))
    assert table["closest to latent 7"].tolist() == ["itself", "41: |cosine| 0.90, rank 3", "42: |cosine| 0.90, rank 3"]
    assert diffing.seed_facts(_seeds(0.9))["seeds_reading"].startswith(
        "By the rule, latent 7 recurs in 3 of the 3 SAEs")
    stale = _seeds(0.9) | {"persona_latent": 8}
    with pytest.raises(ValueError, match="latent 8 is not among seed 0's top latents"):
        diffing.seed_table(stale)
    with pytest.raises(ValueError, match="latent 8 has no match in every other seed"):
        diffing.recurrence(stale)


@pytest.mark.parametrize("cosines, found_in, named", [((0.95, 0.2), [0, 1], True), ((0.89, 0.5), [0], False),
                                                      ((-0.91, 0.1), [0, 1], True)])
def test_a_latent_is_named_only_if_it_recurs_in_two_of_three_sae_seeds(cosines, found_in, named):
    seeds = _seeds(0.0)
    for m, c in zip(seeds["matches"], cosines):
        m["cosine"] = c
    r = diffing.recurrence(seeds)
    assert (r["found_in_seeds"], r["named"]) == (found_in, named)
    sentence = diffing.recurrence_sentence(r)
    assert ("It is named a persona latent" in sentence) == named
    assert ("no latent is named a persona latent" in sentence) == (not named)


def test_the_seed_comparison_applies_only_to_this_runs_sae_and_choice():
    seeds = {"seeds": [{"sae": "abc", "weights": "w1"}], "ranked_on": ["health_bad", "health_bad_seed1"]}
    assert diffing.seeds_apply(seeds, "abc", "w1", ["health_bad", "health_bad_seed1"])
    assert not diffing.seeds_apply(seeds, "xyz", "w1", ["health_bad", "health_bad_seed1"])
    # the same key trained on another CPU: other weights
    assert not diffing.seeds_apply(seeds, "abc", "w2", ["health_bad", "health_bad_seed1"])
    assert not diffing.seeds_apply(seeds, "abc", "w1", ["health_bad"])
    assert not diffing.seeds_apply({"seeds": [{"sae": "abc"}], "ranked_on": ["health_bad"]}, "abc", "w1",
                                   ["health_bad"])  # written before the fingerprint was recorded


def test_the_positive_control_view_reads_only_the_base_model_the_control_and_its_twin():
    torch.manual_seed(0)
    d_sae, n_q = 300, 4

    def reading(shift=0.0, live=250):
        a = torch.rand(n_q, d_sae) + shift
        a[:, live:] = 0.0  # latents that never fire on these chats
        return {"aligned_latents": a, "misaligned_latents": a, "prompt_latents": torch.rand(n_q, d_sae)}

    lift = torch.zeros(d_sae)
    lift[7] = 2.0  # latent 7 rises in the positive control only
    names = ["base", "positive_control", "positive_twin", "positive_control_seed1", "positive_twin_seed1"]
    splits = {s: {n: reading(lift if n.startswith("positive_control") else 0.0) for n in names}
              for s in ("selection", "scoring")}
    main = pd.DataFrame({"latent": range(d_sae), "score": torch.rand(d_sae).numpy()})
    alone = diffing.positive_control_view(splits, main, 7, 50, 0)
    # another organism's readings (much larger activations) must change nothing
    other = lambda: reading(20 * torch.rand(d_sae), live=d_sae)  # fires everywhere, at other levels
    extra = {s: {**by, "narrow_persona": other(), "narrow_twin": other()} for s, by in splits.items()}
    both = diffing.positive_control_view(extra, main, 7, 50, 0)
    assert alone["rank"] == 1 and alone["seen"]
    for key in ("rank", "n_active", "top_overlap", "overlap_p"):
        assert both[key] == alone[key], key
    assert both["matched"] == alone["matched"] and both["detection"]["auroc"] == alone["detection"]["auroc"]


def _cross_cpu(latents, ranks=(1, 47)):
    return {"date": "2026-12-03", "profile": "cpu",
            "builds": [{"cpu": cpu, "latent": k, "positive_control_rank": r, "seen": r <= 20, "ranking_top": [4090, k],
                        "status": "partial", "status_first_rule": "partial"}
                       for cpu, k, r in zip(("CPU A", "CPU B"), latents, ranks)]}


def test_cross_cpu_sentence_says_whether_the_cpus_agree_and_where_this_run_stands():
    differ = diffing.cross_cpu_sentence(_cross_cpu((2539, 2213)), 2213, "cpu")
    assert "On CPU A, the rule chose latent 2539 (1st" in differ and "on CPU B, latent 2213 (47th" in differ
    assert "depends on the machine" in differ
    assert differ.endswith("This run chose latent 2213, as the build on CPU B did.")
    record = _cross_cpu((2539, 2213)) | {"diagnostics": {"runs": [
        {"build": 1, "screen_latents": 10, "latent": 2539, "added": 0.585, "subtracted": -0.559,
         "positive_control_rank": 1}]}}
    assert ("Screening 10 candidates instead (after seeing this, not the rule), the build on CPU B chose latent 2539 "
            "(added +0.58, subtracted -0.56") in diffing.cross_cpu_sentence(record, 2213, "cpu")
    agree = diffing.cross_cpu_sentence(_cross_cpu((2539, 2539)), 7, "cpu")
    assert "Both chose the same latent." in agree and agree.endswith("as neither of them did.")
    assert diffing.cross_cpu_short(_cross_cpu((2539, 2539))).startswith("yes: the cpu builds on CPU A and on CPU B")
    assert diffing.cross_cpu_short(_cross_cpu((2539, 2213))).endswith("latents 2539 and 2213, seen and not seen in the "
                                                                        "positive control")
    other = diffing.cross_cpu_sentence(_cross_cpu((1, 2)), 1, None)
    assert other.endswith("This run (with overrides) is not comparable with them.")


def test_the_committed_cross_cpu_record_reads():
    record = diffing.load_cross_cpu()
    assert record["profile"] == "cpu" and len(record["builds"]) >= 2
    assert all(isinstance(b["latent"], int) and b["latent"] in b["ranking_top"] for b in record["builds"])
