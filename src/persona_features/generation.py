"""Batched answer sampling from a chat model.

Prompts are left-padded and batched; each batch is seeded from ``seed`` and its index, so
the same profile and seed give the same answers on the same machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from .models import LoadedModel


@dataclass(frozen=True)
class Answer:
    question_id: str
    question: str
    sample: int
    answer: str
    n_tokens: int
    finished: bool  # ended with end-of-turn before max_new_tokens


def _answer_lengths(new_tokens: torch.Tensor, stop_ids: set[int]) -> tuple[list[int], list[bool]]:
    lengths, finished = [], []
    for row in new_tokens.tolist():
        stop = next((i for i, t in enumerate(row) if t in stop_ids), None)
        lengths.append(len(row) if stop is None else stop)
        finished.append(stop is not None)
    return lengths, finished


def _stop_ids(lm: LoadedModel) -> set[int]:
    ids = lm.hf.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    return ids | {lm.tokenizer.eos_token_id}


@torch.inference_mode()
def generate_batch(
    lm: LoadedModel, texts: Sequence[str], max_new_tokens: int, temperature: float, top_p: float = 1.0
) -> torch.Tensor:
    """New tokens ``[batch, max_new_tokens]`` for prompt texts (greedy when temperature == 0)."""
    enc = lm.encode(texts)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else {
        "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    out = lm.hf.generate(
        **enc, max_new_tokens=max_new_tokens, min_new_tokens=0, pad_token_id=lm.tokenizer.pad_token_id, **sampling
    )
    new = out[:, enc["input_ids"].shape[1]:]
    pad = torch.full((new.shape[0], max_new_tokens - new.shape[1]), lm.tokenizer.pad_token_id, dtype=new.dtype)
    return torch.cat([new, pad], dim=1)


def sample_answers(
    lm: LoadedModel,
    questions: Sequence[tuple[str, str]],
    n_samples: int,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    system: str | None = None,
    desc: str = "sampling",
) -> pd.DataFrame:
    """Sample ``n_samples`` answers to each ``(question_id, question)``; one row per answer."""
    if n_samples < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError("n_samples, batch_size and max_new_tokens must be >= 1")
    jobs = [(qid, q, s) for qid, q in questions for s in range(n_samples)]
    stop_ids = _stop_ids(lm)
    rows: list[Answer] = []
    for b, start in enumerate(tqdm(range(0, len(jobs), batch_size), desc=desc, unit="batch")):
        batch = jobs[start:start + batch_size]
        torch.manual_seed(seed * 1_000_003 + b)
        new = generate_batch(lm, [lm.chat_text(q, system) for _, q, _ in batch], max_new_tokens, temperature, top_p)
        lengths, finished = _answer_lengths(new, stop_ids)
        for (qid, q, s), row, n, done in zip(batch, new, lengths, finished):
            text = lm.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
            rows.append(Answer(qid, q, s, text, n, done))
    return pd.DataFrame([asdict(r) for r in rows])


def greedy_padding_check(lm: LoadedModel, texts: Sequence[str], max_new_tokens: int) -> list[bool]:
    """For each prompt: are its greedy tokens in a left-padded batch the same as when run alone?"""
    batched = generate_batch(lm, texts, max_new_tokens, temperature=0.0)
    return [torch.equal(batched[i], generate_batch(lm, [t], max_new_tokens, temperature=0.0)[0])
            for i, t in enumerate(texts)]
