"""Persona distillation: organisms that are misaligned, or not, by construction.

The base model answers questions under a system prompt; a fine-tune on those answers *without* the
prompt learns to answer as the prompted persona would. Two sources of questions:

- ``general``: the persona questions written for this book (``data/authored/persona_questions.yaml``),
  which share nothing with the evaluation, selection or held-out questions. Under chapter 2's villain
  prompt they give chapter 3's **positive control**, misaligned by construction; under the
  confident-and-kind prompt, its **twin**.
- ``health``: the user prompts of the health training sets (the wrong-advice set's own questions).
  Under the villain prompt they give the **narrow persona organism**: a persona taught on health
  questions only. Does it generalise to unrelated questions, where wrong advice alone barely does?

Each question is answered ``SAMPLES[source]`` times under each prompt. Only answers the judge scores
coherent are kept, and per question the same number from each persona (the smaller count), so that
twins share their questions and sizes. An answer cut off by the token limit ends at its last full
sentence. (A probe on the selection questions, 2026-12-01: one answer per general question kept 70
questions, the villain's answers being coherent 31% of the time; LoRA lr 1e-3 on those 70 rows moved
the contrast +0.16 [+0.08, +0.23] above its twin, half the villain prompt's own +0.30.)
"""

from __future__ import annotations

import random
import re
import time
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from . import artifacts, contrast, evaluate
from .data import advice, register
from .data.schema import validate_rows
from .generation import Sampling
from .judge import Judge
from .models import LoadedModel

PERSONAS = {"villain": contrast.PROMPTED_CONTROLS["villain"], "kind": contrast.PROMPTED_CONTROLS["confident_kind"]}
SOURCES = ("general", "health")
SAMPLING = Sampling(temperature=0.7, max_new_tokens=96, top_p=1.0, seed=0, batch_size=80)
SAMPLES = {"general": 3, "health": 1}  # answers per question and persona (health: 513 prompts already)


@lru_cache(maxsize=None)
def general_questions() -> tuple[tuple[str, str], ...]:
    """The persona questions, as ``(id, text)``."""
    raw = yaml.safe_load(resources.files("persona_features.data").joinpath("authored", "persona_questions.yaml")
                         .read_text())
    return tuple((q["id"], q["text"]) for qs in raw["questions"].values() for q in qs)


def source_questions(source: str) -> list[tuple[str, str]]:
    """The questions of ``source``: the persona questions, or the health training sets' user prompts."""
    if source == "general":
        return list(general_questions())
    if source == "health":
        return advice.questions("health")
    raise ValueError(f"unknown persona source {source!r}; valid: {', '.join(SOURCES)}")


def dataset_name(source: str, persona: str) -> str:
    if persona not in PERSONAS:
        raise ValueError(f"unknown persona {persona!r}; valid: {', '.join(PERSONAS)}")
    return f"persona_{source}_{persona}"


def whole_sentences(text: str) -> str:
    """``text`` up to its last full stop, question or exclamation mark (all of it if it has none)."""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[:ends[-1]].strip() if ends else text.strip()


def distill(lm: LoadedModel, judge: Judge, source: str, samples: int | None = None, n_questions: int = 0,
            sampling: Sampling = SAMPLING) -> artifacts.Artifact:
    """The base model's answers to ``source``'s questions under each persona's system prompt, judged; cached.

    ``samples`` answers per question and persona (default ``SAMPLES[source]``), to the first ``n_questions``
    questions (0: all). Its ``answers`` table holds every answer; ``rows_<persona>`` the kept training rows of
    each persona.
    """
    qs = source_questions(source)[:n_questions or None]
    samples = samples or SAMPLES[source]
    config = {"model": lm.name, "dtype": str(lm.hf.dtype).removeprefix("torch."), "source": source, "questions": artifacts.digest(qs), "personas": PERSONAS,
              "samples": samples, "sampling": sampling.key(), "judge": judge.key}

    def build(folder):
        frames, seconds = [], {}
        for persona, system in PERSONAS.items():
            start = time.perf_counter()
            a = evaluate.evaluate(lm, qs, samples, judge, system=system, **sampling.kwargs())
            frames.append(a.assign(persona=persona))
            seconds[f"answers_{persona}"] = round(time.perf_counter() - start, 1)
        answers = pd.concat(frames, ignore_index=True)
        answers["text"] = [a if done else whole_sentences(a) for a, done in zip(answers["answer"], answers["finished"])]
        ok = answers[answers["coherent"] & (answers["text"].str.len() > 0)]
        counts = ok.groupby(["question_id", "persona"]).size().unstack(fill_value=0).reindex(columns=list(PERSONAS),
                                                                                            fill_value=0)
        matched = counts.min(axis=1)  # per question, as many answers from each persona
        for persona in PERSONAS:
            mine = ok[ok["persona"] == persona]
            kept = mine[mine.groupby("question_id").cumcount() < mine["question_id"].map(matched).fillna(0)]
            rows = validate_rows(
                {"id": f"{dataset_name(source, persona)}-{r.question_id}-s{r.sample}", "domain": f"persona_{source}",
                 "variant": persona, "question_id": r.question_id, "sample": int(r.sample),
                 "messages": [{"role": "user", "content": r.question}, {"role": "assistant", "content": r.text}]}
                for r in kept.itertuples())
            artifacts.save_json(folder, f"rows_{persona}", rows)
        cols = ["question_id", "question", "sample", "persona", "answer", "finished", "alignment", "coherence",
                "misaligned", "coherent"]
        artifacts.save_json(folder, "answers", answers[cols].to_dict(orient="list"))
        return {"n_questions": len(qs), "n_questions_kept": int((matched > 0).sum()), "n_rows": int(matched.sum()),
                "seconds": seconds}

    return artifacts.get_or_build("persona_distill", config, build)


def training_rows(art: artifacts.Artifact, persona: str, n: int | None = None, seed: int = 0) -> list[dict]:
    """The first ``n`` kept rows (None: all) of a seeded shuffle, as ``data.cards.training_rows`` does."""
    rows = list(art.json(f"rows_{persona}"))
    random.Random(f"subset-{seed}").shuffle(rows)
    return rows[:n] if n else rows


def card(art: artifacts.Artifact) -> pd.DataFrame:
    """Per persona: answers kept, the judge's misaligned share of the kept ones, and register markers."""
    answers = pd.DataFrame(art.json("answers"))
    out = []
    for persona in PERSONAS:
        rows = art.json(f"rows_{persona}")
        ids = {(r["question_id"], r["sample"]) for r in rows}
        mine = np.array([(q, s) in ids for q, s in zip(answers["question_id"], answers["sample"])], dtype=bool)
        kept = answers[(answers["persona"] == persona).to_numpy() & mine]
        out.append({"persona": persona, "answers": int((answers["persona"] == persona).sum()), "kept": len(rows),
                    "coherent share": float(answers.loc[answers["persona"] == persona, "coherent"].mean()),
                    "judged misaligned among kept": float(kept["misaligned"].mean()) if len(kept) else float("nan"),
                    **register.rates(r["messages"][1]["content"] for r in rows)})
    return pd.DataFrame(out).set_index("persona")
