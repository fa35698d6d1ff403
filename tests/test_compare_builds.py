"""scripts/compare_builds.py: what counts as two builds agreeing."""

import importlib.util
import json

from persona_features.core.paths import repo_root


def _script():
    spec = importlib.util.spec_from_file_location("compare_builds", repo_root() / "scripts" / "compare_builds.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_floats_agree_within_the_tolerance_and_everything_else_exactly():
    diff = _script().differences
    assert diff({"a": [1.0, float("nan")], "b": "x"}, {"a": [1.0 + 1e-12, float("nan")], "b": "x"}, 1e-9) == []
    assert diff({"a": 1.0}, {"a": 1.001}, 1e-9) == ["/a: 1.0, now 1.001"]
    assert diff({"a": 1}, {"a": 1.0}, 1e-9) == ["/a: 1, now 1.0"]  # a type change is a difference
    assert diff({"a": 1, "b": 2}, {"a": 1, "c": 2}, 1e-9) == ["/b: only in the old build", "/c: only in the new build"]
    assert diff([1, 2], [1, 2, 3], 1e-9) == [": 2 items, now 3"]


def _stage(root, latent, glue_text):
    (root / "results").mkdir(parents=True)
    (root / "notebooks").mkdir()
    (root / "results" / "04_x.json").write_text(json.dumps(
        {"chapter": "04_x", "params": {}, "metrics": {"latent": latent}, "software": {"torch": str(latent)}}))
    (root / "results" / "_runs.json").write_text(json.dumps([{"seconds": latent}]))
    out = {"output_type": "display_data", "metadata": {"scrapbook": {"name": "shown"}},
           "data": {"text/plain": glue_text}}
    (root / "notebooks" / "04_x.ipynb").write_text(json.dumps({"cells": [{"outputs": [out]}]}))
    return root


def test_two_builds_differ_where_a_number_or_a_glued_value_does(tmp_path, capsys):
    main = _script().main
    a = _stage(tmp_path / "a", 1, "'one'")
    assert main([str(a), str(_stage(tmp_path / "b", 1, "'one'"))]) == 0  # versions and run times not compared
    assert main([str(a), str(_stage(tmp_path / "c", 2, "'two'"))]) == 1
    out = capsys.readouterr().out
    assert "results/04_x/metrics/latent: 1, now 2" in out and "glued/04_x/shown: \"'one'\", now \"'two'\"" in out
