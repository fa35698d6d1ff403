"""Steering along a direction of the residual stream, with nnsight (chapter 4's causal screen, chapter 5).

A :class:`Steer` edits one decoder layer's output: it adds ``strength`` times the unit direction,
or projects the direction out (``ablate``; with ``target``, sets the projection to that value, a
control model's mean, instead of removing it), or both; at every position, or with ``answer_only`` at
the answer's positions alone (while sampling: the forward passes of generated tokens, not the
prompt's). Several steers, at one layer or several, act together. ``steered_forward`` applies
them inside an nnsight trace of each forward pass, in the form the sampler takes
(``generation.generate_batch(..., forward=...)``), so steered sampling keeps the sampler's speed;
``per_question_forward`` gives each question its own steers, so many settings share one batch.
``steered_logprobs`` scores fixed answers under them, in the form the contrast takes
(``contrast.contrast_table(..., logprobs=...)``); ``steered_sweep`` scores them under many settings
at once (``contrast.contrast_tables``), running the layers below the lowest steered one once.

Strengths are in the residual stream's units; chapter 5 gives them as a multiple of the median
residual norm at the layer (``screen.median_norm``), as OpenAI did. A random control direction is a
unit vector drawn uniformly from the sphere and then scaled like the direction it controls for
(scaling ``randn`` by a norm without normalising it first makes it about sqrt(d_model) too long).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby

import pandas as pd
import torch

from persona_features.lm.generation import PROMPT_PASS, Forward
from persona_features.lm.models import LoadedModel
from persona_features.measure.contrast import answer_logprobs_runs
from persona_features.measure.evaluate import evaluate
from persona_features.measure.judge import Judge


@dataclass(frozen=True)
class Steer:
    layer: int
    direction: torch.Tensor  # [d_model]; only its direction matters
    strength: float = 0.0  # added along the unit direction, in the residual stream's units
    ablate: bool = False  # project the direction out first
    target: float = 0.0  # with ``ablate``: the projection left in its place (a control model's mean; 0 removes it)
    answer_only: bool = False  # leave the prompt's positions alone

    def __post_init__(self):
        if self.direction.ndim != 1 or not torch.isfinite(self.direction).all() or self.direction.norm() == 0:
            raise ValueError("direction must be a finite, non-zero vector [d_model]")

    @property
    def unit(self) -> torch.Tensor:
        return self.direction.float() / self.direction.float().norm()

    def apply(self, h: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
        """``h`` [batch, seq, d] edited at every position, or only where the mask ``where`` [batch, seq] is true."""
        u = self.unit.to(h.device, h.dtype)  # the direction may live on the host; ``h`` is where the model is
        edit = self.strength * u - (((h @ u)[..., None] - self.target) * u if self.ablate else 0)
        return h + (edit if where is None else edit * where[..., None].to(h.dtype))


Steers = Steer | Sequence[Steer]


def _by_layer(lm: LoadedModel, steers: Steers) -> list[tuple[int, list[Steer]]]:
    steers = [steers] if isinstance(steers, Steer) else list(steers)
    if not steers:
        raise ValueError("give at least one Steer")
    for s in steers:
        if not 0 <= s.layer < lm.n_layers:
            raise ValueError(f"layer must be in 0..{lm.n_layers - 1}, got {s.layer}")
        if s.direction.shape[0] != lm.d_model:
            raise ValueError(f"direction has {s.direction.shape[0]} dimensions; the model has {lm.d_model}")
    ordered = sorted(steers, key=lambda s: s.layer)  # nnsight edits layers in the order they run
    return [(layer, list(group)) for layer, group in groupby(ordered, key=lambda s: s.layer)]


def _edit(lm: LoadedModel, layers: list[tuple[int, list[Steer]]], answer: torch.Tensor | None) -> None:
    """Inside a trace: apply each layer's steers in turn (``answer``: the answer positions' mask)."""
    for layer, group in layers:
        h = lm.layers[layer].output
        for s in group:
            h = s.apply(h, answer if s.answer_only else None)
        lm.layers[layer].output = h


def random_direction(d_model: int, seed: int) -> torch.Tensor:
    """A unit direction drawn uniformly from the sphere: the control of a steering experiment."""
    v = torch.randn(d_model, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def _traced_logits(lm: LoadedModel, inputs: dict, edits: list[tuple[int, Steer, torch.Tensor | None]]) -> torch.Tensor:
    """Logits of one forward pass with ``edits`` applied: ``(layer, steer, rows)``, sorted by layer;
    ``rows`` [batch] picks the rows a steer edits (``None``: every row)."""
    if not edits:
        return lm.hf(**inputs).logits
    with lm.nn.trace(**inputs):
        for layer, items in groupby(edits, key=lambda e: e[0]):
            h = lm.layers[layer].output
            for _, s, rows in items:
                h = s.apply(h) if rows is None else torch.where(rows[:, None, None], s.apply(h), h)
            lm.layers[layer].output = h
        logits = lm.nn.output.logits.save()
    return logits


def steered_forward(lm: LoadedModel, steers: Steers) -> Forward:
    """The model's forward pass, keyword inputs to logits, with ``steers`` applied through nnsight.

    An ``answer_only`` steer skips the sampler's prompt passes (marked by ``generation.PROMPT_PASS``)
    and edits every generated token's pass.
    """
    layers = _by_layer(lm, steers)

    def forward(**inputs) -> torch.Tensor:
        prompt = PROMPT_PASS in inputs
        return _traced_logits(lm, inputs, [(layer, s, None) for layer, group in layers for s in group
                                           if not (prompt and s.answer_only)])

    return forward


def per_question_forward(lm: LoadedModel, settings: Sequence[Steers | None], groups: Sequence[int]) -> Forward:
    """``steered_forward`` with a setting per question: a row asking question ``i`` gets ``settings[groups[i]]``
    (``None``: unsteered). The sampler passes each row's question (``generation.QUESTION``), so answers
    under many settings are drawn in shared batches."""
    plans = [None if s is None else _by_layer(lm, s) for s in settings]
    index = torch.tensor(list(groups), device=lm.device)  # indexed by the sampler's questions, on that device
    if len(index) and not 0 <= int(index.min()) <= int(index.max()) < len(settings):
        raise ValueError(f"groups must index the {len(settings)} settings, got values {index.min()}..{index.max()}")

    def forward(question: torch.Tensor, **inputs) -> torch.Tensor:
        prompt, setting = PROMPT_PASS in inputs, index[question]
        edits = [(layer, s, setting == k) for k in setting.unique().tolist() if plans[k] is not None
                 for layer, group in plans[k] for s in group if not (prompt and s.answer_only)]
        edits.sort(key=lambda e: e[0])  # stable: each setting's steers keep their order within a layer
        return _traced_logits(lm, inputs, edits)

    forward.groups = index.tolist()  # type: ignore[attr-defined]
    return forward


def evaluate_settings(lm: LoadedModel, questions: Sequence[tuple[str, str]], settings: Mapping[str, Steers | None],
                      n_samples: int, judge: Judge, **sampling) -> pd.DataFrame:
    """``evaluate`` of every question under each named setting (``None``: unsteered), all drawn in shared
    batches (``per_question_forward``); column ``setting``: the setting's name, rows in the settings' order."""
    names = list(settings)
    forward = per_question_forward(lm, list(settings.values()), [k for k in range(len(names)) for _ in questions])
    table = evaluate(lm, [q for _ in names for q in questions], n_samples, judge, forward=forward, **sampling)
    return table.assign(setting=[n for n in names for _ in range(len(questions) * n_samples)])


def steered_logprobs(steers: Steers):
    """Mean per-token log-probability of each answer given its chat prompt, with ``steers`` applied:
    ``steered_sweep`` of this one setting.

    An ``answer_only`` steer edits the answer's positions: those of the tokens a sampler would have
    generated, whose outputs predict the answer's next tokens.
    """
    sweep = steered_sweep([steers])
    return lambda lm, prompts, answers, batch_size=16: sweep(lm, prompts, answers, batch_size)[0]


def steered_sweep(settings: Sequence[Steers | None]):
    """``steered_logprobs`` under each of ``settings`` (``None``: unsteered), computed together: a list
    per setting, in order.

    Per batch, one unsteered pass keeps the residual stream entering the lowest steered layer; each
    setting's pass then skips the layers below it (nnsight's ``skip``), whose output no steer can
    change. The shared prefix's pass runs whole (it fills the key-value cache, and is short).
    """
    def logprobs(lm: LoadedModel, prompts, answers, batch_size: int = 16) -> list[list[float]]:
        plans = [None if s is None else _by_layer(lm, s) for s in settings]
        steered = [p for p in plans if p is not None]
        if not steered:  # nothing to steer: the plain model's scoring, once
            return [answer_logprobs_runs(lm, prompts, answers, [None], batch_size)[0]] * len(plans)
        first = min((p[0][0] for p in steered), default=0)
        kept = {}

        def own_pass(inputs: dict) -> bool:
            return "attention_mask" in inputs  # final_hidden's prefix pass carries no mask

        def plain(inputs: dict, answer: torch.Tensor) -> torch.Tensor:
            with lm.nn.trace(**inputs) as tracer:
                below = lm.layers[first - 1].output.save() if first > 0 else None
                hidden = lm.nn.model.norm.output.save()
                tracer.stop()
            if own_pass(inputs):
                kept["below"] = below
            return hidden

        def steer(layers):
            def run(inputs: dict, answer: torch.Tensor) -> torch.Tensor:
                with lm.nn.trace(**inputs) as tracer:
                    if own_pass(inputs):
                        for layer in range(first):
                            lm.layers[layer].skip(kept["below"])
                    _edit(lm, layers, answer)
                    hidden = lm.nn.model.norm.output.save()
                    tracer.stop()
                return hidden
            return run

        runs = [plain] + [steer(p) for p in steered]
        scored = iter(answer_logprobs_runs(lm, prompts, answers, runs, batch_size))
        unsteered = next(scored)
        return [unsteered if p is None else next(scored) for p in plans]

    return logprobs
