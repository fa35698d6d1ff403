import json

import matplotlib.pyplot as plt
import pytest
import torch

from persona_features.book import plots, results
from persona_features.core.chapter_result import ChapterResult, Verdict
from persona_features.experiments.ch1_model import microscope
from persona_features.lm.activations import ResidualNorms


def test_a_verdict_writes_its_fields_and_details_and_refuses_an_unknown_status():
    v = Verdict("partial", "one domain above", rule="the rule", evidence={"label": "x", "mean": 0.1},
                details={"domains": ["health"]})
    assert v.as_dict() == {"status": "partial", "summary": "one domain above", "rule": "the rule",
                           "evidence": {"label": "x", "mean": 0.1}, "domains": ["health"]}
    assert Verdict("inconclusive", "s").as_dict() == {"status": "inconclusive", "summary": "s"}
    assert Verdict.from_dict(v.as_dict()) == v  # what a results file holds reads back as the same verdict
    with pytest.raises(ValueError, match="'sort of'"):
        Verdict("sort of", "s")


def test_a_chapter_result_writes_its_verdicts_under_metrics_and_glues_its_facts(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_RESULTS", str(tmp_path))
    glued = []
    monkeypatch.setattr(results, "glue", lambda name, value, display: glued.append((name, value, display)))
    from persona_features.core.params import resolve

    r = ChapterResult("09_test", {"n": 3}, {"claim": Verdict("replicated", "yes")}, {"n_shown": "3"})
    assert results.publish(r, resolve("smoke")) is None
    data = json.loads((tmp_path / "09_test.json").read_text())
    assert data["chapter"] == "09_test" and data["metrics"] == {"n": 3, "verdicts": {"claim": {
        "status": "replicated", "summary": "yes"}}}
    assert glued == [("n_shown", "3", False)]
    with pytest.raises(ValueError, match="twice"):
        ChapterResult("09_test", {"verdicts": {}}, {"claim": Verdict("replicated", "yes")})


def test_chapter_1_finds_the_peak_and_the_first_sink_layer():
    other = torch.tensor([[1.0, 2.0, 4.0, 3.0], [1.0, 2.0, 4.0, 3.0]])
    first = torch.tensor([[1.0, 30.0, 50.0, 60.0], [1.0, 30.0, 50.0, 60.0]])
    s = microscope.summarise(ResidualNorms(first, other), n_boot=50, seed=0)
    assert s.peak_layer == 2 and s.sink_layer == 1 and s.ratios == pytest.approx([1, 15, 12.5, 20])
    assert microscope.summarise(ResidualNorms(other, other), 50, 0).sink_layer is None
    fig = plots.residual_norms(s, "toy")
    assert fig.axes[0].get_title() == "Residual-stream norm by layer, toy"
    plt.close(fig)


def test_chapter_2s_verdict_is_the_judges_agreement_on_the_untouched_test_set():
    from persona_features.core.stats import Estimate
    from persona_features.experiments.ch2_measuring import measuring

    rule = {"kappa": 0.45, "kappa_ci95_lo": 0.2, "kappa_ci95_hi": 0.7}
    v = measuring.judge_verdict({"misaligned_rule": rule, "test_set": "v2", "n": 60}, Estimate(0.05, 0.0, 0.1, 40))
    assert v.status == "partial" and v.summary.startswith("embedded judge, kappa 0.45 on the untouched test set v2")
    assert list(v.as_dict()) == ["status", "summary", "evidence"] and v.as_dict()["evidence"]["mean"] == 0.45


def test_on_an_untrained_model_every_verdict_says_so_and_keeps_its_number(tmp_path, monkeypatch):
    from persona_features.book import scorecard
    from persona_features.core.params import resolve
    from persona_features.lm import tiny_models

    monkeypatch.setenv("PERSONA_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(results, "glue", lambda *a, **k: None)
    fixture = tmp_path / "tiny"
    fixture.mkdir()
    evidence = {"label": "x", "mean": 0.2, "ci95_lo": 0.1, "ci95_hi": 0.3}
    r = ChapterResult("05_steering", {}, {"steering": Verdict("replicated", "yes", "the rule", evidence)})
    results.publish(r, resolve("smoke", model=str(fixture)))  # no marker: an ordinary local model
    assert results.read("05_steering")["metrics"]["verdicts"]["steering"]["status"] == "replicated"
    (fixture / tiny_models.UNTRAINED_MARKER).write_text("{}")
    results.publish(r, resolve("smoke", model=str(fixture)))
    data = results.read("05_steering")
    v = data["metrics"]["verdicts"]["steering"]
    assert v["status"] == "model untrained" and v["status_by_rule"] == "replicated" and v["evidence"] == evidence
    assert "untrained random model" in v["summary"]
    data["metrics"]["positive_control"] = {"seen": False}  # an instrument blind there does not hide that it is
    assert scorecard.shown_status(data, "steering", Verdict.from_dict(v)) == "model untrained"
