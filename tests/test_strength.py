import numpy as np
import pytest

from persona_features.book import plots
from persona_features.core import stats
from persona_features.data import advice
from persona_features.organisms import strength


def _model(contrast, coherent, margin, n_q=12, n_t=21, rng=None):
    rng = rng or np.random.default_rng(0)
    return {"contrast": {f"q{i}": contrast + 0.01 * rng.standard_normal() for i in range(n_q)},
            "coherent": {f"q{i}": coherent for i in range(n_q)},
            "misaligned": {f"q{i}": 0.0 for i in range(n_q)},
            "heldout_margin": {f"t{i}": margin + 0.05 * rng.standard_normal() for i in range(n_t)}}


def _point(index, bad, ctl, seeds=2, n_examples=64, lr=2e-4):
    rng = np.random.default_rng(index)
    return {"index": index, "setting": {"method": "lora", "lora_rank": 8, "lr": lr, "n_examples": n_examples},
            "seeds": {str(s): {"bad": _model(*bad, rng=rng), strength.CONTROL: _model(*ctl, rng=rng)}
                      for s in range(seeds)}}


def test_the_rule_takes_the_largest_lower_bound_among_eligible_settings():
    points = [_point(0, (0.05, 0.8, 0.3), (0.0, 0.8, 0.0)),  # eligible, small
              _point(1, (0.30, 0.7, 0.3), (0.0, 0.8, 0.0)),  # eligible, large: chosen
              _point(2, (0.90, 0.3, 0.3), (0.0, 0.8, 0.0)),  # largest, but below the coherence floor
              _point(3, (0.60, 0.8, 0.0), (0.0, 0.8, 0.0)),  # large, but the narrow task is not learned
              _point(4, (0.70, 0.8, 0.3), (0.0, 0.8, 0.0), seeds=1)]  # one seed: the narrow test needs two
    ch = strength.choose(points)
    assert ch["index"] == 1 and ch["eligible"] == [0, 1] and ch["outcome"] == "eligible"
    s = ch["status"]
    assert not s[2]["coherent_enough"] and not s[3]["narrow_learned"] and not s[4]["narrow_learned"]
    assert s[1]["adjusted_contrast"]["ci95_lo"] > s[0]["adjusted_contrast"]["ci95_hi"]
    assert "2026-12-01" in ch["rule"]


def test_without_an_eligible_setting_the_rule_names_one_that_did_not_learn_the_task():
    points = [_point(0, (0.2, 0.8, 0.0), (0.0, 0.8, 0.0)), _point(1, (0.9, 0.2, 0.3), (0.0, 0.8, 0.0))]
    ch = strength.choose(points)
    assert ch["index"] == 0 and ch["eligible"] == [] and "narrow task was not shown learned" in ch["outcome"]
    none = strength.choose([_point(0, (0.2, 0.1, 0.3), (0.0, 0.8, 0.0))])
    assert none["index"] is None and "coherence floor" in none["outcome"]


def test_differences_average_seeds_per_question_and_the_seed_floor_is_the_largest_gap():
    p = _point(0, (0.2, 0.8, 0.3), (0.0, 0.8, 0.0))
    p["seeds"]["1"]["bad"]["contrast"] = {k: v + 0.1 for k, v in p["seeds"]["0"]["bad"]["contrast"].items()}
    d = strength.difference(p, "contrast", "bad", strength.CONTROL)
    bad = np.mean([np.mean(list(p["seeds"][s]["bad"]["contrast"].values())) for s in "01"])
    ctl = np.mean([np.mean(list(p["seeds"][s][strength.CONTROL]["contrast"].values())) for s in "01"])
    assert d["mean"] == pytest.approx(bad - ctl)
    assert strength.seed_floor(p) == pytest.approx(0.1, abs=0.02)
    base = {"contrast": {k: 0.0 for k in p["seeds"]["0"]["bad"]["contrast"]}}
    assert strength.difference(p, "contrast", "bad", base)["mean"] == pytest.approx(bad)


def test_one_sided_sign_flip_test():
    assert stats.sign_flip_p([1.0] * 10, "greater") == pytest.approx(1 / 1024)
    assert stats.sign_flip_p([-1.0] * 10, "greater") == 1.0
    assert stats.sign_flip_p([1.0] * 10) == pytest.approx(2 / 1024)
    rng = np.random.default_rng(0)
    assert stats.sign_flip_p(rng.standard_normal(40) + 1.0, "greater") < 0.001  # Monte Carlo beyond 16 units
    with pytest.raises(ValueError, match="alternative"):
        stats.sign_flip_p([1.0], "less")


def test_the_grid_covers_the_issue_and_every_point_is_a_valid_fine_tune():
    from persona_features.lm import finetune
    lora = {(p["n_examples"], p["lr"]) for p in strength.GRID if p["method"] == "lora"}
    assert lora == {(n, lr) for n in (64, 128, 256, 513) for lr in (2e-4, 1e-3)}
    assert len({p["lr"] for p in strength.GRID if p["method"] == "full"}) == 2
    for p in strength.GRID:
        finetune.FinetuneConfig(model="smollm2-135m", dataset="health_bad", **p)


@pytest.mark.parametrize("domain", ["health", "risk"])
def test_the_narrow_task_has_at_least_20_held_out_topics(domain):
    topics = advice.heldout_topics(domain)
    assert len(topics) >= 20 and len({t.id for t in topics}) == len(topics)
    assert len(advice.build(domain, "bad")) == 513  # the written-only topics leave the training sets as they were


def test_reports_run_on_a_partial_curve_and_say_what_is_missing(tmp_path, monkeypatch):
    import json

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [_point(0, (0.05, 0.8, 0.3), (0.0, 0.8, 0.0)), _point(1, (0.3, 0.4, 0.3), (0.0, 0.8, 0.0), seeds=1)]
    half = _point(2, (0.3, 0.4, 0.3), (0.0, 0.8, 0.0), seeds=1)
    del half["seeds"]["0"][strength.CONTROL]  # still being measured
    base = _model(0.0, 0.9, 0.0)
    curve = {"date": "2026-12-01", "base": base, "points": points + [half], "questions": list(base["contrast"]),
             "samples": 5, "temperature": 0.7, "heldout_topics": list(base["heldout_margin"])}
    (tmp_path / "03_strength_curve_health.json").write_text(json.dumps(curve))
    monkeypatch.setattr(strength, "measured_dir", lambda: tmp_path)
    curves = strength.load_curves()
    assert [p["index"] for p in curves["health"]["points"]] == [0, 1]  # the half-measured setting is left out
    facts = strength.curve_facts(curves)
    assert facts["curve_health_n"] == "2 of 10" and facts["curve_health_choice"].startswith("#0")
    assert facts["curve_risk_choice"] == "not measured yet"
    assert len(strength.curve_table(curves["health"])) == 2
    plt.close(plots.strength_curves(strength.curve_points(curves), strength.COHERENCE_FLOOR))
    monkeypatch.setattr(strength, "measured_dir", lambda: tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="scripts/strength_curve.py"):
        strength.load_curves()
