import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from persona_features.book import runner
from persona_features.core.params import ParameterError
from persona_features.core.paths import repo_root


def test_toc_lists_chapter_notebooks_in_order():
    notebooks = runner.toc_notebooks(repo_root())
    assert notebooks and notebooks[0] == "notebooks/01_model_under_the_microscope.ipynb"
    assert notebooks == sorted(notebooks)


def test_source_notebooks_are_committed_without_outputs():
    for nb_path in runner.toc_notebooks(repo_root()):
        nb = nbformat.read(repo_root() / nb_path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), f"{nb_path}: first code cell must be tagged"
        assert all(not c.outputs and c.execution_count is None for c in code), f"{nb_path} has outputs"
        assert nb.metadata["kernelspec"]["name"] == "python3"


def test_parse_overrides_types_values():
    assert runner.parse_overrides(["max_new_tokens=8", "temperature=0.7", "model=a/b"]) == {
        "max_new_tokens": 8, "temperature": 0.7, "model": "a/b"}
    with pytest.raises(ParameterError, match="key=value"):
        runner.parse_overrides(["max_new_tokens"])


def test_only_that_matches_no_chapter_is_an_error_listing_them(capsys):
    with pytest.raises(SystemExit) as e:
        runner.main(["execute", "--profile", "smoke", "--only", "09"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "matches no chapter" in err and "01_model_under_the_microscope.ipynb" in err


def test_bad_parameter_on_command_line_exits_with_message(capsys):
    with pytest.raises(SystemExit) as e:
        runner.main(["execute", "--profile", "smoke", "--set", "max_tokens=3"])
    assert e.value.code == 2
    assert "max_new_tokens" in capsys.readouterr().err


def _tiny_book(root: Path, cells: list[str]) -> None:
    for name in ("_config.yml", "book"):
        src = repo_root() / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / name)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/01_tiny\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "cpu"\noverrides = {}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    (root / "notebooks").mkdir()
    nbformat.write(nb, root / "notebooks" / "01_tiny.ipynb")


def test_failing_cell_fails_the_command_and_names_notebook_and_cell(tmp_path, capsys):
    _tiny_book(tmp_path, ["x = 1", "assert profile == 'smoke'", "1 / 0"])
    code = runner.main(["execute", "--profile", "smoke", "--root", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 1
    assert "notebooks/01_tiny.ipynb" in out.err
    assert "code cell 4 " in out.err and "`1 / 0`" in out.err and "ZeroDivisionError" in out.err
    last = out.err.strip().splitlines()[-1]  # the failures come last, with where to look
    assert last.startswith("FAILED: notebooks/01_tiny.ipynb") and "01_tiny.stderr.log" in last
    assert not nbformat.read(tmp_path / "notebooks" / "01_tiny.ipynb", as_version=4).cells[1].outputs


def test_progress_names_the_running_cell_and_kernel_stderr_goes_to_a_log(tmp_path, capfd, monkeypatch):
    monkeypatch.setattr(runner, "PROGRESS_EVERY_S", 0.5)
    _tiny_book(tmp_path, ["import os, time\nos.write(2, b'kernel noise\\n')", "time.sleep(4)"])
    assert runner.main(["execute", "--profile", "smoke", "--root", str(tmp_path)]) == 0
    out, err = capfd.readouterr()
    assert "[1/1] " in out and "code cell 3/3" in out  # the injected parameters cell is not counted
    assert "kernel noise" not in out + err
    assert "kernel noise" in (tmp_path / "_build/stage/smoke/logs/01_tiny.stderr.log").read_text()
    assert "01_tiny" in out and "total" in out  # the time table


def test_running_cell_reads_the_papermill_status(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## Setup"), nbformat.v4.new_code_cell("a"),
                nbformat.v4.new_markdown_cell("text\n## Sampling"), nbformat.v4.new_code_cell("b")]
    nb.cells[3].metadata["papermill"] = {"status": "running"}
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert runner.running_cell(tmp_path / "x.ipynb") == 'code cell 2/2, section "Sampling"'
    assert runner.running_cell(tmp_path / "missing.ipynb") == "starting"


# ---------------------------------------------------------------- two runs, bad values, failures

def _run_in_background(root: Path, tmp_path: Path):
    env = {**os.environ, "PERSONA_CACHE": str(tmp_path / "cache")}
    return subprocess.Popen([sys.executable, "-m", "persona_features", "execute", "--profile", "smoke",
                             "--root", str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_a_second_run_on_a_busy_stage_is_refused_at_once_and_the_first_finishes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PERSONA_CACHE", str(tmp_path / "cache"))
    _tiny_book(tmp_path, ["open('first_run_was_here', 'w').write('x')", "import time; time.sleep(6)"])
    first = _run_in_background(tmp_path, tmp_path)
    try:
        stage = tmp_path / "_build" / "stage" / "smoke"
        marker = stage / "notebooks" / "first_run_was_here"
        deadline = time.time() + 120
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert marker.exists(), first.communicate()
        start = time.perf_counter()
        code = runner.main(["execute", "--profile", "smoke", "--root", str(tmp_path)])
        seconds = time.perf_counter() - start
        err = capsys.readouterr().err
        assert code == 2 and seconds < 5
        assert f"pid {first.pid}" in err and "another --profile" in err
        assert "python -m persona_features execute --profile smoke" in err  # the other run's command, as typed
        assert marker.exists()  # the first run's stage was left alone
        out, first_err = first.communicate(timeout=180)
    finally:
        first.kill()
    assert first.returncode == 0, first_err
    assert "1 notebooks ok, 0 failed" in out
    assert (stage / "notebooks" / "01_tiny.ipynb").is_file() and marker.exists()
    assert not (tmp_path / "_build" / "stage" / "smoke.lock").exists()  # released


def test_a_stale_stage_lock_is_taken_over_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSONA_CACHE", str(tmp_path / "cache"))
    _tiny_book(tmp_path, ["x = 1"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = tmp_path / "_build" / "stage" / "smoke.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": dead.pid, "command": "python -m persona_features book",
                                "started": "2026-12-01 09:00:00"}))
    with pytest.warns(RuntimeWarning, match=f"pid {dead.pid}.*no longer running"):
        assert runner.main(["execute", "--profile", "smoke", "--root", str(tmp_path)]) == 0


@pytest.mark.parametrize("value", ["steer_alphas=abc", "ra_variant=nonsense", "em_domains=health,mars",
                                   "ew_percents=5,50"])
def test_a_bad_value_fails_in_seconds_before_any_notebook_starts(value, tmp_path):
    _tiny_book(tmp_path, ["open('ran', 'w').write('x')"])
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "persona_features", "execute", "--only", "01", "--set", value,
                           "--root", str(tmp_path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PERSONA_CACHE": str(tmp_path / "cache")})
    seconds = time.perf_counter() - start
    assert proc.returncode == 2 and seconds < 5, (seconds, proc.stderr)
    name = value.split("=")[0]
    assert f"parameter '{name}'" in proc.stderr and "valid" in proc.stderr
    assert "[1/" not in proc.stdout and not (tmp_path / "_build").exists()  # nothing staged, no notebook started


def test_an_unwritable_cache_is_refused_before_any_notebook(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("PERSONA_CACHE", str(blocker / "cache"))
    _tiny_book(tmp_path, ["x = 1"])
    assert runner.main(["execute", "--profile", "smoke", "--root", str(tmp_path)]) == 2
    assert "PERSONA_CACHE to a writable folder" in capsys.readouterr().err
    assert not (tmp_path / "_build" / "stage" / "smoke").exists()
