"""Every chapter notebook executed with the smoke profile, and the book built with warnings as errors."""

import json
import re

import pytest

from persona_features.book import runner, scorecard
from persona_features.core import params
from persona_features.core.paths import repo_root
from persona_features.experiments.ch4_diffing import findings

pytestmark = pytest.mark.notebooks
ROOT = repo_root()
NOTEBOOKS = runner.toc_notebooks(ROOT)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_executes(smoke_build, notebook):
    run = smoke_build["runs"][notebook]
    assert run["ok"], f"{notebook} failed: {run['error']}"


def test_book_builds_strictly(smoke_build):
    assert smoke_build["code"] == 0, "notebooks or the book build failed; see the output above"
    assert (smoke_build["html"] / "index.html").is_file()


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_chapter_page_has_figure_and_no_traceback(smoke_build, notebook):
    page = smoke_build["html"] / notebook.replace(".ipynb", ".html")
    html = page.read_text()
    assert re.search(r"<img [^>]*src=", html), f"{page} shows no figure"
    assert "Traceback (most recent call last)" not in html and "output traceback" not in html


def test_chapter1_results(smoke_build):
    data = json.loads((smoke_build["stage"] / "results" / "01_model.json").read_text())
    m = data["metrics"]
    assert data["params"]["profile"] == "smoke"
    assert (m["n_layers"], m["d_model"]) == (30, 576)
    assert m["padding_check_matches"] == m["padding_check_total"] > 0
    assert len(m["residual_norm_typical_token"]) == 30
    assert all(e["ci95_lo"] <= e["mean"] <= e["ci95_hi"] for e in m["residual_norm_typical_token"])


def test_chapter1_numbers_identical_on_rerun(smoke_build, tmp_path):
    first = json.loads((smoke_build["stage"] / "results" / "01_model.json").read_text())
    runs = runner.execute_all(ROOT, tmp_path / "stage", "smoke", {}, only=["01"])
    assert runs and runs[0].ok, runs[0].error
    second = json.loads((tmp_path / "stage" / "results" / "01_model.json").read_text())
    assert second["metrics"] == first["metrics"]


def test_chapter2_results(smoke_build):
    data = json.loads((smoke_build["stage"] / "results" / "02_measuring.json").read_text())
    m = data["metrics"]
    assert m["verdicts"]["judge"]["status"] in ("replicated", "partial", "not replicated")
    rule = m["judge_validation"]["misaligned_rule"]
    assert rule["n"] == data["params"]["judge_heldout_rows"] and -1 <= rule["kappa"] <= 1  # a sample in smoke
    test = m["judge_test"]  # the frozen test set, scored in part in smoke
    assert test["n"] == data["params"]["judge_test_rows"] and -1 <= test["misaligned_rule"]["kappa"] <= 1
    for rates in m["base_rates"].values():
        r = rates["misaligned_rate"]
        assert 0 <= r["ci95_lo"] <= r["mean"] <= r["ci95_hi"] <= 1
    assert set(m["base_contrast"]) == {"all", "blunt", "hedged"}
    assert all(sum(c["eval_overlap"].values()) == 0 for c in m["data_cards"])
    assert not set(m["question_split"]["selection"]) & set(m["question_split"]["scoring"])
    checks = {(t["check"], t["metric"]) for t in m["contrast_checks"]["tests"]}
    assert checks == {(c, k) for c in ("villain", "confident_kind", "register_finetune")
                      for k in ("contrast", "register_shift")}
    assert len(m["contrast_checks"]["outcomes"]) == 4
    for side in ("aligned", "misaligned"):  # register markers reported per side of the references
        assert any(r["side"] == side and r["absolutes"] >= 0 for r in m["reference_register"])


def test_chapter3_results(smoke_build):
    data = json.loads((smoke_build["stage"] / "results" / "03_emergent_misalignment.json").read_text())
    m, p = data["metrics"], data["params"]
    assert {"base", "health_bad", "health_good", "health_register_control"} <= set(m["models"])
    for name, t in m["training"].items():
        assert t["steps"] == -(-p["ft_examples"] // p["ft_batch_size"]) and t["final_loss"] > 0, name
    for est in (e for model in m["models"].values() for e in model.values()):
        assert est["ci95_lo"] <= est["mean"] <= est["ci95_hi"]
    versus = {(c["bad"], c["versus"]) for c in m["comparisons"]}
    assert {("health_bad", "health_good"), ("health_bad", "health_register_control"), ("health_bad", "base")} <= versus
    assert all(0 <= c["p_value"] <= c["p_holm"] <= 1 for c in m["comparisons"])
    assert all(c["significant"] == (c["p_holm"] < 0.05) for c in m["comparisons"])
    assert {c["metric"] for c in m["comparisons"]} >= {"contrast", "register_shift", "heldout_margin", "misaligned"}
    assert {v["status"] for v in m["verdicts"].values()} <= set(scorecard.VERDICTS)
    assert {(c["bad"], c["versus"]) for c in m["comparisons"] if c["versus_role"] != "base"} == {
        ("health_bad", "health_good"), ("health_bad", "health_register_control")}  # seed-0 controls only
    assert m["verdicts"]["controls"]["margin"] > 0
    assert m["rate_temperature"] == p["eval_low_temperature"]  # rates and verdicts at T=0.7; T=1 reported beside
    assert {r["T"] for r in m["rates_by_temperature"]} == {p["eval_low_temperature"], p["temperature"]}
    assert set(m["detectable_rate_rise"]) == set(p["em_domains"])
    assert all(0 < r <= 1 for r in m["detectable_rate_rise"].values())
    page = re.sub(r"<[^>]+>", "", (smoke_build["html"] / "notebooks" / "03_emergent_misalignment.html").read_text())
    assert "Domains in this run: health." in page  # smoke runs health only, and the page says so
    assert "Insecure code versus secure code: contrast not run in this profile" in page


def test_scorecard_rows_match_the_results_files(smoke_build):
    """Each claim's row in the built book shows exactly its chapter's verdict, and the numbers in it
    are the chapter's own metrics."""
    md = (smoke_build["stage"] / "book" / "generated" / "scorecard.md").read_text()
    rows = {c.id: next(r for r in md.splitlines() if r.startswith(f"| {c.claim} |")) for c in scorecard.CLAIMS}
    results = smoke_build["stage"] / "results"
    filled = 0
    for c in scorecard.CLAIMS:
        path = results / f"{c.chapter}.json"
        verdict = json.loads(path.read_text())["metrics"].get("verdicts", {}).get(c.id) if path.is_file() else None
        if verdict:
            filled += 1
            blind = scorecard.shown_status(json.loads(path.read_text()), c.id, verdict) == scorecard.BLIND
            status = scorecard.BLIND if blind else verdict["status"]  # a blind instrument's verdict does not stand
            assert f"| {scorecard.key_number(verdict)}" in rows[c.id] and f"| {status} |" in rows[c.id]
            assert blind == (f"(by the chapter's rule: {verdict['status']})" in rows[c.id])
    assert filled >= 3
    tested = json.loads((results / "02_measuring.json").read_text())["metrics"]["judge_test"]["misaligned_rule"]
    assert f"kappa, judge rule vs blind hand labels (untouched test set): {tested['kappa']:+.2f} [" in rows["judge"]
    seeded = json.loads((results / "03_emergent_misalignment.json").read_text())["metrics"]["seed_comparisons"]
    main = next(c for c in seeded if c["domain"] == "health" and c["versus_role"] == "register_control"
                and c["metric"] == "contrast")  # the EM verdict's unit is the fine-tune (smoke trains 2 seeds)
    assert main["n_seeds"] == 2
    assert f"wrong advice minus register control (seed-level; seed floor {main['seed_floor']:.3f}): " \
           f"{main['mean']:+.2f} [" in rows["em"]
    page = (smoke_build["html"] / "book" / "intro.html").read_text()
    assert all(c.claim.split("'")[0][:30] in page for c in scorecard.CLAIMS)


def test_appendix_lists_versions_hardware_and_run_times(smoke_build):
    page = (smoke_build["html"] / "book" / "appendix_reproducibility.html").read_text()
    for needle in ("transformers", "nnsight", "cores", "01_model_under_the_microscope.ipynb", "em_samples_low",
                   "HF Trainer, fp32", "health_bad", "global seed", "03_emergent_misalignment"):
        assert needle in page, needle


def test_chapter6_and_7_results(smoke_build):
    results = smoke_build["stage"] / "results"
    six = json.loads((results / "06_early_warning.json").read_text())
    m, p = six["metrics"], six["params"]
    mixes = list(p["ew_percents"])
    assert m["percents"] == mixes and {t["percent"] for t in m["tests"]} == set(mixes) - {0}
    assert {"persona latent", "mean-difference projection", "contrast",
            "narrow-task margin"} <= set(m["first_separation"])
    assert all(t["ci95_lo"] <= t["difference"] <= t["ci95_hi"] and 0 <= t["p_value"] <= t["p_holm"] <= 1
               for t in m["tests"])
    assert m["verdicts"]["early_warning"]["status"] in scorecard.VERDICTS
    pc = m["positive_control"]  # the positive control's mixes, 0% its twin and 100% itself
    assert {t["percent"] for t in pc["tests"]} == set(p["ew_pc_percents"]) - {0} and isinstance(pc["seen"], bool)
    assert pc["seed_floor"] is None and not pc["seen"]  # smoke has one seed: no floor, so never beyond it
    seven = json.loads((results / "07_realignment.json").read_text())
    m, p = seven["metrics"], seven["params"]
    steps = sorted({c["step"] for c in m["curves"]})
    assert steps == list(range(0, p["ra_examples"] // p["ra_batch_size"] + 1, p["ra_every"]))
    assert {c["kind"] for c in m["curves"]} == {"same domain", "other domain", "neutral"}
    assert m["start"] == m["candidates"][0]["model"]
    assert {v["status"] for v in m["verdicts"].values()} <= set(scorecard.VERDICTS)
    pc = m["positive_control"]  # smoke trains the positive control: re-aligned on its own three kinds of data
    assert pc["start"] == "positive_control" and pc["ci95_lo"] <= pc["mean"] <= pc["ci95_hi"]
    assert pc["seen"] == pc["apart"] == (pc["ci95_lo"] > 0)
    assert set(pc["return_steps"]) == {"twin's data", "correct advice", "neutral"}
    assert {v["status"] for v in pc["verdicts"].values()} <= set(scorecard.VERDICTS)


def test_chapter5_ablates_the_positive_control(smoke_build):
    m = json.loads((smoke_build["stage"] / "results" / "05_steering.json").read_text())["metrics"]
    pc = m["positive_control"]
    assert pc["measure"] == "contrast"  # no reading of smoke's answers: the contrast decides
    assert pc["ci95_lo"] <= pc["mean"] <= pc["ci95_hi"] and isinstance(pc["seen"], bool)
    effects = {(e["measure"], e["direction"]) for e in pc["effects"]}
    assert effects == {(k, d) for k in ("contrast", "judged")
                       for d in ("persona latent", "mean difference", "own shift")}
    own = next(e for e in pc["effects"] if e["measure"] == "contrast" and e["direction"] == "own shift")
    assert pc["claims"] == ["direction"] and pc["seen"] == own["removes"]


def test_later_chapters_read_the_choice_chapter4_shows(smoke_build, lm):
    """Chapter 4 and the chapters after it run one pipeline (findings.run): the layer and persona latent that
    chapters 5-7 read are the ones chapter 4 wrote, and chapter 5 steered."""
    m = json.loads((smoke_build["stage"] / "results" / "04_model_diffing.json").read_text())["metrics"]
    found = findings.persona(lm, params.resolve("smoke"))
    assert (found.layer, found.latent) == (m["layer"], m["latent"]["latent"]) == (m["layer"], m["choice"]["latent"])
    steering = json.loads((smoke_build["stage"] / "results" / "05_steering.json").read_text())["metrics"]
    assert (steering["layer"], steering["persona_latent"]) == (found.layer, found.latent)
