"""Every chapter in smoke on the tiny Qwen2 fixture, chapters 1 and 3 on the Gemma 2 fixture, through the scale
sweep, and the sweep page over both in Chromium.

A random model's verdicts mean nothing: each chapter must run to its end and record "model untrained".

Gemma 2 runs two chapters here, for CI's time (every chapter costs about 20 s on a fixture): chapter 1 (the model's
size, which the page shows) and chapter 3 (sampling under sliding windows, fine-tuning and the contrast through its
softcapped logits, the judge). Its every chapter ran by hand on 2026-12-04 (3.1 min, all ok), and the equivalence
tests run its code paths on every commit (``tests/architectures.py``).
"""

import json
import shutil
from pathlib import Path

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
BOTH = ("01", "03")  # the chapters the sweep over both fixtures runs
CHAPTERS = {"qwen2": NOTEBOOKS, "gemma2": runner.select_notebooks(ROOT, BOTH)}


def _read(folder, family) -> tuple[dict, dict]:
    """A fixture's runs (by notebook) and verdicts (by chapter and claim) in one sweep's folder."""
    results = folder / family / "results"
    runs = {r["notebook"]: r for r in json.loads((results / "_runs.json").read_text())}
    verdicts = {(f.stem, k): v for f in sorted(results.glob("0*.json"))
                for k, v in json.loads(f.read_text())["metrics"].get("verdicts", {}).items()}
    return runs, verdicts


@pytest.fixture(scope="session")
def fixture_sweep(tiny_model_folders, tmp_path_factory):
    """Two sweeps: both fixtures on chapters 1 and 3 (its page kept), then Qwen2 on the other chapters (each sweep
    restages its models, so the first one's folder is copied aside before the second)."""
    folders = {f: str(tiny_model_folders[f]) for f in FAMILIES}
    only = lambda chapters: [a for c in chapters for a in ("--only", c)]
    first = runner.main(["sweep", "--models", ",".join(folders.values()), "--profile", "smoke", *only(BOTH)])
    page = tmp_path_factory.mktemp("sweep") / "both"
    shutil.copytree(sweep.sweep_root(ROOT, "smoke"), page)
    rest = [Path(nb).name for nb in NOTEBOOKS if nb not in CHAPTERS["gemma2"]]  # a file name is its own prefix
    second = runner.main(["sweep", "--models", folders["qwen2"], "--profile", "smoke", *only(rest)])
    runs, verdicts = {}, {}
    for family in FAMILIES:
        runs[family], verdicts[family] = _read(page, family)
    more_runs, more_verdicts = _read(sweep.sweep_root(ROOT, "smoke"), "qwen2")
    runs["qwen2"] |= more_runs
    verdicts["qwen2"] |= more_verdicts
    return {"codes": (first, second), "folder": page, "runs": runs, "verdicts": verdicts}


def test_qwen2_runs_every_chapter_and_gemma2_the_chosen_ones(fixture_sweep):
    assert fixture_sweep["codes"] == (0, 0)
    assert {f: sorted(fixture_sweep["runs"][f]) for f in FAMILIES} == {f: sorted(CHAPTERS[f]) for f in FAMILIES}


@pytest.mark.parametrize(("family", "notebook"), [(f, nb) for f in FAMILIES for nb in CHAPTERS[f]])
def test_every_chapter_runs_on_the_fixture(fixture_sweep, family, notebook):
    run = fixture_sweep["runs"][family][notebook]
    assert run["ok"], f"{notebook} on the {family} fixture failed: {run['error']}"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_verdict_on_a_fixture_says_model_untrained(fixture_sweep, family):
    verdicts = fixture_sweep["verdicts"][family]
    assert len(verdicts) >= (8 if family == "qwen2" else 2)  # judge, em, controls, code, positive control, ...
    assert {v["status"] for v in verdicts.values()} == {UNTRAINED}, verdicts


def test_the_sweep_page_compares_both_fixtures(fixture_sweep, chromium):  # noqa: F811
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
