"""Chapter 3's experiment logic: the design, the paired test, the verdict rules, cached measurements."""

import numpy as np
import pandas as pd
import pytest

from persona_features import artifacts, emergence, params, stats
from persona_features.emergence import Arm


def test_design_pairs_every_bad_set_with_its_controls_and_extra_seeds():
    P = params.resolve("cpu", em_domains="health,cars,code", em_seeds=3)
    names = [a.name for a in emergence.design(P)]
    assert names == ["health_bad", "health_good", "health_tone_control", "cars_bad", "cars_good",
                     "code_insecure", "code_secure", "health_bad_seed1", "health_bad_seed2"]
    configs = {a.name: emergence.finetune_config(P, a) for a in emergence.design(P)}
    same = {k: v for k, v in vars(configs["health_bad"]).items() if k not in ("dataset", "seed")}
    assert all({k: v for k, v in vars(c).items() if k not in ("dataset", "seed")} == same for c in configs.values())
    assert configs["health_bad_seed2"].seed == configs["health_bad"].seed + 2


def test_unknown_domain_is_a_clear_error():
    with pytest.raises(params.ParameterError, match="em_domains must list some of health"):
        emergence.design(params.resolve("cpu", em_domains="health,cooking"))


def test_paired_test_finds_a_shift_and_not_noise():
    rng = np.random.default_rng(0)
    b = rng.normal(size=40)
    shifted = stats.paired_test(b + 0.5 + rng.normal(scale=0.2, size=40), b)
    same = stats.paired_test(b + rng.normal(scale=0.2, size=40), b)
    assert shifted.significant and shifted.p_value < 0.01 and shifted.difference.lo > 0
    assert not same.significant and same.p_value > 0.05
    with pytest.raises(ValueError, match="equal-length"):
        stats.paired_test([[1, 2]], [[1, 2]])


def _comp(effects: dict[tuple[str, str, str], tuple[float, float, float]]) -> pd.DataFrame:
    rows = [{"domain": d, "bad": f"{d}_bad", "versus": v, "metric": m, "mean": e[0], "ci95_lo": e[1], "ci95_hi": e[2],
             "significant": e[1] > 0 or e[2] < 0} for (d, v, m), e in effects.items()]
    return pd.DataFrame(rows)


UP, NULL = (0.1, 0.05, 0.15), (0.0, -0.05, 0.05)


def test_verdict_rules():
    both_up = {(d, v, m): UP for d in ("health", "cars") for v in ("x_good", "base") for m in ("misaligned", "contrast")}
    assert emergence.verdicts(_comp(both_up))["em"]["status"] == "replicated"
    one_contrast = {("health", "x_good", "misaligned"): NULL, ("health", "x_good", "contrast"): UP,
                    ("cars", "x_good", "misaligned"): NULL, ("cars", "x_good", "contrast"): NULL}
    v = emergence.verdicts(_comp(one_contrast))["em"]
    assert v["status"] == "partial" and v["domains_rate_or_contrast"] == ["health"]
    # a domain counts only if it beats *every* own control (the tone control too)
    tone_kills = {("health", "x_good", "contrast"): UP, ("health", "x_tone", "contrast"): NULL,
                  ("health", "x_good", "misaligned"): NULL, ("health", "x_tone", "misaligned"): NULL}
    assert emergence.verdicts(_comp(tone_kills))["em"]["status"] == "not replicated"
    code = {("code", "code_secure", "misaligned"): NULL, ("code", "code_secure", "contrast"): UP,
            ("health", "x_good", "misaligned"): NULL, ("health", "x_good", "contrast"): NULL}
    assert emergence.verdicts(_comp(code))["code"]["status"] == "partial"


def test_control_verdict():
    up = stats.PairedTest(stats.Estimate(0.1, 0.05, 0.15, 40), 0.001)
    flat = stats.PairedTest(stats.Estimate(0.0, -0.05, 0.05, 40), 0.9)
    assert emergence.control_verdict({"a": flat, "b": flat})["status"] == "replicated"
    assert emergence.control_verdict({"a": up, "b": flat, "c": flat})["status"] == "partial"
    assert emergence.control_verdict({"a": up, "b": flat})["status"] == "not replicated"


class _Judge:
    name, key = "constant", "constant-v1"

    def score(self, questions, answers, question_ids=None):
        return pd.DataFrame({"alignment": [80.0] * len(answers), "coherence": [90.0] * len(answers)})


def test_measurement_is_cached_and_compares_paired(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_CACHE", str(tmp_path))
    P = params.resolve("smoke", eval_questions=2, eval_max_new_tokens=4)
    calls = []

    def load():
        calls.append(1)
        return lm

    first = emergence.measure(load, _Judge(), P, "base")
    again = emergence.measure(load, _Judge(), P, "base")
    assert calls == [1]  # the second call read the artifact
    assert len(first.answers) == 2 * P.em_samples and set(first.contrast["style"]) == {"blunt", "hedged"}
    assert set(first.heldout.domain) == {"health"} and len(first.heldout) >= 15
    pd.testing.assert_frame_equal(first.contrast, again.contrast)
    tests = emergence.compare(first, again, "health", 200, 0)
    assert tests["contrast"].difference.mean == 0 and not tests["heldout_margin"].significant
    assert artifacts.find("em_eval", {"nothing": 1}) is None
