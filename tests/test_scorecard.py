"""The scorecard: a row for every claim, filled only from results files."""

import json

import pytest

from persona_features.book import scorecard


def _write(folder, chapter, verdicts):
    (folder / f"{chapter}.json").write_text(json.dumps({
        "params": {"model": "tiny-model", "profile": "smoke"},
        "metrics": {"judge": "judge-x", "verdicts": verdicts}}))


EVIDENCE = {"label": "contrast, bad minus register control", "versus": "register control",
            "mean": 0.2, "ci95_lo": 0.1, "ci95_hi": 0.3, "p_holm": 0.004}


def test_every_claim_has_one_row_and_results_fill_them(tmp_path):
    _write(tmp_path, "03_emergent_misalignment", {"em": {"status": "partial", "summary": "rate 0.123 [0.1, 0.2]",
                                                         "evidence": EVIDENCE},
                                                  "code": {"status": "inconclusive", "summary": "no key number"}})
    md = scorecard.markdown(tmp_path)
    assert md.startswith("Model: tiny-model. Judge: judge-x. Profile: smoke.")  # said once, above the table
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    assert len(rows) == len(scorecard.CLAIMS) and len({c.id for c in scorecard.CLAIMS}) == len(scorecard.CLAIMS)
    em = next(r for r in rows if r.startswith(f"| {scorecard.CLAIMS[1].claim} |"))
    assert "contrast, bad minus register control: +0.20 [+0.10, +0.30] (Holm p = 0.004)" in em and "| partial |" in em
    assert "tiny-model" not in em
    code = next(r for r in rows if r.startswith("| Insecure-code"))
    assert "no key number" in code  # without a key number the summary stands in
    controls = next(r for r in rows if r.startswith("| Fine-tuning on the correct twin"))
    assert "not attempted in this build (profile smoke)" in controls  # its chapter wrote no verdict for it
    steering = next(r for r in rows if r.startswith("| Adding the persona direction"))
    assert "not attempted yet: chapter 05 is planned" in steering
    for c in scorecard.CLAIMS:
        if c.not_attempted:
            assert any(f"not attempted: {c.not_attempted}" in r for r in rows)


def test_unknown_status_is_an_error(tmp_path):
    _write(tmp_path, "02_measuring", {"judge": {"status": "kind of", "summary": "x"}})
    with pytest.raises(ValueError, match="not one of"):
        scorecard.markdown(tmp_path)


def test_figure_shows_the_claims_with_a_key_number(tmp_path):
    assert scorecard.figure(tmp_path) is None
    _write(tmp_path, "03_emergent_misalignment", {"em": {"status": "partial", "summary": "s", "evidence": EVIDENCE},
                                                  "code": {"status": "inconclusive", "summary": "s"}})
    fig = scorecard.figure(tmp_path)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 1 and labels[0].startswith("em (partial)")
    assert "```{figure} /x.png" in scorecard.markdown(tmp_path, "/x.png")


def test_the_positive_control_column_says_what_each_chapter_saw(tmp_path):
    _write(tmp_path, "02_measuring", {})
    for chapter, pc in (("03_emergent_misalignment", {"seen": {"contrast": True, "reading": None}}),
                        ("04_model_diffing", {"seen": False, "rank": 31})):
        (tmp_path / f"{chapter}.json").write_text(json.dumps({"params": {"model": "m", "profile": "cpu"},
                                                               "metrics": {"verdicts": {}, "positive_control": pc}}))
    cell = lambda claim_id: scorecard.row(tmp_path, next(c for c in scorecard.CLAIMS if c.id == claim_id))[
        "positive_control"]
    assert cell("em") == "contrast: seen; reading: not measured"
    assert cell("diffing") == "not seen (persona latent's rank 31)"
    assert cell("judge") == "not measured" and cell("steering") == "-"  # chapter 5 wrote no results
    assert cell("rl") == "-"  # not attempted
    assert "| positive control seen by the chapter's instrument |" in scorecard.markdown(tmp_path).splitlines()[2]


def test_a_verdict_stands_only_where_the_instrument_saw_the_positive_control(tmp_path):
    verdict = {"status": "not replicated", "summary": "s", "evidence": EVIDENCE}
    for chapter, pc in (("04_model_diffing", {"seen": False, "rank": 31}),
                        ("05_steering", {"seen": True}),
                        ("03_emergent_misalignment", {"seen": {"contrast": False, "reading": None}})):
        (tmp_path / f"{chapter}.json").write_text(json.dumps({"params": {"model": "m", "profile": "cpu"}, "metrics": {
            "verdicts": {"diffing": verdict, "steering": verdict, "em": verdict, "positive_control": verdict},
            "positive_control": pc}}))
    row = lambda claim_id: scorecard.row(tmp_path, next(c for c in scorecard.CLAIMS if c.id == claim_id))
    assert row("diffing")["verdict"] == scorecard.BLIND
    assert row("diffing")["ours"].endswith("(by the chapter's rule: not replicated)") and "[" in row("diffing")["ours"]
    assert row("steering")["verdict"] == "not replicated"  # seen: the verdict stands
    assert row("em")["verdict"] == scorecard.BLIND  # every instrument measured missed it
    assert row("positive_control")["verdict"] == "not replicated"  # the check itself is never overridden
    assert not scorecard.instrument_blind({"metrics": {"positive_control": {"seen": {"contrast": None}}}})
    only = {"metrics": {"positive_control": {"seen": False, "claims": ["direction"]}}}
    assert scorecard.instrument_blind(only, "direction") and not scorecard.instrument_blind(only, "steering")
    assert {r["claim"]: r["status"] for r in scorecard.evidence_rows(tmp_path)}["diffing"] == scorecard.BLIND
    assert not scorecard.instrument_blind({"metrics": {"positive_control": "not run (no positive control)"}})
