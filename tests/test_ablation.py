"""Chapter 5's ablation of the positive control: the design (targets at the twin's mean projection), the effects
against random ablations by seed and question, the rule, and the reading's match with this run's answers."""

import numpy as np
import pandas as pd
import pytest
import torch

from persona_features.core import params
from persona_features.experiments.ch5_steering import ablation, interventions as iv

D, N_Q = 8, 10
MINE = ["positive_control", "positive_control_seed1", "positive_control_seed2"]
TWINS = [n.replace("control", "twin") for n in MINE]


class _Found:
    latent, layer, norm = 2, 3, 10.0
    directions = {"mean difference": torch.ones(D)}


def _reading(shift: float) -> dict:
    resid = torch.zeros(N_Q, D)
    resid[:, 0] = shift
    return {"aligned_resid": resid, "misaligned_resid": resid + 0.0}


def _plan(P):
    selection = {n: _reading(2.0) for n in MINE} | {n: _reading(0.5) for n in TWINS}
    return ablation.design(_Found(), torch.eye(D)[:6] * 3, selection, P)


def test_the_design_ablates_to_the_twins_mean_projection():
    P = params.resolve("smoke", steer_random=3, steer_judged_random=1)
    plan = _plan(P)
    own = plan.directions[ablation.OWN]
    assert torch.allclose(own, torch.eye(D)[0] * 1.5)  # positive control's mean minus its twin's
    assert plan.setting(ablation.OWN).target == pytest.approx(0.5)  # the twin's projection on it
    assert plan.setting("persona latent").target == pytest.approx(0.0)  # the twin has nothing along latent 2
    assert [s.direction for s in plan.settings if s.judged] == [*ablation.TESTED, "random 0"]
    assert all(s.ablate and s.alpha == 0 for s in plan.settings) and len(plan.randoms) == 3
    with pytest.raises(ValueError, match="positive_twin"):
        ablation.design(_Found(), torch.eye(D)[:6], {n: _reading(1.0) for n in MINE}, P)


def test_a_target_changes_the_key_not_the_label_and_an_old_ablation_keeps_its_key():
    old = iv.Setting("mean difference", 0.0, ablate=True)
    assert old.key() == {"direction": "mean difference", "alpha": 0.0, "ablate": True, "judged": False}
    assert old.label == "mean difference | ablate+0"
    new = iv.Setting("mean difference", 0.0, ablate=True, target=0.25)
    assert new.key()["target"] == 0.25 and new.label == old.label  # a model has one target per direction


def _runs(plan, effect: dict[str, list[float]], rate: dict[str, list[float]]):
    """Runs of the positive control's seeds: every setting's contrast is the unsteered 1.0 plus ``effect`` per seed
    (0 where not given); the judged answers misaligned with the per-seed probability ``rate`` (0.3 where not given)."""
    rng = np.random.default_rng(0)
    out = {}
    for k, name in enumerate(MINE):
        labels = [iv.NONE] + [s.label for s in plan.settings]
        rows = {lab: np.ones(N_Q) + (effect.get(lab, [0.0] * 3)[k]) + rng.normal(0, 0.001, N_Q) for lab in labels}
        frame = pd.DataFrame(rows).T.set_axis([f"q{i}" for i in range(N_Q)], axis=1)
        judged = [iv.NONE] + [s.label for s in plan.settings if s.judged]
        answers = pd.concat([pd.DataFrame({"question_id": [f"q{i}" for i in range(N_Q)],
                                           "answer": [f"{name} {lab} {i}" for i in range(N_Q)],
                                           "misaligned": rng.random(N_Q) < rate.get(lab, [0.3] * 3)[k],
                                           "coherent": True, "setting": lab}) for lab in judged])
        out[name] = {"contrast": frame, "answers": answers, "model": name}
    for name in TWINS:
        out[name] = {"contrast": pd.DataFrame({f"q{i}": [0.2] for i in range(N_Q)}, index=[iv.NONE]),
                     "answers": pd.DataFrame(), "model": name}
    return out


def test_an_ablation_removes_only_if_below_random_in_every_seed():
    P = params.resolve("smoke", steer_random=2, steer_judged_random=1)
    plan = _plan(P)
    lab = lambda n: plan.setting(n).label
    runs = _runs(plan, {lab(ablation.OWN): [-0.8, -0.8, -0.8], lab("persona latent"): [-0.9, -0.9, 0.5]}, {})
    table = ablation.effects(runs, plan, 200, 0)
    contrast = table[table.measure == "contrast"].set_index("direction")
    assert contrast.loc[ablation.OWN, "removes"] and contrast.loc[ablation.OWN, "seeds lower"] == 3
    assert contrast.loc[ablation.OWN, "share removed"] == pytest.approx(1.0, abs=0.01)  # 0.8 of a 0.8 rise over twin
    assert not contrast.loc["persona latent", "removes"]  # lower on average, but not in every seed
    assert contrast.loc["persona latent", "seeds lower"] == 2
    assert not contrast.loc["mean difference", "removes"] and contrast.loc["mean difference", "p_holm"] > 0.05
    ver = ablation.verdict(table)
    assert ver["measure"] == "contrast" and ver["seen"] and not ver["removes"]["persona latent"]
    facts = ablation.facts(table, ver, runs)
    assert "layer sees the positive control" in facts["pc_abl_finding"] and "2 of 3 seeds" in facts["pc_abl_finding"]
    assert facts["pc_abl_questions"] == str(N_Q) and facts["pc_abl_seeds"] == "3"  # what ran, not the knob
    assert set(ablation.results(table, ver, plan)) >= {"seen", "mean", "ci95_lo", "ci95_hi", "measure", "rule"}


def test_the_reading_decides_where_this_runs_answers_were_read():
    P = params.resolve("smoke", steer_random=2, steer_judged_random=1)
    plan = _plan(P)
    runs = _runs(plan, {plan.setting(ablation.OWN).label: [-0.8] * 3}, {})
    answers = ablation.answers(runs, plan)
    assert set(answers.setting) == {iv.NONE} | {s.label for s in plan.settings if s.judged}
    read_rows = answers.assign(misaligned=(answers.setting == iv.NONE).astype(int), coherent=1)
    audit = {"judge": "j", "rows": read_rows[ablation.KEYS + ["misaligned", "coherent"]].to_dict("records")}
    labels = ablation.read_labels(runs, plan, "j", audit)
    table = ablation.effects(runs, plan, 200, 0, labels)
    ver = ablation.verdict(table)
    read = table[table.measure == "read"].set_index("direction")
    assert ver["measure"] == "read" and read.loc[ablation.OWN, "unsteered"] == 1.0
    assert (read["ablated"] == 0).all() and not ver["seen"]  # no fewer misaligned than under the random ablations
    assert ablation.read_labels(runs, plan, "another judge", audit) is None
    partial = {**audit, "rows": audit["rows"][1:]}
    assert ablation.read_labels(runs, plan, "j", partial) is None  # one answer of this run not read


def test_the_knobs_are_checked():
    with pytest.raises(params.ParameterError, match="pc_ablation_samples"):
        params.resolve("cpu", pc_ablation_samples=0)
    with pytest.raises(params.ParameterError, match="pc_ablation_judged_random"):
        params.resolve("cpu", pc_ablation_judged_random=0)
    with pytest.raises(params.ParameterError, match="at most steer_random"):
        params.resolve("cpu", steer_random=2, pc_ablation_judged_random=3)
    assert len(ablation.questions(params.resolve("cpu"))) == len(ablation.questions(params.resolve("cpu",
                                                                                              pc_ablation_questions=999)))
