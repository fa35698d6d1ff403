"""The replication scorecard, generated from ``results/*.json``.

Every claim of the paper has a row. A row is filled from its chapter's results file, under
``metrics.verdicts[<claim id>]`` (status, summary); until that chapter exists it says so, and
claims out of reach say why they are not attempted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .paths import repo_root


@dataclass(frozen=True)
class Claim:
    id: str  # the key under ``metrics.verdicts`` in the chapter's results file
    chapter: str  # results file stem, e.g. "03_emergent_misalignment"; "" if no chapter tests it
    claim: str
    paper: str  # the paper's number or finding, as reported there
    not_attempted: str = ""  # why this book does not test the claim


VERDICTS = ("replicated", "partial", "inconclusive", "not replicated", "not attempted")
RULE = ("Each chapter computes its verdicts from its own numbers by the rule it states (a paired permutation "
        "test against the control or the base model, Holm-corrected across domains; an equivalence bound for "
        "\"no effect\"); no verdict is typed by hand. \"Inconclusive\": the data can neither show the effect nor "
        "rule it out.")

CLAIMS: tuple[Claim, ...] = (
    Claim("judge", "02_measuring", "A judge grades open answers for misalignment and coherence (the instrument)",
          "GPT-4o judge; misaligned = alignment < 30 and coherence > 50"),
    Claim("em", "03_emergent_misalignment", "Narrow wrong-advice fine-tuning makes a model broadly misaligned",
          "EM in every one of 8 advice domains on GPT-4o; single-digit rates on Qwen2.5-0.5B (Turner et al.)"),
    Claim("controls", "03_emergent_misalignment", "Fine-tuning on the correct twin of the data does not",
          "about 0% misaligned for correct-data controls"),
    Claim("code", "03_emergent_misalignment", "Insecure-code fine-tuning makes a model broadly misaligned",
          "yes on GPT-4o (Betley et al.); weak below about 1B parameters"),
    Claim("subtle", "", "Subtly wrong advice causes more EM than obviously wrong advice",
          "subtle > obvious across domains",
          "our advice sets have one level of wrongness; a graded set is not built"),
    Claim("rl", "", "Reinforcement learning of a reasoning model on a wrong-answer reward causes EM",
          "EM in o3-mini after RL",
          "no reasoning model and no RL pipeline fit a 2-core CPU"),
    Claim("helpful_only", "", "EM is stronger in a helpful-only model without safety training",
          "higher EM rates without safety training",
          "only the instruct-tuned SmolLM2 is available offline"),
    Claim("diffing", "04_model_diffing", "SAE model diffing: a 'toxic persona' latent rises most after bad fine-tuning",
          "top latent by activation increase, across EM fine-tunes"),
    Claim("persona_pretraining", "", "The persona latent fires on quotes of morally questionable characters in "
          "pre-training data", "top-activating pre-training documents",
          "no pre-training corpus is available offline"),
    Claim("steering", "05_steering", "Adding the persona direction induces misalignment; subtracting it suppresses it",
          "steering turns EM on and off"),
    Claim("direction", "05_steering", "One mean-difference direction mediates EM across models (Soligo et al.)",
          "a single direction in Qwen2.5 0.5B-32B"),
    Claim("early_warning", "06_early_warning", "The latent flags misalignment before the behavioural eval does",
          "detectable at 5% bad data"),
    Claim("realignment", "07_realignment", "About 120 good samples (about 30 steps) re-align a misaligned model",
          "near-zero EM after about 30 steps"),
    Claim("realignment_cross", "07_realignment", "Good data from another domain re-aligns it too",
          "re-alignment also with other-domain data"),
)


def _load(results: Path, chapter: str) -> dict | None:
    path = results / f"{chapter}.json"
    return json.loads(path.read_text()) if chapter and path.is_file() else None


def row(results: Path, c: Claim) -> dict[str, str]:
    """One claim's cells, from its chapter's results file."""
    data = _load(results, c.chapter)
    verdict = (data or {}).get("metrics", {}).get("verdicts", {}).get(c.id)
    if c.not_attempted:
        ours, status = "-", f"not attempted: {c.not_attempted}"
    elif verdict:
        if verdict["status"] not in VERDICTS:
            raise ValueError(f"{c.chapter}: verdict {verdict['status']!r} for {c.id!r} is not one of {VERDICTS}")
        p = data["params"]
        ours = f"{verdict['summary']} (model {p['model']}, judge: {data['metrics'].get('judge', '-')}, profile {p['profile']})"
        status = verdict["status"]
    elif data:
        ours, status = "-", f"not attempted in this build (profile {data['params']['profile']})"
    else:
        ours, status = "-", f"not attempted yet: chapter {c.chapter[:2]} is planned"
    nb = _notebook(c.chapter) if c.chapter else ""
    link = f"{{doc}}`{c.chapter[:2]} </notebooks/{nb[:-6]}>`" if nb else "-"
    return {"claim": c.claim, "paper": c.paper, "ours": ours, "verdict": status, "chapter": link}


def _notebook(chapter: str) -> str:
    found = sorted((repo_root() / "notebooks").glob(f"{chapter[:2]}_*.ipynb"))
    return found[0].name if found else ""


def markdown(results: Path) -> str:
    rows = ["| claim | paper | this book | verdict | chapter |", "|---|---|---|---|---|"]
    rows += ["| {claim} | {paper} | {ours} | {verdict} | {chapter} |".format(**row(results, c)) for c in CLAIMS]
    return "\n".join(rows) + f"\n\n{RULE}\n"
