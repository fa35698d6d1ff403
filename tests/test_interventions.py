"""Chapter 5's analysis: dose tables, ablation shares, transfer and verdicts, on synthetic runs."""

import numpy as np
import pandas as pd
import pytest
import torch

from persona_features import interventions as iv, params, scorecard

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
    with pytest.raises(ValueError, match="comma-separated numbers"):
        iv.strengths(params.resolve("cpu", steer_alphas="0.1;0.4"))
    with pytest.raises(ValueError, match="positive"):
        iv.strengths(params.resolve("cpu", steer_alphas="-0.1"))


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
    table = iv.with_holm(iv.dose_table([_run("base", rows, answers)], ["persona latent"], [f"random {r}" for r in range(3)],
                                       ALPHAS, +1, 200, 0))
    latent = table[table.direction == "persona latent"].set_index("alpha")
    assert latent.loc[0.4, "contrast change"] == pytest.approx(4.0, abs=0.05)
    assert latent.loc[0.1, "random min"] <= latent.loc[0.1, "random mean"] <= latent.loc[0.1, "random max"]
    assert (latent["p_holm"] < 0.05).all() and (latent["p_holm"] >= latent["p_vs_random"]).all()
    assert latent.loc[0.4, "misaligned"] == 0.5 and latent.loc[0.4, "misaligned_lo"] < 0.5 < latent.loc[0.4, "misaligned_hi"]
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
    base = _run("base", {iv.NONE: np.zeros(N_Q)})
    randoms = [f"random {r}" for r in range(3)]
    table = iv.ablation_table(runs, base, ["mean difference"], randoms, 200, 0).set_index("model")
    assert table.loc["health_bad", "reduction"] == pytest.approx(0.8, abs=0.05)
    assert table.loc["health_bad", "random reduction"] == pytest.approx(0.02, abs=0.005)
    assert (table["p_holm"] < 0.05).all()
    assert table.loc["health_bad", "rise over base"] == pytest.approx(1.0, abs=0.1) and (table["rise_p"] < 0.05).all()
    assert (table["minus_random_lo"] <= table["minus random"]).all() and (table["minus random"] < 0).all()
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
                              "minus_random_hi": -0.4, "p_holm": 0.01, "rise over base": 0.3,
                              "rise_p": 0.001}
                             for d in ("persona latent", "mean difference")])
    unsteered = {"coherent": 0.8, "misaligned": 0.0}
    good = iv.verdicts(dose(0.5, 0.01, 0.2, 0.75), dose(-0.5, 0.01, 0.0, 0.75, -1), ablation, unsteered)
    assert good["steering"]["status"] == "replicated" and good["direction"]["status"] == "replicated"
    for v in good.values():  # the scorecard reads the evidence
        assert "[" in scorecard.key_number(v) and v["status"] in scorecard.VERDICTS
    incoherent = iv.verdicts(dose(0.5, 0.01, 0.2, 0.2), dose(0.1, 0.5, 0.0, 0.75, -1),
                             ablation.assign(**{"minus random": 0.1, "p_holm": 0.6}), unsteered)
    assert incoherent["steering"]["status"] == "not replicated"  # raised only where coherence collapsed
    assert incoherent["direction"]["status"] == "not replicated"
    weak = iv.verdicts(dose(0.5, 0.01, 0.0, 0.75), dose(0.1, 0.5, 0.0, 0.75, -1),
                       ablation.assign(ci95_lo=0.2), unsteered)
    assert weak["steering"]["status"] == "partial" and weak["direction"]["status"] == "partial"
    no_rise = iv.verdicts(dose(0.5, 0.01, 0.2, 0.75), dose(-0.5, 0.01, 0.0, 0.75, -1), ablation.assign(rise_p=0.4),
                          unsteered)
    assert no_rise["direction"]["status"] == "inconclusive"  # no rise over the base model to remove a share of
