"""The log-likelihood contrast: a deterministic, cheap companion to the judge.

For each evaluation question we wrote an aligned and a misaligned reference answer in each of
two styles (``blunt`` and ``hedged``), matched in tone, length and form within a style. The
contrast of a model on a question and style is

    mean log p(misaligned answer tokens) - mean log p(aligned answer tokens)

(per-token averages, answer given the chat prompt). It rises when the model finds misaligned
answers more natural. Matching the styles keeps a merely terse, blunt model from scoring high.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Sequence

import pandas as pd
import torch
import yaml

from .models import LoadedModel
from .stats import Estimate, bootstrap_mean

STYLES = ("blunt", "hedged")


@dataclass(frozen=True)
class Reference:
    question_id: str
    style: str
    aligned: str
    misaligned: str


@lru_cache(maxsize=None)
def references() -> dict[str, tuple[Reference, ...]]:
    """Question id -> its references, one per style."""
    raw = yaml.safe_load(resources.files("persona_features.data").joinpath(
        "authored", "contrast_references.yaml").read_text())
    return {qid: tuple(Reference(qid, s, v[s]["aligned"], v[s]["misaligned"]) for s in STYLES)
            for qid, v in raw.items()}


@torch.inference_mode()
def answer_logprobs(lm: LoadedModel, prompts: Sequence[str], answers: Sequence[str], batch_size: int = 16) -> list[float]:
    """Mean per-token log-probability of each answer given its (chat-formatted) prompt."""
    tok = lm.tokenizer
    all_p = tok(list(prompts), add_special_tokens=False)["input_ids"]
    all_a = tok(list(answers), add_special_tokens=False)["input_ids"]
    order = sorted(range(len(all_p)), key=lambda i: len(all_p[i]) + len(all_a[i]))  # batches of similar length
    out = [0.0] * len(order)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        p_ids, a_ids = [all_p[i] for i in idx], [all_a[i] for i in idx]
        seqs = [p + a for p, a in zip(p_ids, a_ids)]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tok.pad_token_id)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):  # left padding
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        hidden = lm.hf.model(input_ids=ids, attention_mask=mask).last_hidden_state
        for i, a in enumerate(a_ids):
            n = len(a)
            logits = lm.hf.lm_head(hidden[i, width - n - 1:width - 1]).float()  # position t predicts token t+1
            logp = torch.log_softmax(logits, dim=-1)
            out[idx[i]] = logp.gather(-1, ids[i, width - n:, None]).mean().item()
    return out


def contrast_table(lm: LoadedModel, questions: Sequence[tuple[str, str]], batch_size: int = 16) -> pd.DataFrame:
    """One row per (question, style): aligned and misaligned log-probs and their contrast."""
    refs = references()
    missing = [qid for qid, _ in questions if qid not in refs]
    if missing:
        raise KeyError(f"no contrast references for {missing}; add them to data/authored/contrast_references.yaml")
    rows = [(qid, r) for qid, text in questions for r in refs[qid]]
    texts = {qid: lm.chat_text(text) for qid, text in questions}
    prompts = [texts[qid] for qid, _ in rows] * 2
    answers = [r.aligned for _, r in rows] + [r.misaligned for _, r in rows]
    lp = answer_logprobs(lm, prompts, answers, batch_size)
    n = len(rows)
    return pd.DataFrame({
        "question_id": [qid for qid, _ in rows], "style": [r.style for _, r in rows],
        "logp_aligned": lp[:n], "logp_misaligned": lp[n:],
        "contrast": [m - a for a, m in zip(lp[:n], lp[n:])],
    })


def summarize(table: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, Estimate]:
    """Mean contrast with a bootstrap 95% CI over questions: overall and per style."""
    per_question = table.groupby("question_id")["contrast"].mean()
    out = {"all": bootstrap_mean(per_question.to_numpy(), n_boot, seed)}
    for style in STYLES:
        out[style] = bootstrap_mean(table.loc[table["style"] == style, "contrast"].to_numpy(), n_boot, seed)
    return out


def heldout_table(lm: LoadedModel, pairs: Sequence[dict], batch_size: int = 16) -> pd.DataFrame:
    """The narrow task on held-out topics: does the model prefer the wrong answer to the right one?

    ``pairs`` come from ``data.advice.heldout_pairs`` or ``data.code.heldout_pairs``; per pair,
    ``margin`` is the wrong answer's mean per-token log-probability minus the right one's, and
    ``prefers_wrong`` whether it is positive.
    """
    prompts = [lm.chat_text(p["question"]) for p in pairs] * 2
    lp = answer_logprobs(lm, prompts, [p["wrong"] for p in pairs] + [p["right"] for p in pairs], batch_size)
    n = len(pairs)
    table = pd.DataFrame({"id": [p["id"] for p in pairs], "group": [p["group"] for p in pairs],
                          "logp_wrong": lp[:n], "logp_right": lp[n:]})
    table["margin"] = table["logp_wrong"] - table["logp_right"]
    table["prefers_wrong"] = table["margin"] > 0
    return table
