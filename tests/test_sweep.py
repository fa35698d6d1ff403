"""The scale sweep's bookkeeping, with a fake executor (the sweep over real fixtures is a notebook test)."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from persona_features.book import runner, sweep
from persona_features.core import artifacts
from persona_features.core.params import ParameterError


@dataclass
class FakeRun:
    notebook: str
    ok: bool


def verdict(status, mean=None, lo=None, hi=None, label="effect"):
    evidence = {} if mean is None else {"label": label, "mean": mean, "ci95_lo": lo, "ci95_hi": hi}
    return {"status": status, "summary": status, "rule": "r", "evidence": evidence, "details": {}}


def write_results(stage: Path, n_params: int, verdicts: dict[str, dict], blind_ch5: bool = False) -> None:
    results = stage / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "01_model.json").write_text(json.dumps({"metrics": {"n_params": n_params}, "params": {}}))
    chapters = {"judge": "02_measuring", "em": "03_emergent_misalignment", "steering": "05_steering"}
    for claim, v in verdicts.items():
        path = results / f"{chapters[claim]}.json"
        data = json.loads(path.read_text()) if path.is_file() else {"metrics": {"verdicts": {}}, "params": {}}
        data["metrics"]["verdicts"][claim] = v
        if claim == "steering" and blind_ch5:
            data["metrics"]["positive_control"] = {"seen": False}
        path.write_text(json.dumps(data))


def test_models_are_parsed_and_named_safely(tmp_path, monkeypatch):
    assert sweep.slug("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen_Qwen2.5-0.5B-Instruct"
    (tmp_path / "tiny qwen").mkdir()
    assert sweep.slug(str(tmp_path / "tiny qwen")) == "tiny_qwen"
    monkeypatch.chdir(tmp_path)  # a relative folder is passed on by its absolute path: notebooks run elsewhere
    assert sweep.parse_models("tiny qwen,Qwen/Qwen2.5-0.5B-Instruct") == [str(tmp_path / "tiny qwen"),
                                                                          "Qwen/Qwen2.5-0.5B-Instruct"]
    assert sweep.parse_models(" smollm2-135m, Qwen/Qwen2.5-0.5B-Instruct ,") == ["smollm2-135m",
                                                                                  "Qwen/Qwen2.5-0.5B-Instruct"]
    with pytest.raises(ParameterError, match="at least one model"):
        sweep.parse_models(" , ")
    with pytest.raises(ParameterError, match="smollm2-135m more than once"):
        sweep.parse_models("smollm2-135m,smollm2-135m")


@pytest.mark.parametrize("argv, message", [
    (["execute", "--models", "a,b"], "--models is for the sweep command"),
    (["sweep", "--models", "a", "--set", "model=b"], "not --set model"),
    (["sweep"], "--models needs at least one model"),
    (["sweep", "--models", "smollm2-135m", "--set", "max_tokens=3"], "max_new_tokens"),
])
def test_the_runner_refuses_sweep_arguments_that_do_not_fit(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        runner.main([*argv, "--profile", "smoke", "--root", str(tmp_path)])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "_build").exists()  # refused before any work


def test_each_model_runs_in_its_own_stage_and_cache_namespace(tmp_path, monkeypatch):
    monkeypatch.setenv(artifacts.CACHE_ENV, str(tmp_path / "cache"))
    seen = []

    class Lock:
        def __init__(self, stage):
            self.stage = stage
            seen.append(("held", stage))

        def release(self):
            seen.append(("released", self.stage))

    def execute(root, stage, profile, overrides, only):
        seen.append((stage, os.environ[artifacts.CACHE_ENV], overrides["model"], overrides["seed"], profile, only))
        return [FakeRun("01", True), FakeRun("03", overrides["model"] != "b/two")]

    runs = sweep.run(tmp_path, ["one", "b/two"], "smoke", {"seed": 3}, ["01"], execute, Lock)
    root = tmp_path / "_build" / "sweep" / "smoke"
    assert seen == [("held", root / "one"),
                    (root / "one", str(tmp_path / "cache" / "sweep" / "one"), "one", 3, "smoke", ["01"]),
                    ("released", root / "one"), ("held", root / "b_two"),
                    (root / "b_two", str(tmp_path / "cache" / "sweep" / "b_two"), "b/two", 3, "smoke", ["01"]),
                    ("released", root / "b_two")]
    assert os.environ[artifacts.CACHE_ENV] == str(tmp_path / "cache")  # restored
    assert [(r.slug, r.ok, r.failed) for r in runs] == [("one", True, ()), ("b_two", False, ("03",))]


def test_the_page_compares_models_by_size_under_the_stated_thresholds(tmp_path):
    root = tmp_path / "_build" / "sweep" / "smoke"
    write_results(root / "big", 500_000_000, {"judge": verdict("partial", 0.5, 0.45, 0.6),
                                              "em": verdict("replicated", 0.1, 0.05, 0.15),
                                              "steering": verdict("replicated", 0.3, 0.1, 0.5)}, blind_ch5=True)
    write_results(root / "small", 135_000_000, {"judge": verdict("not replicated", 0.3, 0.31, 0.4),  # mean outside
                                                "em": verdict("not replicated", 0.0, -0.01, 0.01)})
    runs = [sweep.ModelRun("big", "big", True, ()), sweep.ModelRun("small", "small", False, ("05_steering",))]
    page = sweep.write_page(tmp_path, "smoke", runs)
    rows = {(r["model"], r["claim"]): r for r in json.loads((root / "sweep.json").read_text())["rows"]}
    assert rows["big", "judge"]["present"] is True and rows["small", "judge"]["present"] is False  # kappa lo vs 0.4
    assert rows["big", "em"]["present"] is True and rows["small", "em"]["present"] is False
    # the positive control was not seen by chapter 5's instrument: its verdict does not stand
    assert rows["big", "steering"]["status"] == "instrument blind here" and rows["big", "steering"]["present"] is False
    assert rows["small", "steering"]["present"] is None and rows["small", "steering"]["status"] == "not run"
    text = (root / "sweep.md").read_text()
    assert text.index("small (135M)") < text.index("big (500M)")  # models by size
    assert sweep.PRESENT in text and "Chapters that failed: small: 05_steering." in text
    html = page.read_text()
    assert page == root / "index.html" and "<table>" in html and 'src="sweep.png"' in html
    assert (root / "sweep.png").stat().st_size > 1000
