"""A TopK sparse autoencoder on one layer's residual stream, written for this book.

Encoder and decoder follow the TopK design of Gao et al. (2024): ``z = TopK(ReLU((x - b_dec) W_enc +
b_enc))`` keeps the ``k`` largest pre-activations, and ``x_hat = z W_dec + b_dec``. Training adds
their auxiliary loss (the residual error reconstructed from the latents that have not fired for a
while), which keeps latents from dying. Decoder rows are kept at unit norm.

Activations are scaled to a mean squared norm of ``d_in`` during training; the scale is folded back
into the weights before saving, so the saved SAE reads raw activations. It is saved in SAELens's
on-disk layout (``cfg.json`` and ``sae_weights.safetensors`` with ``W_enc`` [d_in, d_sae], ``b_enc``,
``W_dec`` [d_sae, d_in], ``b_dec``; ``architecture: "topk"``), so a reader can load it with that
tool; this module needs no SAE library.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from persona_features.core import artifacts
from persona_features.core.params import Params
from persona_features.lm.activations import read_shards, repeated_prefix_lengths, stream_to_shards, token_batch
from persona_features.lm.models import LoadedModel, in_dtype, resolve_dtype
from persona_features.sae import sae_corpus

SAE_LENS_VERSION = "6.12.0"  # the layout version our cfg.json follows


@dataclass(frozen=True)
class SAEConfig:
    d_in: int
    d_sae: int
    k: int
    # On chapter 4's cpu corpus (about 200 steps), 4e-4 left the decoder at median cosine 0.87 with its random
    # start (held-out FVU 0.24); 4e-3 gave FVU 0.16 (cosine 0.26); 1e-2 FVU 0.21 with 30% of latents dead.
    lr: float = 4e-3
    batch_tokens: int = 4096
    epochs: int = 4
    aux_k: int = 256  # latents used by the auxiliary loss
    aux_coeff: float = 1 / 32
    dead_after_tokens: int = 200_000  # a latent silent this long counts as dead for the auxiliary loss
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.k < self.d_sae:
            raise ValueError(f"k must be between 1 and d_sae - 1 ({self.d_sae - 1}), got {self.k}")
        if self.d_sae < self.d_in:
            raise ValueError(f"d_sae ({self.d_sae}) should be at least d_in ({self.d_in})")


class TopKSAE(torch.nn.Module):
    def __init__(self, d_in: int, d_sae: int, k: int):
        super().__init__()
        self.d_in, self.d_sae, self.k = d_in, d_sae, k
        self.W_enc = torch.nn.Parameter(torch.empty(d_in, d_sae))
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.W_dec = torch.nn.Parameter(torch.empty(d_sae, d_in))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, d_in] -> [n, d_sae]``, before the TopK."""
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Sparse latent activations ``[n, d_sae]``: at most ``k`` non-zero per row."""
        pre = self.pre_acts(x)
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, top.indices, top.values)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)  # type: ignore[misc]


def _batches(shards: Iterable[dict[str, torch.Tensor]], batch_tokens: int, generator: torch.Generator):
    """Shuffled batches of activations, shard by shard (one shard in memory at a time)."""
    for shard in shards:
        acts = shard["acts"]
        perm = torch.randperm(len(acts), generator=generator)
        for start in range(0, len(acts) - batch_tokens // 2, batch_tokens):  # drop a tiny tail
            yield acts[perm[start:start + batch_tokens]]


def activation_scale(shards: Iterable[dict[str, torch.Tensor]]) -> tuple[float, torch.Tensor]:
    """The scale that gives activations a mean squared norm of ``d_in``, and their mean (``b_dec``'s start)."""
    total: torch.Tensor | None = None
    sq, n = 0.0, 0
    for shard in shards:
        a = shard["acts"]
        total = a.sum(0) if total is None else total + a.sum(0)
        sq += float((a ** 2).sum())
        n += len(a)
    if total is None:
        raise ValueError("no activations to scale: the shards are empty")
    d_in = total.shape[0]
    return (d_in * n / sq) ** 0.5, total / n


CURVE_EVERY = 20  # training steps between two points of the training curve


def _sparse_forward(sae: TopKSAE, x: torch.Tensor, k: int):
    """TopK indices, their activations (with gradient) and the reconstruction of ``x``.

    The decoder reads only the ``k`` chosen latents of each row (a weighted bag of decoder rows),
    so a step costs two dense products (encoder forward and backward) instead of five.
    """
    pre = sae.pre_acts(x)
    top = pre.topk(k, dim=-1)
    x_hat = torch.nn.functional.embedding_bag(top.indices, sae.W_dec, per_sample_weights=top.values, mode="sum")
    return top.indices, top.values, x_hat + sae.b_dec


def _aux_loss(sae: TopKSAE, x: torch.Tensor, err: torch.Tensor, dead: torch.Tensor, aux_k: int) -> torch.Tensor:
    """How well the top ``aux_k`` dead latents reconstruct the error ``err``, relative to its size."""
    pre = torch.relu((x - sae.b_dec).detach() @ sae.W_enc[:, dead] + sae.b_enc[dead])
    top = pre.topk(min(aux_k, len(dead)), dim=-1)
    recon = torch.nn.functional.embedding_bag(top.indices, sae.W_dec[dead], per_sample_weights=top.values, mode="sum")
    return ((err - recon) ** 2).sum(-1).mean() / (err ** 2).sum(-1).mean()


def initial_decoder(cfg: SAEConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """The decoder ``train`` starts from: random unit rows ``[d_sae, d_in]`` drawn from ``cfg.seed``."""
    g = generator or torch.Generator().manual_seed(cfg.seed)
    w = torch.randn(cfg.d_sae, cfg.d_in, generator=g)
    return w / w.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def train(shards_fn, cfg: SAEConfig, desc: str = "training SAE") -> tuple[TopKSAE, list[dict]]:
    """Train a TopK SAE on the shards that ``shards_fn()`` yields (called once per pass).

    Returns the SAE (reading raw activations) and a curve of metrics every ``CURVE_EVERY`` steps.
    """
    g = torch.Generator().manual_seed(cfg.seed)
    scale, mean = activation_scale(shards_fn())
    sae = TopKSAE(cfg.d_in, cfg.d_sae, cfg.k)
    with torch.no_grad():
        sae.W_dec.copy_(initial_decoder(cfg, g))
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_dec.copy_(mean * scale)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    since_fired = torch.zeros(cfg.d_sae)
    curve, step = [], 0
    n_steps = None
    for epoch in range(cfg.epochs):
        bar = tqdm(_batches(shards_fn(), cfg.batch_tokens, g), desc=f"{desc}, pass {epoch + 1}/{cfg.epochs}",
                   unit="batch", total=n_steps)
        count = 0
        for x in bar:
            x = x * scale
            indices, values, x_hat = _sparse_forward(sae, x, cfg.k)
            err = x - x_hat
            loss = (err ** 2).sum(-1).mean() / (x - x.mean(0)).pow(2).sum(-1).mean()
            fired = torch.zeros(cfg.d_sae, dtype=torch.bool)
            fired[indices[values > 0].unique()] = True
            since_fired = torch.where(fired, 0.0, since_fired + len(x))
            dead = since_fired > cfg.dead_after_tokens
            aux = _aux_loss(sae, x, err.detach(), dead.nonzero()[:, 0], cfg.aux_k) if dead.any() else torch.zeros(())
            opt.zero_grad()
            (loss + cfg.aux_coeff * aux).backward()
            opt.step()
            sae.normalize_decoder()
            step += 1
            count += 1
            if step % CURVE_EVERY == 0:
                curve.append({"step": step, "fvu": loss.item(), "aux": aux.item(),
                              "dead_fraction": dead.float().mean().item()})
                bar.set_postfix(fvu=f"{loss.item():.3f}", dead=f"{dead.float().mean().item():.2f}")
        n_steps = count
    with torch.no_grad():  # fold the scale back: the saved SAE reads raw activations
        sae.W_enc.mul_(scale)
        sae.b_dec.div_(scale)
        sae.W_dec.div_(scale)
    return sae, curve


# ---------------------------------------------------------------- quality on held-out tokens

@torch.inference_mode()
def quality(sae: TopKSAE, shards: Iterable[dict[str, torch.Tensor]], batch_tokens: int = 8192) -> dict:
    """Fraction of variance unexplained, mean L0, and the fraction of latents never active, on ``shards``."""
    sq_err, n, l0 = 0.0, 0, 0.0
    total: torch.Tensor | None = None
    total_sq = 0.0
    ever = torch.zeros(sae.d_sae, dtype=torch.bool)
    for shard in shards:
        for start in range(0, len(shard["acts"]), batch_tokens):
            x = shard["acts"][start:start + batch_tokens]
            z = sae.encode(x)
            sq_err += float(((x - sae.decode(z)) ** 2).sum())
            l0 += float((z > 0).sum())
            ever |= (z > 0).any(0)
            total = x.sum(0) if total is None else total + x.sum(0)
            total_sq += float((x ** 2).sum())
            n += len(x)
    if total is None:
        raise ValueError("no activations to measure: the shards are empty")
    variance = total_sq - float((total ** 2).sum()) / n
    return {"fvu": sq_err / variance, "l0": l0 / n, "dead_fraction": float((~ever).float().mean()), "n_tokens": n}


@torch.inference_mode()
def ce_loss_recovered(lm: LoadedModel, sae: TopKSAE, layer: int, prompts: Sequence[str], answers: Sequence[str],
                      which: str = "all", batch_size: int = 16, skip: Sequence[int] | None = None) -> dict:
    """Next-token loss with the layer's output replaced by the SAE's reconstruction, against the clean
    model and against zero-ablation, on the ``which`` tokens (token 0 and special tokens untouched;
    ``skip`` leaves out repeated leading tokens, as in ``token_batch``).

    The spliced and zero-ablated passes skip the layers below ``layer`` (nnsight's ``skip``), reusing
    the clean pass's residual stream; the head runs on the scored positions only.
    ``recovered`` = (zero - spliced) / (zero - clean): 1 means the SAE loses nothing.
    """
    # the SAE reads the layer's output where the model computes (a copy: ``sae`` stays where it trained)
    on_model = sae if sae.W_dec.device == lm.device else copy.deepcopy(sae).to(lm.device)
    sums = {"clean": 0.0, "spliced": 0.0, "zero": 0.0}
    n = 0
    for start in range(0, len(prompts), batch_size):
        chunk = slice(start, start + batch_size)
        enc, keep = token_batch(lm, prompts[chunk], answers[chunk], which, None if skip is None else skip[chunk])
        scored = keep[:, 1:]  # a kept token's loss is predicted from the position before it
        targets = enc["input_ids"][:, 1:][scored]
        below = None
        for name, replace in (("clean", None), ("spliced", on_model), ("zero", torch.zeros_like)):
            with lm.nn.trace(enc) as tracer:
                if replace is None:
                    below = lm.layers[layer - 1].output.save() if layer > 0 else None
                else:
                    for lower in range(layer):
                        lm.layers[lower].skip(below)
                    h = lm.layers[layer].output
                    lm.layers[layer].output = torch.where(keep[..., None], replace(h), h)
                hidden = lm.nn.model.norm.output.save()
                tracer.stop()
            logits = lm.logits(hidden[:, :-1][scored]).float()
            sums[name] += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
        n += int(scored.sum())
    ce = {k: v / n for k, v in sums.items()}
    return {**ce, "recovered": (ce["zero"] - ce["spliced"]) / (ce["zero"] - ce["clean"]), "n_tokens": n}


@torch.inference_mode()
def top_activations(sae: TopKSAE, shards: Iterable[dict[str, torch.Tensor]], n: int = 8,
                    batch_tokens: int = 4096) -> dict[str, torch.Tensor]:
    """Each latent's ``n`` strongest activations over ``shards`` (``values``, and the ``seq`` and ``pos``
    of their tokens; each ``[n, d_sae]``) and how often it fires (``frequency`` [d_sae])."""
    values = torch.full((n, sae.d_sae), -1.0)
    seq = torch.zeros((n, sae.d_sae), dtype=torch.int32)
    pos = torch.zeros((n, sae.d_sae), dtype=torch.int32)
    fired, total = torch.zeros(sae.d_sae), 0
    for shard in shards:
        for start in range(0, len(shard["acts"]), batch_tokens):
            z = sae.encode(shard["acts"][start:start + batch_tokens])
            fired += (z > 0).sum(0)
            total += len(z)
            here = z.topk(min(n, len(z)), dim=0)  # this batch's best rows per latent, then merge with the kept ones
            rows = slice(start, start + batch_tokens)
            best = torch.cat([values, here.values]).topk(n, dim=0)
            values = best.values
            seq = torch.cat([seq, shard["seq"][rows][here.indices].int()]).gather(0, best.indices)
            pos = torch.cat([pos, shard["pos"][rows][here.indices].int()]).gather(0, best.indices)
    return {"values": values, "seq": seq, "pos": pos, "frequency": fired / max(total, 1)}


def build(lm: LoadedModel, P: Params, corpus: artifacts.Artifact, layer: int,
          seed: int | None = None) -> artifacts.Artifact:
    """The profile's SAE at ``layer``, trained on the corpus's training chats; cached with its quality
    on the held-out chats, each latent's top activations over the whole corpus, and its timings.

    A copy of the model in ``sae_dtype`` streams the activations; within each part (training,
    held-out) a start that several chats share is read once (``repeated_prefix_lengths``). ``seed``: the
    SAE's initialisation and batch order (default: the profile's seed), on the same activations.
    """
    chats = corpus.json("chats")
    n = min(P.sae_chats, len(chats)) if P.sae_chats else len(chats)
    chosen = [round(i * len(chats) / n) for i in range(n)]
    parts = {name: [chosen[i] for i in idx] for name, idx in zip(("train", "heldout"), sae_corpus.split_indices(n))}
    pairs = {name: ([lm.chat_text(chats[i]["user"], chats[i]["system"]) for i in idx],
                    [chats[i]["answer"] for i in idx])
             for name, idx in parts.items()}
    repeated = {name: repeated_prefix_lengths(lm, *pairs[name]) for name in parts}  # each part keeps a prefix once

    dtype = resolve_dtype(P.sae_dtype, P.dtype)

    def stream(folder):
        start = time.perf_counter()
        reader = in_dtype(lm, dtype)
        info = {name: stream_to_shards(reader, layer, *pairs[name], folder / name, which="all", batch_size=16,
                                       skip=repeated[name]) for name in parts}
        return {**info, "seconds": round(time.perf_counter() - start, 1)}

    acts = artifacts.get_or_build("sae_activations", {"model": P.model, "dtype": dtype, "layer": layer,
                                                      "chats": P.sae_chats, "repeated_prefixes": "once",
                                                      "batches": "by length in tokens"}, stream,
                                  [corpus.key])
    cfg = SAEConfig(d_in=lm.d_model, d_sae=P.sae_expansion * lm.d_model, k=P.sae_k, epochs=P.sae_epochs,
                    seed=P.seed if seed is None else seed)
    n_ce, model_name, dtype_ce = P.sae_eval_chats, P.model, P.dtype  # CE recovered runs on lm, in the profile's dtype

    def make(folder):
        start = time.perf_counter()
        sae, curve = train(lambda: read_shards(acts.path / "train"), cfg, desc=f"SAE, layer {layer}")
        seconds = {"train": round(time.perf_counter() - start, 1)}
        start = time.perf_counter()
        held = quality(sae, read_shards(acts.path / "heldout"))
        held["start_cosine"] = float(torch.nn.functional.cosine_similarity(
            sae.W_dec.detach(), initial_decoder(cfg), dim=-1).median())
        ce = ce_loss_recovered(lm, sae, layer, pairs["heldout"][0][:n_ce], pairs["heldout"][1][:n_ce], "all",
                               skip=repeated["heldout"][:n_ce])
        top = {}
        for name, idx in parts.items():  # shard ``seq`` counts within its part; map it to the corpus's chats
            t = top_activations(sae, read_shards(acts.path / name))
            top[name] = {**t, "seq": torch.tensor(idx, dtype=torch.int32)[t["seq"].long()]}
        both = torch.cat([top["train"]["values"], top["heldout"]["values"]]).topk(len(top["train"]["values"]), dim=0)
        merged = {k: torch.cat([top["train"][k], top["heldout"][k]]).gather(0, both.indices) for k in ("seq", "pos")}
        n = {name: acts.meta[name]["n_tokens"] for name in parts}
        frequency = ((top["train"]["frequency"] * n["train"] + top["heldout"]["frequency"] * n["heldout"])
                     / sum(n.values()))
        artifacts.save_tensors(folder, {"values": both.values, **merged, "frequency": frequency}, "top_activations")
        seconds["evaluate"] = round(time.perf_counter() - start, 1)
        save(sae, folder, model_name, layer, {"layer": layer, "training": asdict(cfg)})
        artifacts.save_json(folder, "curve", curve)
        return {"quality": held, "ce": ce, "seconds": {**seconds, "activations": acts.meta["seconds"]},
                "n_tokens": n}

    return artifacts.get_or_build("sae", {**asdict(cfg), "layer": layer, "eval_chats": n_ce, "dtype": dtype_ce}, make,
                                  [acts.key])


# ---------------------------------------------------------------- SAELens layout

def save(sae: TopKSAE, folder: Path, model_name: str, layer: int, extra: dict | None = None) -> None:
    """``cfg.json`` + ``sae_weights.safetensors`` in SAELens's layout."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().float().contiguous() for k, v in sae.state_dict().items()},
              folder / "sae_weights.safetensors")
    cfg = {"architecture": "topk", "d_in": sae.d_in, "d_sae": sae.d_sae, "k": sae.k, "dtype": "float32",
           "device": str(sae.W_dec.device), "apply_b_dec_to_input": True, "normalize_activations": "none",
           "reshape_activations": "none",
           "metadata": {"sae_lens_version": SAE_LENS_VERSION, "model_name": model_name,
                        "hook_name": f"blocks.{layer}.hook_resid_post", "hook_head_index": None,
                        "prepend_bos": True, "exclude_special_tokens": True, **(extra or {})}}
    (folder / "cfg.json").write_text(json.dumps(cfg, indent=2))


def weights_digest(folder: Path) -> str:
    """A fingerprint of a saved SAE's trained weights. The cache key names the inputs and settings, not the CPU's
    arithmetic: the same key trained under AVX2 and under AVX-512 gives weights that differ (decoder cosines near
    0.9), and only this tells them apart."""
    return hashlib.sha256((Path(folder) / "sae_weights.safetensors").read_bytes()).hexdigest()[:16]


def load(folder: Path) -> tuple[TopKSAE, dict]:
    """A saved SAE and its ``cfg.json``; a clear error if the folder is not a TopK SAE."""
    cfg_path, weights = folder / "cfg.json", folder / "sae_weights.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{folder} needs cfg.json and sae_weights.safetensors (SAELens layout)")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("architecture") != "topk":
        raise ValueError(f"{folder}: architecture {cfg.get('architecture')!r}; this loader reads 'topk' only")
    sae = TopKSAE(cfg["d_in"], cfg["d_sae"], cfg["k"])
    sae.load_state_dict(load_file(weights))
    return sae, cfg


def activations_folder(sae_art: artifacts.Artifact) -> Path:
    """The activation shards an SAE artifact was trained (``train``) and evaluated (``heldout``) on."""
    return artifacts.cache_root() / "sae_activations" / sae_art.meta["inputs"][0]


# Issue 11's targets for the SAE, on held-out corpus tokens.
TARGETS = {"fvu": ("FVU (fraction of variance unexplained)", "<=", 0.25),
           "l0": ("L0 (active latents per token)", "<=", 64),
           "dead_fraction": ("dead latents (never active on held-out tokens)", "<=", 0.20),
           "recovered": ("CE loss recovered", ">=", 0.80),
           # Added later: a decoder still near its random start has not learned features, whatever its FVU.
           "start_cosine": ("decoder vectors' median cosine with their random start", "<=", 0.5)}


def quality_table(meta: dict) -> pd.DataFrame:
    """The SAE artifact's quality beside each target, and whether it is met."""
    measured = {**meta["quality"], "recovered": meta["ce"]["recovered"]}
    rows = []
    for key, (name, op, target) in TARGETS.items():
        met = measured[key] <= target if op == "<=" else measured[key] >= target
        rows.append({"measure": name, "value": round(measured[key], 3), "target": f"{op} {target}", "met": met})
    return pd.DataFrame(rows)
