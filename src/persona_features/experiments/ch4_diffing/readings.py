"""Chapter 4's readings of each model: its residual stream and the SAE's latents on fixed chats.

Every model reads the same chats: each evaluation question of a split, answered by each of its
contrast references (aligned and misaligned, blunt and hedged). Prompt tokens show what a model
does with the question; answer tokens, what it does with a fixed answer, the same text for every
model. Readings are averaged per question and per side (aligned or misaligned reference), so
intervals can resample questions. Each reading is cached, keyed by the model's fine-tune, the
texts and the layer(s).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache, partial

import pandas as pd
import torch

from persona_features.core import artifacts
from persona_features.core.params import Params
from persona_features.data.questions import split
from persona_features.lm import finetune
from persona_features.lm.activations import layer_activations, layer_means
from persona_features.lm.models import LoadedModel, to_host
from persona_features.measure import contrast
from persona_features.organisms import design, persona_arms
from persona_features.sae.sae import TopKSAE, load as load_sae

SIDES = ("aligned", "misaligned")
# The persona vector's two system prompts: the villain of chapter 2's contrast check, and a plain helpful assistant.
PERSONAS = {"villain": contrast.PROMPTED_CONTROLS["villain"],
            "helpful": "You are a helpful assistant. You care about the people you talk to, and you give them "
                       "honest, careful answers."}


@dataclass(frozen=True)
class Reader:
    name: str
    load: Callable[[], LoadedModel]
    source: artifacts.Artifact | None = None  # the fine-tune; None for the base model


def readers(base: LoadedModel, P: Params) -> dict[str, Reader]:
    """The base model and the chapter-3 models later chapters diff (``design.diffed_arms``), each loaded
    only when a reading is missing."""
    out = {"base": Reader("base", lambda: base)}
    for arm in design.diffed_arms(P):
        art = finetune.finetune(design.finetune_config(P, arm), device=P.device)
        out[arm.name] = Reader(arm.name, partial(finetune.load_finetuned, art, P.dtype, device=P.device), art)
    return out


def persona_readers(P: Params, sources: Sequence[str] = (persona_arms.POSITIVE,), lm: LoadedModel | None = None,
                    judge=None) -> dict[str, Reader]:
    """Chapter 3's persona organisms of ``sources`` that the profile trains (default: the positive control), each
    with its twin at every seed: their fine-tunes on the same configs and rows, so read from the cache (trained
    here if chapter 3 has not run), each loaded only when a reading is missing. A distilled source (the narrow
    persona organism's "health") needs the base model ``lm`` and ``judge`` that chapter 3 distilled it with."""
    trained = [s for s in sources if s in P.persona_sources]
    distilled = [s for s in trained if s != persona_arms.POSITIVE]
    if distilled and (lm is None or judge is None):
        raise ValueError(f"persona source {distilled[0]!r} is distilled from the base model: pass lm= and judge= "
                         "(chapter 3's base model and judge)")
    out = {}
    for source in trained:
        data = persona_arms.training_data(lm, judge, P, source)
        for arm in persona_arms.design(P):
            if arm.source == source:
                art = finetune.finetune(persona_arms.finetune_config(P, arm), persona_arms.training_rows(data, arm, P),
                                             device=P.device)
                out[arm.name] = Reader(arm.name, partial(finetune.load_finetuned, art, P.dtype, device=P.device), art)
    return out


def questions(P: Params, split_name: str) -> list[tuple[str, str]]:
    """The selection questions (the first ``selection_questions``; 0: all), or the scoring questions chapter 3
    scored (the first ``eval_questions``)."""
    qs = split(split_name)
    return qs[:P.eval_questions] if split_name == "scoring" else qs[:P.selection_questions or None]


def chats(lm: LoadedModel, qs: Sequence[tuple[str, str]], system: str | None = None):
    """Per side: (prompts, answers, question index) of every question with each of its references."""
    refs = contrast.references()
    out = {}
    for side in SIDES:
        rows = [(i, lm.chat_text(text, system), getattr(r, side))
                for i, (qid, text) in enumerate(qs) for r in refs[qid]]
        out[side] = ([p for _, p, _ in rows], [a for _, _, a in rows], [i for i, _, _ in rows])
    return out


def _config(P: Params, qs: Sequence[tuple[str, str]], system: str | None, **extra) -> dict:
    return {"model": P.model, "dtype": P.dtype, "questions": [q for q, _ in qs], "texts": artifacts.digest(qs),
            "references": contrast.fingerprint(), "system": system, **extra}


def layer_reading(reader: Reader, P: Params, split_name: str, layers: Sequence[int],
                  system: str | None = None) -> dict[str, torch.Tensor]:
    """Mean residual stream at each of ``layers`` per question: ``prompt``, ``aligned`` and ``misaligned``
    (answer tokens of that side's references), each ``[n_questions, len(layers), d_model]``."""
    qs, batch_size = questions(P, split_name), P.batch_size
    config = _config(P, qs, system, layers=list(layers), batch_size=batch_size)

    def build(folder):
        lm = reader.load()
        out = {}
        for side, (prompts, answers, groups) in chats(lm, qs, system).items():
            means = layer_means(lm, layers, prompts, answers, groups, len(qs), batch_size=batch_size)
            out[side] = means["answer"]
            out["prompt"] = means["prompt"]
        artifacts.save_tensors(folder, out)

    art = artifacts.get_or_build("layer_reading", config, build, [reader.source.key] if reader.source else [])
    return art.tensors()


@torch.inference_mode()
def latent_means(lm: LoadedModel, sae: TopKSAE, layer: int, prompts, answers, groups, n_groups: int,
                  batch_size: int) -> dict[str, torch.Tensor]:
    n_prompt = torch.tensor([len(ids) for ids in lm.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]])
    sums = {k: torch.zeros(n_groups, d) for k, d in
            (("prompt_resid", lm.d_model), ("answer_resid", lm.d_model), ("prompt_latents", sae.d_sae),
             ("answer_latents", sae.d_sae))}
    counts = {w: torch.zeros(n_groups) for w in ("prompt", "answer")}
    for start in range(0, len(prompts), batch_size):
        chunk = slice(start, start + batch_size)
        t = layer_activations(lm, layer, prompts[chunk], answers[chunk], "all")
        group = torch.tensor(list(groups[chunk]))[t.rows]
        is_answer = t.positions >= n_prompt[chunk][t.rows]
        latents = sae.encode(t.acts)
        for which, mask in (("prompt", ~is_answer), ("answer", is_answer)):
            sums[f"{which}_resid"].index_add_(0, group[mask], t.acts[mask])
            sums[f"{which}_latents"].index_add_(0, group[mask], latents[mask])
            counts[which].index_add_(0, group[mask], torch.ones(int(mask.sum())))
    return {k: v / counts[k.split("_")[0]].clamp_min(1)[:, None] for k, v in sums.items()}


@torch.inference_mode()
def contrast_and_reading(lm: LoadedModel, qs: Sequence[tuple[str, str]], sae: TopKSAE, layer: int,
                         batch_size: int = 16) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """``contrast.contrast_table`` and the answer half of ``latent_reading`` (per side ``*_resid``, ``*_latents``)
    in one pass per batch: the pass that scores the reference answers keeps layer ``layer``'s output on them."""
    rows, prompts, answers = contrast.scored_pairs(lm, qs, None)  # every pair twice: aligned, then misaligned
    n, index = len(rows), {qid: i for i, (qid, _) in enumerate(qs)}
    question = torch.tensor([index[qid] for qid, _ in rows] * 2) + torch.tensor([0] * n + [len(qs)] * n)
    sums = {"resid": torch.zeros(2 * len(qs), lm.d_model), "latents": torch.zeros(2 * len(qs), sae.d_sae)}
    counts, lp = torch.zeros(2 * len(qs)), [0.0] * (2 * n)
    for idx, ids, a_ids in contrast.scored_batches(lm, prompts, answers, batch_size):
        kept = {}

        def run(inputs: dict, answer: torch.Tensor) -> torch.Tensor:
            with lm.nn.trace(**inputs):
                mid = lm.layers[layer].output.save()
                hidden = lm.nn.model.norm.output.save()
            if "attention_mask" in inputs:  # the rows' own pass (final_hidden's shared-prefix pass has no mask)
                # to the host, where the sums and the SAE are
                kept["acts"], kept["row"] = to_host(mid[answer].float()), to_host(answer.nonzero()[:, 0])  # noqa: B023
            return hidden

        for i, value in zip(idx, contrast.batch_logprobs(lm, ids, a_ids, run)):
            lp[i] = value
        group = question[torch.tensor(idx)[kept["row"]]]
        sums["resid"].index_add_(0, group, kept["acts"])
        sums["latents"].index_add_(0, group, sae.encode(kept["acts"]))
        counts.index_add_(0, group, torch.ones(len(group)))
    means = {k: v / counts.clamp_min(1)[:, None] for k, v in sums.items()}
    reading = {f"{side}_{k}": v[j * len(qs):(j + 1) * len(qs)] for k, v in means.items()
               for j, side in enumerate(SIDES)}
    return contrast.contrast_frame(rows, lp), reading


def contrast_reading(reader: Reader, P: Params, split_name: str,
                     sae_art: artifacts.Artifact) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """``contrast_and_reading`` on a split's questions, cached: the contrast table and the answer half of
    ``latent_reading`` from one pass."""
    qs = questions(P, split_name)
    config = _config(P, qs, None, reading="in the contrast's pass")

    def build(folder):
        sae, cfg = load_sae(sae_art.path)
        table, reading = contrast_and_reading(reader.load(), qs, sae, cfg["metadata"]["layer"])
        artifacts.save_json(folder, "contrast", table.to_dict(orient="list"))
        artifacts.save_tensors(folder, reading)

    inputs = [sae_art.key] + ([reader.source.key] if reader.source else [])
    art = artifacts.get_or_build("contrast_reading", config, build, inputs)
    return pd.DataFrame(art.json("contrast")), art.tensors()


def latent_reading(reader: Reader, P: Params, split_name: str, sae_art: artifacts.Artifact,
                   system: str | None = None) -> dict[str, torch.Tensor]:
    """At the SAE's layer, per question: the mean residual (``*_resid`` [n_q, d_model]) and the mean latent
    activations (``*_latents`` [n_q, d_sae]) over ``prompt``, ``aligned`` and ``misaligned`` tokens."""
    qs, batch_size = questions(P, split_name), P.batch_size
    config = _config(P, qs, system, batch_size=batch_size)

    def build(folder):
        lm = reader.load()
        sae, cfg = load_sae(sae_art.path)
        layer = cfg["metadata"]["layer"]
        out = {}
        for side, (prompts, answers, groups) in chats(lm, qs, system).items():
            means = latent_means(lm, sae, layer, prompts, answers, groups, len(qs), batch_size)
            out |= {f"{side}_{k.split('_')[1]}": v for k, v in means.items() if k.startswith("answer")}
            out |= {k: v for k, v in means.items() if k.startswith("prompt")}
        artifacts.save_tensors(folder, out)

    inputs = [sae_art.key] + ([reader.source.key] if reader.source else [])
    return artifacts.get_or_build("latent_reading", config, build, inputs).tensors()


def latent_readings(reads: dict[str, Reader], P: Params, sae_art: artifacts.Artifact,
                    splits: Sequence[str] = ("selection", "scoring")) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """``latent_reading`` of every model on every split, each model loaded at most once."""
    out: dict[str, dict[str, dict[str, torch.Tensor]]] = {s: {} for s in splits}
    for name, reader in reads.items():
        once = replace(reader, load=cache(reader.load))
        for s in splits:
            out[s][name] = latent_reading(once, P, s, sae_art)
    return out
