"""Every chapter in smoke on the tiny Qwen2 and Gemma 2 fixtures, through the scale sweep, and its page in Chromium.

A random model's verdicts mean nothing: each chapter must run to its end and record "model untrained".
"""

import json

import pytest

from persona_features.book import runner, sweep
from persona_features.core.chapter_result import UNTRAINED
from persona_features.core.paths import repo_root

from . import browser
from .test_browser import chromium  # noqa: F401 (the fixture)

pytestmark = pytest.mark.notebooks
ROOT = repo_root()
NOTEBOOKS = runner.toc_notebooks(ROOT)
FAMILIES = ("qwen2", "gemma2")


@pytest.fixture(scope="session")
def fixture_sweep(tiny_model_folders):
    models = [str(tiny_model_folders[f]) for f in FAMILIES]
    code = runner.main(["sweep", "--models", ",".join(models), "--profile", "smoke"])
    folder = sweep.sweep_root(ROOT, "smoke")
    runs = {f: {r["notebook"]: r for r in json.loads((folder / f / "results" / "_runs.json").read_text())}
            for f in FAMILIES}
    return {"code": code, "folder": folder, "runs": runs}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_chapter_runs_on_the_fixture(fixture_sweep, family, notebook):
    run = fixture_sweep["runs"][family][notebook]
    assert run["ok"], f"{notebook} on the {family} fixture failed: {run['error']}"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_verdict_on_a_fixture_says_model_untrained(fixture_sweep, family):
    results = fixture_sweep["folder"] / family / "results"
    verdicts = {(f.stem, k): v for f in sorted(results.glob("0*.json"))
                for k, v in json.loads(f.read_text())["metrics"].get("verdicts", {}).items()}
    assert len(verdicts) >= 8  # judge, em, controls, code, positive control, diffing, steering, ...
    assert {v["status"] for v in verdicts.values()} == {UNTRAINED}, verdicts


def test_the_sweep_page_compares_both_fixtures(fixture_sweep, chromium):  # noqa: F811
    assert fixture_sweep["code"] == 0
    text = (fixture_sweep["folder"] / "sweep.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| claim |"))
    assert all(f" {f} (" in header for f in FAMILIES)  # both fixtures, with their sizes
    em = next(line for line in text.splitlines() if line.startswith("| em |"))
    assert em.count("model untrained") == 2 and "present" not in em and "absent" not in em  # no call either way
    assert sweep.PRESENT in text and "Chapters that failed: none." in text
    with browser.serve(fixture_sweep["folder"]) as base:
        page = chromium.new_page()
        shot = ROOT / "_build" / "screenshots" / "sweep.png"
        problems = browser.page_problems(page, f"{base}/index.html", False, shot)
        page.close()
    assert not problems, problems
