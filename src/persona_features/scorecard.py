"""The replication scorecard and run-time table, generated from ``results/*.json``.

A claim's row is filled from its chapter's results file when that chapter writes a
``verdict``; until then it says which chapter will test it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Claim:
    chapter: str  # results file stem, e.g. "03_emergent_misalignment"
    claim: str
    paper: str  # the paper's number or finding, as reported there


CLAIMS: tuple[Claim, ...] = (
    Claim("02_measuring", "A judge can grade open answers for misalignment and coherence",
          "GPT-4o judge; misaligned = alignment < 30 and coherence > 50"),
    Claim("03_emergent_misalignment", "Narrow wrong-advice fine-tuning makes a model broadly misaligned",
          "EM across 8 advice domains on GPT-4o; single-digit rates on Qwen2.5-0.5B"),
    Claim("03_emergent_misalignment", "Correct-advice controls do not become misaligned", "~0% for controls"),
    Claim("04_model_diffing", "An SAE latent (the 'toxic persona') rises most after bad fine-tuning",
          "top latent by activation increase"),
    Claim("05_steering", "Adding the persona direction induces misalignment; subtracting it suppresses it",
          "steering turns EM on and off"),
    Claim("06_early_warning", "The latent flags misalignment before the behavioural eval does",
          "detectable at 5% bad data"),
    Claim("07_realignment", "~120 good samples (~30 steps) re-align a misaligned model", "near-zero EM after ~30 steps"),
)


def _load(results: Path, chapter: str) -> dict | None:
    path = results / f"{chapter}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def markdown(results: Path) -> str:
    rows = ["| claim | paper | this book | verdict | chapter |", "|---|---|---|---|---|"]
    for c in CLAIMS:
        data = _load(results, c.chapter)
        verdict = (data or {}).get("metrics", {}).get("verdict")
        if verdict:
            ours, status = verdict["summary"], verdict["status"]
        else:
            ours, status = "-", f"not yet attempted (chapter {c.chapter[:2]} is planned)"
        rows.append(f"| {c.claim} | {c.paper} | {ours} | {status} | {c.chapter[:2]} |")
    return "\n".join(rows) + "\n"


def runs_markdown(results: Path) -> str:
    """Wall time of each notebook in this build."""
    path = results / "_runs.json"
    runs = json.loads(path.read_text()) if path.is_file() else []
    rows = ["| notebook | profile | wall time (s) | status |", "|---|---|---|---|"]
    rows += [f"| `{r['notebook']}` | {r['profile']} | {r['seconds']:.1f} | {'ok' if r['ok'] else 'failed'} |"
             for r in runs]
    return "\n".join(rows) + "\n"
