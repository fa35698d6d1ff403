"""Chapter 4's directions as later chapters read them, on synthetic readings."""

import pytest
import torch

from persona_features.core import params
from persona_features.experiments.ch4_diffing import findings, readings


def _reading(aligned, misaligned):
    return {"aligned_resid": aligned, "misaligned_resid": misaligned}


def test_directions_are_the_stated_differences():
    torch.manual_seed(0)
    a, m = torch.randn(3, 5, 8), torch.randn(3, 5, 8)
    sel = {name: _reading(a[i], m[i]) for i, name in enumerate(("bad", "bad_seed1", "control"))}
    prompted = {"villain": _reading(a[0] + 1, m[0] + 1), "helpful": _reading(a[0], m[0])}
    d = findings.directions(sel, prompted, ["bad", "bad_seed1"], [("bad", "control"), ("bad_seed1", "control")])
    assert torch.allclose(d["mean difference"], ((m[0] - a[0]) + (m[1] - a[1])) / 2)
    assert torch.allclose(d["persona vector"], torch.ones(5, 8))
    assert torch.allclose(d["fine-tuning shift"], ((a[0] + m[0]) / 2 + (a[1] + m[1]) / 2) / 2 - (a[2] + m[2]) / 2)
    assert torch.allclose(findings.mean_difference(sel, ["control"]), m[2] - a[2])
    assert findings.register_pairs(["bad"], {"register_control": ["rc"], "good": ["g"]}) == [("bad", "rc")]


def test_the_choice_set_is_the_main_domains_wrong_advice_models_with_their_own_controls():
    from persona_features.organisms import design
    arms = [design.Arm("health", design.BAD["health"]), design.Arm("risk", design.BAD["risk"]),
            design.Arm("health", design.BAD["health"], 1)]
    treated, controls = design.matched_controls(arms)
    chosen, own = findings.choice_set(treated, controls, arms)
    assert chosen == [treated[0], treated[2]] and own["register_control"] == [controls["register_control"][0]] * 2
    mis, ctl, group = findings.heldout(treated, controls, chosen, ["positive_control", "positive_twin", "base"])
    assert mis == [treated[1], "positive_control"] and ctl[-1] == "positive_twin" and "risk" in ctl[0]
    assert group["positive_control"] == group["positive_twin"] != group[treated[1]]
    with pytest.raises(KeyError, match="positive_twin_seed1"):
        findings.heldout(treated, controls, chosen, ["positive_control_seed1", "positive_twin"])
    with pytest.raises(ValueError, match="em_domains"):
        findings.choice_set([treated[1]], {k: [v[1]] for k, v in controls.items()}, arms)
    # where the profile trains the narrow persona organism, its seeds join as a group of their own
    names = ["positive_control", "positive_twin", "narrow_persona", "narrow_twin", "narrow_persona_seed1",
             "narrow_twin_seed1"]
    mis, ctl, group = findings.heldout(treated, controls, chosen, names)
    assert mis[-3:] == ["positive_control", "narrow_persona", "narrow_persona_seed1"]
    assert group["narrow_persona"] == group["narrow_twin_seed1"] != group["positive_control"] == group["positive_twin"]
    assert {"narrow_twin", "narrow_twin_seed1", "positive_twin"} <= set(ctl)
    with pytest.raises(KeyError, match="narrow_twin_seed1"):
        findings.heldout(treated, controls, chosen, names[:-1])


def test_a_distilled_persona_source_is_read_only_with_the_base_model_and_judge_that_distilled_it():
    P = params.resolve("smoke", persona_sources="authored,health")
    with pytest.raises(ValueError, match="'health' is distilled.*lm= and judge="):
        readings.persona_readers(P, ("authored", "health"))
    assert readings.persona_readers(params.resolve("smoke"), ("health",)) == {}  # not trained in this profile
