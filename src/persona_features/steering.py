"""Steering along a direction of the residual stream, with nnsight (chapter 4's causal screen, chapter 5).

A :class:`Steer` edits one decoder layer's output at every position of every sequence, prompt and
answer alike: it adds ``strength`` times the unit direction, or projects the direction out
(``ablate``), or both. ``steered_forward`` applies it inside an nnsight trace of each forward
pass, in the form the sampler takes (``generation.generate_batch(..., forward=...)``), so steered
sampling keeps the sampler's speed. ``steered_logprobs`` scores fixed answers under a steer, in the
form the contrast takes (``contrast.contrast_table(..., logprobs=...)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .activations import token_batch
from .generation import Forward
from .models import LoadedModel


@dataclass(frozen=True)
class Steer:
    layer: int
    direction: torch.Tensor  # [d_model]; only its direction matters
    strength: float = 0.0  # added along the unit direction, in the residual stream's units
    ablate: bool = False  # project the direction out first

    def __post_init__(self):
        if self.direction.ndim != 1 or not torch.isfinite(self.direction).all() or self.direction.norm() == 0:
            raise ValueError("direction must be a finite, non-zero vector [d_model]")

    @property
    def unit(self) -> torch.Tensor:
        return self.direction.float() / self.direction.float().norm()

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        u = self.unit.to(h.dtype)
        if self.ablate:
            h = h - (h @ u)[..., None] * u
        return h + self.strength * u


def random_direction(d_model: int, seed: int) -> torch.Tensor:
    """A unit direction drawn uniformly from the sphere: the control of a steering experiment."""
    v = torch.randn(d_model, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def steered_forward(lm: LoadedModel, steer: Steer) -> Forward:
    """The model's forward pass, keyword inputs to logits, with ``steer`` applied through nnsight."""
    if not 0 <= steer.layer < lm.n_layers:
        raise ValueError(f"layer must be in 0..{lm.n_layers - 1}, got {steer.layer}")
    if steer.direction.shape[0] != lm.d_model:
        raise ValueError(f"direction has {steer.direction.shape[0]} dimensions; the model has {lm.d_model}")

    def forward(**inputs) -> torch.Tensor:
        with lm.nn.trace(**inputs):
            lm.layers[steer.layer].output = steer.apply(lm.layers[steer.layer].output)
            logits = lm.nn.output.logits.save()
        return logits

    return forward


def steered_logprobs(steer: Steer):
    """Mean per-token log-probability of each answer given its chat prompt, with ``steer`` applied."""

    @torch.inference_mode()
    def logprobs(lm: LoadedModel, prompts, answers, batch_size: int = 16) -> list[float]:
        out = []
        for start in range(0, len(prompts), batch_size):
            enc, keep = token_batch(lm, prompts[start:start + batch_size], answers[start:start + batch_size], "answer")
            with lm.nn.trace(enc) as tracer:
                lm.layers[steer.layer].output = steer.apply(lm.layers[steer.layer].output)
                hidden = lm.nn.model.norm.output.save()
                tracer.stop()  # the head runs below, on the scored positions only
            rows, cols = keep[:, 1:].nonzero(as_tuple=True)  # position t predicts token t + 1
            logits = lm.hf.lm_head(hidden[rows, cols]).float()
            lp = torch.log_softmax(logits, -1).gather(-1, enc["input_ids"][rows, cols + 1, None])[:, 0]
            sums = torch.zeros(len(keep)).index_add_(0, rows, lp)
            out += (sums / torch.bincount(rows, minlength=len(keep)).clamp_min(1)).tolist()
        return out

    return logprobs
