"""Chapter 4's directions as later chapters read them, on synthetic readings."""

import torch

from persona_features import findings


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
