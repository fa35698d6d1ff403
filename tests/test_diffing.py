"""Model diffing: the ranking against matched controls, the layer sweep, detection and the verdict."""

import json

import pandas as pd
import pytest
import torch

from persona_features import diffing
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
    strong = {"auroc": 1.0, "ci95_lo": 0.9, "ci95_hi": 1.0, "p_value": 1 / 70}
    weak = {**strong, "auroc": 0.6, "p_value": 0.3}
    assert diffing.verdict(row, 4, strong, screened=False)["status"] == "partial"
    assert diffing.verdict(row, 4, strong, screened=True)["status"] == "replicated"
    assert diffing.verdict(row, 4, weak, screened=False)["status"] == "inconclusive"
    assert diffing.verdict(row.replace(4, 2), 4, weak, screened=False)["status"] == "not replicated"
    assert diffing.verdict(row.replace(4, 2), 4, weak, screened=True)["status"] == "inconclusive"
    assert diffing.verdict(row, 4, strong, screened=False)["evidence"]["mean"] == 1.0


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
    ranked = diffing.rank_latents(shifts, ["a_bad", "b_bad"], {"register_control": ["a_rc", "b_rc"]}, "register_control")
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
    top = lambda k: [{"latent": k, "rank": 1, "score": 0.1, "share_first_both": 0.5, "dark_share": 0.25, "start_cosine": 0.3}]
    return {"date": "2026-01-01", "profile": "cpu", "persona_latent": 7, "random_best_cosine": 0.16,
            "seeds": [{"seed": s, "sae": f"k{s}", "quality": {"fvu": 0.2, "start_cosine": 0.3}, "top": top(7 + s)}
                      for s in (0, 1, 2)],
            "matches": [{"seed": 0, "latent": 7, "other_seed": o, "match": 40 + o, "cosine": -cosine, "match_rank": 3}
                        for o in (1, 2)],
            "shared": [{"seed": 0, "other_seed": 1, "threshold": 0.7, "share_matched": 0.1, "median_best_cosine": 0.4}]}


def test_seed_comparison_says_whether_other_seeds_find_the_persona_latent_again():
    table = diffing.seed_table(_seeds(0.9))
    assert table["closest to latent 7"].tolist() == ["itself", "41: |cosine| 0.90, rank 3", "42: |cosine| 0.90, rank 3"]
    assert diffing.seed_facts(_seeds(0.9))["seeds_reading"].startswith("By the rule, latent 7 recurs in 3 of the 3 SAEs")
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
