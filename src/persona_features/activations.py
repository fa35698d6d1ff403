"""Reading the residual stream with nnsight."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

from .models import LoadedModel


@torch.inference_mode()
def residual_stream(lm: LoadedModel, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of every decoder layer, ``[n_layers, batch, seq, d_model]``, and the attention mask ``[batch, seq]``.

    Batches are left-padded; the mask marks real tokens.
    """
    enc = lm.encode(texts)
    with lm.nn.trace(enc):
        outputs = list().save()
        for layer in lm.layers:
            outputs.append(layer.output)
    return torch.stack(outputs).float(), enc["attention_mask"]


@dataclass(frozen=True)
class ResidualNorms:
    """Per-prompt residual-stream L2 norms, each ``[n_prompts, n_layers]``."""

    first_token: torch.Tensor  # the prompt's first token (often an "attention sink" with a huge norm)
    other_tokens: torch.Tensor  # mean over the prompt's remaining tokens


def residual_norms(lm: LoadedModel, texts: Sequence[str], batch_size: int = 8) -> ResidualNorms:
    """L2 norm of every layer's output: at each prompt's first token, and averaged over the rest."""
    first, rest = [], []
    for start in tqdm(range(0, len(texts), batch_size), desc="tracing", unit="batch"):
        acts, mask = residual_stream(lm, texts[start:start + batch_size])
        norms = acts.norm(dim=-1)  # [n_layers, batch, seq]
        first_pos = mask.argmax(dim=-1)  # left padding: first real token
        rows = torch.arange(mask.shape[0])
        first.append(norms[:, rows, first_pos].T)
        others = mask.clone()
        others[rows, first_pos] = 0
        rest.append(((norms * others).sum(-1) / others.sum(-1)).T)
    return ResidualNorms(torch.cat(first), torch.cat(rest))
