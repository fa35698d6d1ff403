"""A scale sweep: the book once per model, each in its own stage and cache namespace, and one page comparing them.

    python -m persona_features sweep --models smollm2-135m,Qwen/Qwen2.5-0.5B-Instruct --profile gpu

Each model's chapters run into ``_build/sweep/<profile>/<model>/`` with the artifact cache at
``<cache>/sweep/<model>/``, so two models never share a fine-tune or a judge, and one model's run can be resumed or
deleted alone. The comparison page, ``_build/sweep/<profile>/index.html`` (with ``sweep.md`` and ``sweep.json``),
gives every claim's key number and verdict against model size, with intervals, under the thresholds that
``PRESENT`` states (written here, before any sweep is run).
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from persona_features.book import plots, scorecard
from persona_features.core import artifacts
from persona_features.core.chapter_result import UNTRAINED, Verdict
from persona_features.core.params import ParameterError
from persona_features.core.stats import fmt_interval

KAPPA_PRESENT = 0.4  # the judge claim: its kappa's lower bound at least this (chapter 2's "partial" bar)
PRESENT = (
    "An effect is called present at a model when its chapter's verdict, computed by the rule that chapter states "
    "and applied as written, is \"replicated\" or \"partial\", and the chapter's instrument saw chapter 3's positive "
    "control (the scorecard does not mark it \"instrument blind here\"). For the judge, the instrument itself, "
    f"present means the lower bound of Cohen's kappa against the blind hand labels is at least {KAPPA_PRESENT}. "
    "These thresholds were fixed on 2026-12-04 in `persona_features.book.sweep`, before any sweep of a trained "
    "model was run; a model whose chapter "
    "did not run shows \"not run\", and an untrained fixture \"model untrained\"."
)
PRESENT_STATUSES = ("replicated", "partial")


@dataclass(frozen=True)
class ModelRun:
    model: str
    slug: str  # the model's folder name under the sweep's stage and cache
    ok: bool  # every chapter ran
    failed: tuple[str, ...]  # chapters that failed


def slug(model: str) -> str:
    """A folder name for ``model``: a Hugging Face id or a local folder's last part, safe characters only."""
    name = Path(model).name if Path(model).expanduser().is_dir() else model
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.") or "model"


def parse_models(text: str) -> list[str]:
    """``--models A,B,C``: at least one, no repeats, distinct folder names."""
    models = [m.strip() for m in text.split(",") if m.strip()]
    # a local folder by its absolute path: the notebooks run in their own folders
    models = [str(Path(m).expanduser().resolve()) if Path(m).expanduser().is_dir() else m for m in models]
    if not models:
        raise ParameterError("--models needs at least one model: --models smollm2-135m,<hf id or folder>,...")
    slugs = [slug(m) for m in models]
    repeated = sorted({s for s in slugs if slugs.count(s) > 1})
    if repeated:
        raise ParameterError(f"--models names {', '.join(repeated)} more than once (or two models with the same "
                             "folder name): each model needs its own stage")
    return models


def sweep_root(root: Path, profile: str) -> Path:
    return root / "_build" / "sweep" / profile


@contextmanager
def cache_namespace(name: str):
    """The artifact cache at ``<cache>/sweep/<name>`` while the block runs (the kernels inherit it)."""
    previous = os.environ.get(artifacts.CACHE_ENV)
    os.environ[artifacts.CACHE_ENV] = str(artifacts.cache_root() / "sweep" / name)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(artifacts.CACHE_ENV, None)
        else:
            os.environ[artifacts.CACHE_ENV] = previous


Execute = Callable[[Path, Path, str, dict, Sequence[str]], list]  # runner.execute_all's signature


def run(root: Path, models: Sequence[str], profile: str, overrides: dict, only: Sequence[str],
        execute: Execute, hold: Callable[[Path], object]) -> list[ModelRun]:
    """Execute the book once per model (``execute``: the runner's ``execute_all``), each stage held (``hold``)."""
    out = []
    for i, model in enumerate(models, 1):
        name = slug(model)
        stage = sweep_root(root, profile) / name
        print(f"== sweep model {i}/{len(models)}: {model} (stage {stage}) ==", flush=True)
        lock = hold(stage)
        try:
            with cache_namespace(name):
                runs = execute(root, stage, profile, {**overrides, "model": model}, only)
        finally:
            lock.release()  # type: ignore[attr-defined]
        failed = tuple(r.notebook for r in runs if not r.ok)
        out.append(ModelRun(model, name, not failed, failed))
    return out


# ---------------------------------------------------------------- the comparison


def _n_params(results: Path) -> int | None:
    path = results / "01_model.json"
    return json.loads(path.read_text())["metrics"].get("n_params") if path.is_file() else None


def present(claim_id: str, verdict: Verdict | None, shown: str) -> bool | None:
    """The stated threshold (``PRESENT``) applied to one claim at one model; None where the chapter did not run."""
    if verdict is None or verdict.status == UNTRAINED:
        return None
    if claim_id == "judge":
        return float((verdict.evidence or {}).get("ci95_lo", float("-inf"))) >= KAPPA_PRESENT
    return shown in PRESENT_STATUSES


def comparison(root: Path, profile: str, runs: Sequence[ModelRun]) -> list[dict]:
    """One row per model and claim that some chapter tests: size, key number with interval, verdict, present."""
    rows = []
    for r in runs:
        results = sweep_root(root, profile) / r.slug / "results"
        n_params = _n_params(results)
        for c in scorecard.CLAIMS:
            if c.not_attempted or not c.chapter:
                continue
            path = results / f"{c.chapter}.json"
            data = json.loads(path.read_text()) if path.is_file() else None
            d = (data or {}).get("metrics", {}).get("verdicts", {}).get(c.id)
            verdict = Verdict.from_dict(d) if d else None
            shown = scorecard.shown_status(data, c.id, verdict) if verdict else "not run"
            e = (verdict.evidence if verdict else None) or {}
            rows.append({"model": r.model, "name": r.slug, "n_params": n_params, "claim": c.id, "status": shown,
                         "present": present(c.id, verdict, shown), "label": e.get("label", ""),
                         "mean": e.get("mean"), "lo": e.get("ci95_lo"), "hi": e.get("ci95_hi"),
                         "key_number": scorecard.key_number(verdict) if verdict else "-"})
    return rows


def _cell(row: dict) -> str:
    number = fmt_interval({"mean": row["mean"], "ci95_lo": row["lo"], "ci95_hi": row["hi"]}) \
        if row["mean"] is not None and row["lo"] is not None else ""
    if row["present"] is None:  # not run, or an untrained model: no call either way
        return f"{number}<br>{html.escape(row['status'])}" if number else html.escape(row["status"])
    return f"{number or '-'}<br>{html.escape(row['status'])}; <b>{'present' if row['present'] else 'absent'}</b>"


def markdown(rows: Sequence[dict], runs: Sequence[ModelRun], profile: str) -> str:
    """The page's text: the thresholds, then a claim x model table (models by size)."""
    models = sorted({(r["n_params"] or 0, r["name"]) for r in rows})
    head = "| claim | " + " | ".join(f"{m} ({n / 1e6:.0f}M)" if n else m for n, m in models) + " |"
    lines = [f"# Scale sweep ({profile} profile)", "", PRESENT, "", head, "|---" * (len(models) + 1) + "|"]
    for claim in dict.fromkeys(r["claim"] for r in rows):
        cells = {r["name"]: _cell(r) for r in rows if r["claim"] == claim}
        lines.append(f"| {claim} | " + " | ".join(cells.get(m, "-") for _, m in models) + " |")
    failed = [f"{r.model}: {', '.join(r.failed)}" for r in runs if r.failed]
    lines += ["", "Chapters that failed: " + ("; ".join(failed) if failed else "none") + "."]
    return "\n".join(lines) + "\n"


def write_page(root: Path, profile: str, runs: Sequence[ModelRun]) -> Path:
    """``sweep.json``, ``sweep.md``, the figure and ``index.html`` in the sweep's folder; returns the page."""
    folder = sweep_root(root, profile)
    folder.mkdir(parents=True, exist_ok=True)
    rows = comparison(root, profile, runs)
    artifacts.write_json_atomic(folder / "sweep.json", {"present_rule": PRESENT, "runs": [asdict(r) for r in runs],
                                                        "rows": rows})
    text = markdown(rows, runs, profile)
    (folder / "sweep.md").write_text(text)
    fig = plots.sweep_key_numbers(rows)
    figure = ""
    if fig is not None:
        fig.savefig(folder / "sweep.png")
        plt.close(fig)
        figure = '<img src="sweep.png" alt="each claim\'s key number against model size">'
    page = folder / "index.html"
    page.write_text(_html(text, figure))
    return page


def _html(text: str, figure: str) -> str:
    """A self-contained page from the markdown table (no build step: it renders offline anywhere)."""
    body = []
    for line in text.splitlines():
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("|---"):
            continue
        elif line.startswith("| claim"):
            body.append("<table><tr>" + "".join(f"<th>{html.escape(c.strip())}</th>"
                                                for c in line.strip("|").split("|")) + "</tr>")
        elif line.startswith("| "):
            body.append("<tr>" + "".join(f"<td>{c.strip()}</td>" for c in line.strip("|").split("|")) + "</tr>")
        elif line:
            if body and body[-1].endswith("</tr>"):
                body.append("</table>")
            body.append(f"<p>{html.escape(line).replace('`', '')}</p>")
    if body and body[-1].endswith("</tr>"):
        body.append("</table>")
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Scale sweep</title><style>{style}</style>"
            f"</head><body>{''.join(body)}{figure}</body></html>\n")
