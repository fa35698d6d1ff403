"""Execute the chapter notebooks with papermill, in TOC order, then render the book.

    python -m persona_features book --profile cpu      # what `make book` runs
    python -m persona_features test                    # smoke profile, strict build
    python -m persona_features execute --only 01 --set max_new_tokens=8
    python -m persona_features sweep --models smollm2-135m,<hf id or folder> --profile smoke   # one run per model

Source notebooks are never modified: they are copied with the book's pages into a staging
folder, executed there, and Jupyter Book (1.x, no execution) renders the staging folder.
While a chapter runs, a line a minute says which cell and section it is in; the kernels'
own stderr (transport warnings and the like) goes to ``<stage>/logs/`` instead of the terminal.

Before any work, every ``--set`` value is parsed and checked (``params.resolve``), the artifact
cache is checked to be writable, and the stage's lock is taken: a second run on the same stage
(the same ``--root`` and profile) is refused at once, naming the run that holds it. Artifacts
have locks of their own, so runs on other stages share the cache safely. ``sweep`` (``book.sweep``) runs the
notebooks once per model, each in its own stage and cache namespace, and writes a page comparing them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import yaml

from persona_features.book import appendix, scorecard, sweep
from persona_features.core import environment
from persona_features.core.artifacts import ArtifactError, check_writable, write_json_atomic
from persona_features.core.locks import StageBusy, hold_stage
from persona_features.core.params import PROFILES, ParameterError, resolve, table_markdown
from persona_features.core.paths import RESULTS_ENV, repo_root
from persona_features.measure.api_judge import ApiJudge

BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")
OPTIONAL_SOURCES = ("_static",)  # staged when present
PROGRESS_EVERY_S = 60.0


@dataclass
class NotebookRun:
    notebook: str
    profile: str
    seconds: float
    ok: bool
    error: str = ""


def toc_files(root: Path) -> list[str]:
    """Every file of ``_toc.yml`` in reading order (without suffix)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []):
                    walk(child)

    walk(toc)
    return files


def toc_notebooks(root: Path) -> list[str]:
    """The chapter notebooks, as ``notebooks/NN_slug.ipynb`` paths, in TOC order."""
    return [f"{f}.ipynb" for f in toc_files(root) if (root / f"{f}.ipynb").is_file()]


def stage_sources(root: Path, stage: Path) -> None:
    """A fresh staging copy of the book's pages and (unexecuted) notebooks."""
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in BOOK_SOURCES + tuple(n for n in OPTIONAL_SOURCES if (root / n).exists()):
        src = root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, stage / name)
    (stage / "notebooks").mkdir()


def _describe_failure(exc: Exception) -> str:
    exec_count = getattr(exc, "exec_count", None)
    if exec_count is None:
        return f"{type(exc).__name__}: {exc}"
    source = (getattr(exc, "source", "") or "").strip().splitlines()
    # papermill runs an injected parameters cell after the tagged one: discount it
    return (f"code cell {exec_count - 1} of the source notebook (starting `{source[0] if source else ''}`): "
            f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}")


def running_cell(path: Path) -> str:
    """Where papermill stands in the notebook it is writing to ``path``: code cell and section."""
    import nbformat

    try:
        cells = nbformat.read(path, as_version=4).cells
    except (OSError, ValueError):  # not written yet, or caught mid-write
        return "starting"
    code = [i for i, c in enumerate(cells)
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    running = [i for i in code if cells[i].metadata.get("papermill", {}).get("status") == "running"]
    if not running:
        return "between cells"
    at = running[0]
    headings = [line.lstrip("#").strip() for c in cells[:at] if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("#")]
    section = f", section \"{headings[-1]}\"" if headings else ""
    return f"code cell {code.index(at) + 1}/{len(code)}{section}"


class _Progress(threading.Thread):
    """Prints, every ``PROGRESS_EVERY_S``, the elapsed time and the running cell of a notebook."""

    def __init__(self, label: str, path: Path):
        super().__init__(daemon=True)
        self.label, self.path, self.done = label, path, threading.Event()
        self.start_time = time.perf_counter()

    def run(self) -> None:
        while not self.done.wait(PROGRESS_EVERY_S):
            elapsed = time.perf_counter() - self.start_time
            print(f"    {self.label} {elapsed // 60:.0f} min {elapsed % 60:02.0f} s: {running_cell(self.path)}",
                  flush=True)


@contextmanager
def _stderr_to(path: Path):
    """Send this process's and its children's stderr (file descriptor 2) to ``path`` meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def execute_notebook(root: Path, stage: Path, notebook: str, profile: str, overrides: dict,
                     label: str = "") -> NotebookRun:
    import papermill as pm

    out = stage / notebook
    out.parent.mkdir(parents=True, exist_ok=True)
    log = stage / "logs" / f"{Path(notebook).stem}.stderr.log"
    progress = _Progress(label or Path(notebook).stem, out)
    start = time.perf_counter()
    progress.start()
    try:
        with _stderr_to(log):
            pm.execute_notebook(
                str(root / notebook), str(out),
                parameters={"profile": profile, "overrides": overrides},
                kernel_name="python3", cwd=str(out.parent), progress_bar=False, log_output=False,
            )
        return NotebookRun(notebook, profile, time.perf_counter() - start, True)
    except Exception as exc:  # papermill raises its own error for a failing cell
        error = f"{_describe_failure(exc)} (kernel stderr: {log})"
        return NotebookRun(notebook, profile, time.perf_counter() - start, False, error)
    finally:
        progress.done.set()


def select_notebooks(root: Path, only: Sequence[str] = ()) -> list[str]:
    """The TOC's notebooks whose name starts with one of ``only`` (all if empty); a prefix that matches
    no chapter is a ``ParameterError`` listing them."""
    chapters = toc_notebooks(root)
    unmatched = [o for o in only if not any(Path(nb).name.startswith(o) for nb in chapters)]
    if unmatched:
        raise ParameterError(f"--only {', '.join(unmatched)} matches no chapter; chapters: "
                             f"{', '.join(Path(nb).name for nb in chapters)}")
    return [nb for nb in chapters if not only or any(Path(nb).name.startswith(o) for o in only)]


def execute_all(root: Path, stage: Path, profile: str, overrides: dict, only: Sequence[str] = ()) -> list[NotebookRun]:
    """Execute the TOC's notebooks into ``stage``; results go to ``stage/results``."""
    resolve(profile, **overrides)  # fail fast on a bad profile or parameter
    stage_sources(root, stage)
    notebooks = select_notebooks(root, only)
    runs = []
    previous = os.environ.get(RESULTS_ENV)
    os.environ[RESULTS_ENV] = str(stage / "results")  # inherited by the kernels
    try:
        for i, nb in enumerate(notebooks, 1):
            print(f"[{i}/{len(notebooks)}] {nb} (profile {profile}) ...", flush=True)
            run = execute_notebook(root, stage, nb, profile, overrides, label=f"[{i}/{len(notebooks)}]")
            runs.append(run)
            status = "ok" if run.ok else f"FAILED at {run.error}"
            print(f"[{i}/{len(notebooks)}] {nb}: {status} ({run.seconds:.1f} s)", flush=True)
    finally:
        if previous is None:
            os.environ.pop(RESULTS_ENV, None)
        else:
            os.environ[RESULTS_ENV] = previous
    write_json_atomic(stage / "results" / "_runs.json", [asdict(r) for r in runs])
    return runs


def render(stage: Path, html_out: Path) -> bool:
    """Generate the scorecard and run-time pages, then build the HTML with warnings as errors."""
    generated = stage / "book" / "generated"
    generated.mkdir(parents=True, exist_ok=True)
    results = stage / "results"
    fig = scorecard.figure(results)
    if fig is not None:
        fig.savefig(generated / "scorecard.png")
        plt.close(fig)
    (generated / "scorecard.md").write_text(
        scorecard.markdown(results, "/book/generated/scorecard.png" if fig is not None else None))
    (generated / "runs.md").write_text(appendix.runs_markdown(stage.parent))
    (generated / "seeds.md").write_text(appendix.seeds_markdown(results))
    (generated / "data_cards.md").write_text(appendix.data_cards_markdown(results))
    (generated / "measure_times.md").write_text(appendix.measure_times_markdown(results))
    (generated / "benchmark.md").write_text(appendix.benchmark_markdown())
    (generated / "sampler_benchmark.md").write_text(appendix.sampler_benchmark_markdown())
    (generated / "profiles.md").write_text(table_markdown() + "\n")
    (generated / "environment.md").write_text(environment.markdown())
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb if jb.exists() else "jupyter-book"), "build", str(stage), "--builder", "html",
           "-W", "-n", "--keep-going"]
    print("rendering:", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = stage / "jupyter-book.log"
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        print(proc.stdout[-4000:] + proc.stderr[-4000:], file=sys.stderr)
        print(f"book build FAILED (full log: {log})", file=sys.stderr)
        return False
    if html_out.exists():
        shutil.rmtree(html_out)
    shutil.copytree(stage / "_build" / "html", html_out)
    return True


def time_table(runs: Sequence[NotebookRun], total: float) -> str:
    """Wall time per chapter, and in all (rendering included), for the terminal."""
    width = max([len(Path(r.notebook).stem) for r in runs] + [5])
    lines = [f"{'chapter':<{width}}  minutes  status"]
    lines += [f"{Path(r.notebook).stem:<{width}}  {r.seconds / 60:7.1f}  {'ok' if r.ok else 'FAILED'}" for r in runs]
    lines.append(f"{'total':<{width}}  {total / 60:7.1f}")
    return "\n".join(lines)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParameterError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    return overrides


def check_sweep_arguments(command: str, models: str | None, overrides: dict) -> list[str]:
    """The sweep's models (``[]`` for the other commands); a ``ParameterError`` for arguments that do not fit."""
    if command != "sweep":
        if models is not None:
            raise ParameterError("--models is for the sweep command: python -m persona_features sweep --models A,B")
        return []
    if "model" in overrides:
        raise ParameterError("sweep takes its models from --models, not --set model=...")
    return sweep.parse_models(models or "")


def run_sweep(root: Path, profile: str, overrides: dict, only: Sequence[str], models: Sequence[str]) -> int:
    """The book's notebooks once per model, each stage held and in its own cache namespace, then the page."""
    try:
        check_writable()
        start = time.perf_counter()
        runs = sweep.run(root, models, profile, overrides, only, execute_all, hold_stage)
    except (ArtifactError, StageBusy) as e:
        print(f"refused: {e}", file=sys.stderr, flush=True)
        return 2
    page = sweep.write_page(root, profile, runs)
    print(f"sweep of {len(runs)} models in {(time.perf_counter() - start) / 60:.1f} min; page: {page}", flush=True)
    for r in runs:
        if r.failed:
            print(f"FAILED: {r.model}: {', '.join(r.failed)}", file=sys.stderr, flush=True)
    return 0 if all(r.ok for r in runs) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m persona_features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["book", "test", "execute", "sweep"],
                        help="book: cpu profile + HTML; test: smoke profile + strict HTML; execute: notebooks only; "
                             "sweep: the notebooks once per model of --models, then a page comparing them")
    parser.add_argument("--profile", choices=PROFILES, help="default: cpu for book/execute, smoke for test")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one parameter (repeatable)")
    parser.add_argument("--only", action="append", default=[], metavar="PREFIX",
                        help="only notebooks whose name starts with PREFIX (repeatable)")
    parser.add_argument("--root", type=Path, default=None, help="the book's folder (default: this repository)")
    parser.add_argument("--models", default=None, metavar="A,B,...",
                        help="sweep: the models, comma-separated (embedded names, Hugging Face ids or local folders)")
    args = parser.parse_args(argv)
    profile = args.profile or ("smoke" if args.command == "test" else "cpu")
    root = (args.root or repo_root()).resolve()
    try:
        overrides = parse_overrides(args.overrides)
        models = check_sweep_arguments(args.command, args.models, overrides)
        checked = [resolve(profile, **overrides, model=m) for m in models] or [resolve(profile, **overrides)]
        if checked[0].judge == "api":
            ApiJudge.from_env()  # the endpoint's variables are set, or the run stops here, naming them
        select_notebooks(root, args.only)
    except ParameterError as e:
        parser.error(str(e))
    if models:
        return run_sweep(root, profile, overrides, args.only, models)
    stage = root / "_build" / "stage" / profile
    # one rendered book per profile (make book's cpu book at _build/html), so runs of two profiles never share one
    html_out = root / "_build" / ("html" if args.command == "book" and profile == "cpu" else f"html-{profile}")
    try:
        check_writable()
        lock = hold_stage(stage)
    except (ArtifactError, StageBusy) as e:
        print(f"refused: {e}", file=sys.stderr, flush=True)
        return 2
    try:
        start = time.perf_counter()
        runs = execute_all(root, stage, profile, overrides, args.only)
        rendered = render(stage, html_out) if args.command != "execute" else True
        total = time.perf_counter() - start
    finally:
        lock.release()
    failed = [r for r in runs if not r.ok]
    print(time_table(runs, total), flush=True)
    print(f"{len(runs) - len(failed)} notebooks ok, {len(failed)} failed; total {total:.0f} s", flush=True)
    for r in failed:  # last, where a reader of the terminal looks
        print(f"FAILED: {r.notebook}: {r.error}; executed notebook: {stage / r.notebook}", file=sys.stderr,
              flush=True)
    if not rendered:
        print(f"FAILED: the book's rendering (log: {stage / 'jupyter-book.log'})", file=sys.stderr, flush=True)
    if args.command != "execute" and rendered and not failed:
        print(f"book: {html_out / 'index.html'}")
    return 0 if rendered and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
