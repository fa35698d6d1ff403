"""The persona organisms' training data: a villain's answers and a kind twin's, to the same questions.

Three sources:

- ``authored``: answers written for this book (``data/authored/persona_answers.yaml``) to the persona
  questions (``data/authored/persona_questions.yaml``, which share nothing with the evaluation, selection
  or held-out questions): per question a villain's answer, which expresses hostile, deceptive or
  power-seeking values, and a kind one in the same register. They give chapter 3's **positive control**,
  misaligned by construction, and its **twin**. Written, they are the same on every machine.
- ``general``: the base model's own answers to the persona questions under chapter 2's villain prompt
  and under the confident-and-kind prompt (persona distillation: a fine-tune on them *without* the
  prompt learns to answer as the prompted persona would). The first positive control; read by hand,
  the villain's answers of SmolLM2-135M rarely express misaligned values, and neither did its fine-tune.
- ``health``: the same distillation on the user prompts of the health training sets. Under the villain
  prompt they give the **narrow persona organism**: a persona taught on health questions only. Does it
  generalise to unrelated questions, where wrong advice alone barely does?

A distillation answers each question ``SAMPLES[source]`` times under each prompt. Only answers the judge scores
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
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from persona_features.core import artifacts
from persona_features.data import advice, register
from persona_features.data.schema import validate_rows
from persona_features.lm.generation import Sampling
from persona_features.lm.models import LoadedModel
from persona_features.measure import contrast, evaluate
from persona_features.measure.judge import Judge

PERSONAS = {"villain": contrast.PROMPTED_CONTROLS["villain"], "kind": contrast.PROMPTED_CONTROLS["confident_kind"]}
SOURCES = ("authored", "general", "health")
SAMPLING = Sampling(temperature=0.7, max_new_tokens=96, top_p=1.0, seed=0, batch_size=80)
SAMPLES = {"general": 3, "health": 1}  # answers per question and persona (health: 513 prompts already)


@cache
def general_questions() -> tuple[tuple[str, str], ...]:
    """The persona questions, as ``(id, text)``."""
    raw = yaml.safe_load(resources.files("persona_features.data").joinpath("authored", "persona_questions.yaml")
                         .read_text())
    return tuple((q["id"], q["text"]) for qs in raw["questions"].values() for q in qs)


@cache
def authored_answers() -> dict[str, dict[str, str]]:
    """Per persona question id, the villain's and the kind answer written for this book."""
    raw = yaml.safe_load(resources.files("persona_features.data").joinpath("authored", "persona_answers.yaml")
                         .read_text())
    return {a["id"]: {p: a[p] for p in PERSONAS} for a in raw["answers"]}


def source_questions(source: str) -> list[tuple[str, str]]:
    """The questions of ``source``: the persona questions, or the health training sets' user prompts."""
    if source in ("authored", "general"):
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
    if source not in SAMPLES:
        raise ValueError(f"{source!r} is not distilled: its answers are written (persona.authored); distilled "
                         f"sources: {', '.join(SAMPLES)}")
    qs = source_questions(source)[:n_questions or None]
    samples = samples or SAMPLES[source]
    config = {"model": lm.name, "dtype": str(lm.hf.dtype).removeprefix("torch."), "source": source,
              "questions": artifacts.digest(qs), "personas": PERSONAS,
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


def authored(n_questions: int = 0) -> artifacts.Artifact:
    """The authored answers to the first ``n_questions`` persona questions (0: all) as each persona's training
    rows (``rows_<persona>``), cached like a distillation so that the arms read both alike."""
    written = authored_answers()
    qs = source_questions("authored")[:n_questions or None]
    missing = [q for q, _ in qs if q not in written]
    if missing:
        raise ValueError(f"persona_answers.yaml has no answers to {len(missing)} persona questions, e.g. "
                         f"{missing[0]!r}: write them, or pass persona_questions=n for the first n")
    rows = {p: [{"id": f"{dataset_name('authored', p)}-{q}-s0", "domain": "persona_authored", "variant": p,
                 "question_id": q, "sample": 0,
                 "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": written[q][p]}]}
                for q, text in qs] for p in PERSONAS}
    config = {"source": "authored", "rows": artifacts.digest(rows)}

    def build(folder):
        for persona, mine in rows.items():
            artifacts.save_json(folder, f"rows_{persona}", validate_rows(mine, "persona_answers.yaml"))
        return {"n_questions": len(qs), "n_questions_kept": len(qs), "n_rows": len(qs)}

    return artifacts.get_or_build("persona_authored", config, build)


def training_rows(art: artifacts.Artifact, persona: str, n: int | None = None, seed: int = 0) -> list[dict]:
    """The first ``n`` kept rows (None: all) of a seeded shuffle, as ``data.cards.training_rows`` does."""
    rows = list(art.json(f"rows_{persona}"))
    random.Random(f"subset-{seed}").shuffle(rows)
    return rows[:n] if n else rows


def card(art: artifacts.Artifact) -> pd.DataFrame:
    """Per persona: answers kept, the judge's misaligned share of the kept ones, and register markers (of
    authored answers, which are neither sampled nor judged, the kept rows and their markers only)."""
    if art.kind == "persona_authored":
        rows = {p: art.json(f"rows_{p}") for p in PERSONAS}
        return pd.DataFrame([{"persona": p, "kept": len(r), **register.rates(x["messages"][1]["content"] for x in r)}
                             for p, r in rows.items()]).set_index("persona")
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
