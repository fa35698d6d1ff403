"""Reading the residual stream with nnsight.

- ``residual_stream``: every layer's output for a batch of texts (chapter 1).
- ``layer_activations``: one layer's output on chosen tokens of (prompt, answer) pairs, with the
  forward pass stopped after that layer. Token 0 (an attention sink with a norm near 25,000) and
  special tokens are never returned.
- ``layer_means``: the mean output of every layer over the prompt tokens and over the answer tokens
  of each group of pairs (chapter 4's readings of a model).
- ``stream_to_shards``: the same for a whole corpus, written to safetensors shards so memory stays
  bounded; ``read_shards`` reads them back.
- ``repeated_prefix_lengths``: how many leading tokens of each pair repeat another pair's start
  (the chat template's default system prompt, a question asked twice). Their activations are
  copies, so a corpus keeps each such prefix once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import DynamicCache

from persona_features.lm.generation import pad_left, shareable_prefix
from persona_features.lm.models import LoadedModel, to_host

WHICH = ("prompt", "answer", "all")


@torch.inference_mode()
def residual_stream(lm: LoadedModel, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs of every decoder layer, ``[n_layers, batch, seq, d_model]``, and the attention mask ``[batch, seq]``,
    on the model's device.

    Batches are left-padded; the mask marks real tokens.
    """
    enc = lm.encode(texts)
    with lm.nn.trace(enc):
        outputs = list().save()  # type: ignore[attr-defined]  # nnsight's traced list
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
        rows = torch.arange(mask.shape[0], device=mask.device)
        first.append(norms[:, rows, first_pos].T)
        others = mask.clone()
        others[rows, first_pos] = 0
        rest.append(((norms * others).sum(-1) / others.sum(-1)).T)
    return ResidualNorms(to_host(torch.cat(first)), to_host(torch.cat(rest)))


def _pair_ids(lm: LoadedModel, prompts: Sequence[str], answers: Sequence[str]) -> tuple[list, list]:
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers")
    tok = lm.tokenizer
    return (tok(list(prompts), add_special_tokens=False)["input_ids"],
            tok(list(answers), add_special_tokens=False)["input_ids"])


def repeated_prefix_lengths(lm: LoadedModel, prompts: Sequence[str], answers: Sequence[str]) -> list[int]:
    """For each (prompt, answer) pair, how many of its leading tokens repeat the start of another pair.

    The residual stream at a token depends only on the tokens up to it, so those activations are
    copies. Sorted lexicographically, a pair shares its longest repeated start with the pair just
    before it; the first pair of each sorted run keeps the shared start (0 for it), so every distinct
    prefix is counted once.
    """
    p_ids, a_ids = _pair_ids(lm, prompts, answers)
    ids = [p + a for p, a in zip(p_ids, a_ids)]
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    repeated = [0] * len(ids)
    for before, i in zip(order, order[1:]):
        a, b = ids[before], ids[i]
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        repeated[i] = n
    return repeated


def token_batch(lm: LoadedModel, prompts: Sequence[str], answers: Sequence[str], which: str,
                skip: Sequence[int] | None = None):
    """Left-padded ids and mask of prompt + answer, and the mask of the tokens to keep ``[batch, seq]``, on the
    model's device.

    ``skip[i]``: leading tokens of pair ``i`` never kept (``repeated_prefix_lengths``).
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {', '.join(WHICH)}, got {which!r}")
    if skip is not None and len(skip) != len(prompts):
        raise ValueError(f"skip has {len(skip)} entries for {len(prompts)} pairs")
    tok = lm.tokenizer
    p_ids, a_ids = _pair_ids(lm, prompts, answers)
    width = max(len(p) + len(a) for p, a in zip(p_ids, a_ids))
    ids = torch.full((len(p_ids), width), tok.pad_token_id)
    mask = torch.zeros((len(p_ids), width), dtype=torch.long)
    keep = torch.zeros((len(p_ids), width), dtype=torch.bool)
    special = torch.tensor(sorted(set(tok.all_special_ids)))
    for i, (p, a) in enumerate(zip(p_ids, a_ids)):
        start, n_p = width - len(p) - len(a), len(p)
        ids[i, start:] = torch.tensor(p + a)
        mask[i, start:] = 1
        lo = start + (n_p if which == "answer" else 0)
        hi = width if which != "prompt" else start + n_p
        keep[i, lo:hi] = True
        keep[i, start:start + max(1, skip[i] if skip is not None else 0)] = False  # token 0: the attention sink
    keep &= ~torch.isin(ids, special)
    return {"input_ids": ids.to(lm.device), "attention_mask": mask.to(lm.device)}, keep.to(lm.device)


class TokenActivations(NamedTuple):
    acts: torch.Tensor  # [n_tokens, d_model], float32
    rows: torch.Tensor  # each token's sequence index within the batch
    ids: torch.Tensor  # its token id
    positions: torch.Tensor  # its position within its own (prompt + answer) tokens


def _check_layer(lm: LoadedModel, layer: int) -> None:
    if not 0 <= layer < lm.n_layers:
        raise ValueError(f"layer must be in 0..{lm.n_layers - 1}, got {layer}")


def _outputs(lm: LoadedModel, layers: Sequence[int], inputs: dict) -> list[torch.Tensor]:
    """The outputs of ``layers`` (ascending) in one trace stopped after the last of them."""
    with lm.nn.trace(**inputs) as tracer:
        outs = list().save()  # type: ignore[attr-defined]  # nnsight's traced list
        for layer in range(layers[-1] + 1):
            if layer in layers:
                outs.append(lm.layers[layer].output)
        tracer.stop()
    return list(outs)


def layer_outputs(lm: LoadedModel, layers: Sequence[int], enc: dict) -> list[torch.Tensor]:
    """Outputs of decoder ``layers`` (ascending), each ``[batch, seq, d_model]`` in the layout of the
    left-padded batch ``enc``; the pass stops after the last of them.

    The start that every row shares (the chat template's opening) is run once, for a batch of one,
    and its key-value cache copied to every row, as the sampler does; positions at padding hold
    nothing meaningful.
    """
    ids, mask = enc["input_ids"], enc["attention_mask"]
    starts = (ids.shape[1] - mask.sum(-1)).tolist()
    rows = [ids[i, s:].tolist() for i, s in enumerate(starts)]
    shared = shareable_prefix(lm, rows)
    if shared == 0:
        return _outputs(lm, layers, enc)
    cache = DynamicCache()
    prefix = _outputs(lm, layers, {"input_ids": torch.tensor([rows[0][:shared]], device=lm.device),
                                   "past_key_values": cache, "use_cache": True})
    cache.batch_repeat_interleave(len(rows))
    own_ids, own_mask = pad_left([r[shared:] for r in rows], shared, lm.tokenizer.pad_token_id, lm.device)
    positions = (own_mask.cumsum(1) - 1).clamp(min=0)[:, shared:]
    own = _outputs(lm, layers, {"input_ids": own_ids, "attention_mask": own_mask, "position_ids": positions,
                                "past_key_values": cache, "use_cache": True})
    out = []
    for pre, rest in zip(prefix, own):  # rest: each row's own tokens right-aligned, like the batch's
        full = torch.zeros(len(rows), ids.shape[1], rest.shape[-1], dtype=rest.dtype, device=rest.device)
        full[:, shared:] = rest
        for i, s in enumerate(starts):
            full[i, s:s + shared] = pre[0]
        out.append(full)
    return out


@torch.inference_mode()
def layer_activations(lm: LoadedModel, layer: int, prompts: Sequence[str], answers: Sequence[str],
                      which: str = "answer", skip: Sequence[int] | None = None) -> TokenActivations:
    """Output of decoder layer ``layer`` on the ``which`` tokens of each (chat prompt, answer) pair.

    ``prompts`` are chat-formatted (``lm.chat_text``); an empty answer keeps only the prompt;
    ``skip`` leaves out leading tokens (``token_batch``). The forward pass stops after ``layer``. On the host.
    """
    _check_layer(lm, layer)
    enc, keep = token_batch(lm, prompts, answers, which, skip)
    out = layer_outputs(lm, [layer], enc)[0]
    rows, cols = keep.nonzero(as_tuple=True)
    starts = keep.shape[1] - enc["attention_mask"].sum(-1)
    return TokenActivations(*map(to_host, (out[rows, cols].float(), rows, enc["input_ids"][rows, cols],
                                           cols - starts[rows])))


@torch.inference_mode()
def layer_means(lm: LoadedModel, layers: Sequence[int], prompts: Sequence[str], answers: Sequence[str],
                groups: Sequence[int], n_groups: int, batch_size: int = 16) -> dict[str, torch.Tensor]:
    """Mean output of each of ``layers`` over the prompt tokens and over the answer tokens of each group.

    Pair ``i`` belongs to group ``groups[i]``. Returns ``prompt`` and ``answer``, each
    ``[n_groups, len(layers), d_model]``, and their token counts ``n_prompt`` and ``n_answer``
    ``[n_groups]``, on the host. Token 0 and special tokens are left out; the pass stops after the last layer.
    """
    for layer in layers:
        _check_layer(lm, layer)
    if not len(prompts) == len(answers) == len(groups):
        raise ValueError(f"{len(prompts)} prompts, {len(answers)} answers and {len(groups)} groups must match")
    order = sorted(layers)
    sums = {w: torch.zeros(n_groups, len(order), lm.d_model, device=lm.device) for w in ("prompt", "answer")}
    counts = {w: torch.zeros(n_groups, device=lm.device) for w in ("prompt", "answer")}
    for start in range(0, len(prompts), batch_size):
        chunk = slice(start, start + batch_size)
        group = torch.tensor(list(groups[chunk]), device=lm.device)
        keep = {}
        for which in ("prompt", "answer"):
            enc, keep[which] = token_batch(lm, prompts[chunk], answers[chunk], which)
        stacked = torch.stack(layer_outputs(lm, order, enc), 1).float()  # [batch, n_layers, seq, d]
        for which, mask in keep.items():
            sums[which].index_add_(0, group, torch.einsum("blsd,bs->bld", stacked, mask.float()))
            counts[which].index_add_(0, group, mask.sum(-1).float())
    index = [order.index(layer) for layer in layers]
    return {**{w: to_host((sums[w] / counts[w].clamp_min(1)[:, None, None])[:, index]) for w in sums},
            **{f"n_{w}": to_host(counts[w]) for w in counts}}


def stream_to_shards(lm: LoadedModel, layer: int, prompts: Sequence[str], answers: Sequence[str], folder: Path,
                     which: str = "answer", batch_size: int = 16, shard_tokens: int = 65536,
                     skip: Sequence[int] | None = None) -> dict:
    """``layer_activations`` over a whole corpus, written to ``folder/shard_NNNNN.safetensors``.

    Each shard holds ``acts`` [n, d_model] (float16), ``seq`` (the pair's index in the corpus),
    ``token`` (its id) and ``pos`` (its position in the pair's tokens), at most ``shard_tokens`` rows; at most one
    shard is held in memory. Pairs are processed in order of their length in tokens, so that batches pad little.
    """
    folder.mkdir(parents=True, exist_ok=True)
    p_ids, a_ids = _pair_ids(lm, prompts, answers)
    order = sorted(range(len(prompts)), key=lambda i: len(p_ids[i]) + len(a_ids[i]))
    pending: list[tuple[torch.Tensor, ...]] = []
    n_pending, n_shards, n_tokens = 0, 0, 0

    def flush(limit: int) -> None:
        nonlocal pending, n_pending, n_shards
        acts, *index = (torch.cat(x) for x in zip(*pending))
        for start in range(0, limit, shard_tokens):
            end = min(start + shard_tokens, limit)
            save_file({"acts": acts[start:end].half().contiguous(),
                       **{k: v[start:end].int().contiguous() for k, v in zip(("seq", "token", "pos"), index)}},
                      folder / f"shard_{n_shards:05d}.safetensors")
            n_shards += 1
        pending = [(acts[limit:], *(v[limit:] for v in index))] if limit < len(acts) else []
        n_pending = len(acts) - limit

    for start in tqdm(range(0, len(order), batch_size), desc=f"activations, layer {layer}", unit="batch"):
        idx = order[start:start + batch_size]
        acts, rows, token, pos = layer_activations(lm, layer, [prompts[i] for i in idx], [answers[i] for i in idx],
                                                   which, None if skip is None else [skip[i] for i in idx])
        if not torch.isfinite(acts.half()).all():
            raise ValueError(f"layer {layer} activations overflow float16; store them as float32 instead")
        pending.append((acts, torch.tensor(idx)[rows], token, pos))
        n_pending += len(acts)
        n_tokens += len(acts)
        if n_pending >= shard_tokens:
            flush(n_pending - n_pending % shard_tokens)
    if n_pending:
        flush(n_pending)
    return {"n_tokens": n_tokens, "n_shards": n_shards, "n_sequences": len(prompts), "layer": layer, "which": which}


def read_shards(folder: Path) -> Iterator[dict[str, torch.Tensor]]:
    """The shards of ``stream_to_shards`` in order, activations as float32."""
    paths = sorted(folder.glob("shard_*.safetensors"))
    if not paths:
        raise FileNotFoundError(f"no activation shards in {folder}")
    for path in paths:
        shard = load_file(path)
        yield {**shard, "acts": shard["acts"].float()}
