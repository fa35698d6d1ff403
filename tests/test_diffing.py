"""Model diffing: the ranking against matched controls, the layer sweep, detection and the verdict."""

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
