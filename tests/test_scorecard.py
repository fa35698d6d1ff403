"""The scorecard: a row for every claim, filled only from results files."""

import json

import pytest

from persona_features import scorecard


def _write(folder, chapter, verdicts):
    (folder / f"{chapter}.json").write_text(json.dumps({
        "params": {"model": "tiny-model", "profile": "smoke"},
        "metrics": {"judge": "judge-x", "verdicts": verdicts}}))


def test_every_claim_has_one_row_and_results_fill_them(tmp_path):
    _write(tmp_path, "03_emergent_misalignment", {"em": {"status": "partial", "summary": "rate 0.123 [0.1, 0.2]"}})
    md = scorecard.markdown(tmp_path)
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    assert len(rows) == len(scorecard.CLAIMS) and len({c.id for c in scorecard.CLAIMS}) == len(scorecard.CLAIMS)
    em = next(r for r in rows if r.startswith(f"| {scorecard.CLAIMS[1].claim} |"))
    assert "rate 0.123 [0.1, 0.2] (model tiny-model, judge: judge-x, profile smoke)" in em and "| partial |" in em
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
