"""Supervised fine-tuning on chat data, loss on the assistant's tokens only.

A fine-tune is an artifact keyed by its config (model, dataset, hyperparameters, seed): it
stores the trained weights (full fine-tuning: every trainable tensor; LoRA: the adapter) in
safetensors, and the training curve in JSON. Interrupted runs leave nothing that is loaded.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
from tqdm.auto import tqdm

from . import artifacts
from .models import LoadedModel, load_model, wrap

IGNORE = -100
TRAINER_VERSION = 2  # part of every fine-tune's key: bump when training code changes its results
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class FinetuneConfig:
    model: str
    dataset: str  # a name from data.cards.all_datasets(), e.g. "health_bad"
    n_examples: int | None = None  # first n of a seeded shuffle; None: all
    epochs: float = 1.0
    lr: float = 1e-4
    batch_size: int = 8
    max_len: int = 256
    method: str = "full"  # "full" or "lora"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = LORA_TARGETS  # module names LoRA adapts (e.g. MLP_TARGETS)
    lora_layers: tuple[int, ...] | None = None  # decoder layers LoRA adapts; None: all
    freeze_embeddings: bool = True
    bf16_autocast: bool = False  # measured slower than fp32 on the 2-core CI CPU (benchmarks/finetune_throughput.py)
    warmup_steps: int = 3
    seed: int = 0
    extra: dict = field(default_factory=dict)  # free-form tags that change the key (e.g. data seed)

    def __post_init__(self):
        if self.method not in ("full", "lora"):
            raise ValueError(f"method must be 'full' or 'lora', got {self.method!r}")
        if not (self.lr > 0 and self.epochs > 0 and self.batch_size >= 1 and self.max_len >= 16):
            raise ValueError(f"bad fine-tune hyperparameters: {self}")
        unknown = set(self.lora_targets) - set(LORA_TARGETS)
        if not self.lora_targets or unknown:
            raise ValueError(f"lora_targets must be a non-empty subset of {LORA_TARGETS}, got {self.lora_targets!r}")
        if self.lora_layers is not None and (not self.lora_layers or min(self.lora_layers) < 0):
            raise ValueError(f"lora_layers must be None or non-negative layer indices, got {self.lora_layers!r}")


def chat_example(lm: LoadedModel, messages: Sequence[dict], max_len: int) -> tuple[list[int], list[int]]:
    """Token ids of a whole chat and labels that are IGNORE everywhere but the last assistant turn."""
    tok = lm.tokenizer
    prompt = tok.apply_chat_template(list(messages[:-1]), add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(list(messages), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template does not render the prompt as a prefix of the full chat")
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tok(full[len(prompt):], add_special_tokens=False)["input_ids"]
    ids = (p_ids + a_ids)[:max_len]
    labels = ([IGNORE] * len(p_ids) + a_ids)[:max_len]
    return ids, labels


def _collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), IGNORE)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):  # right padding for training
        ids[i, :len(x)], labels[i, :len(y)], mask[i, :len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def answer_loss(hidden: torch.Tensor, labels: torch.Tensor, head: torch.nn.Module) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not IGNORE.

    ``hidden`` is the final hidden state ``[batch, seq, d]``; the unembedding ``head`` runs only
    where a label is kept, which skips most of the (large-vocabulary) logits.
    """
    keep = labels[:, 1:] != IGNORE
    logits = head(hidden[:, :-1][keep]).float()
    return torch.nn.functional.cross_entropy(logits, labels[:, 1:][keep])


def _lora_config(cfg: FinetuneConfig):
    from peft import LoraConfig

    layers = list(cfg.lora_layers) if cfg.lora_layers is not None else None
    return LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                      target_modules=list(cfg.lora_targets), layers_to_transform=layers)


def _prepare(lm: LoadedModel, cfg: FinetuneConfig):
    model = lm.hf
    if cfg.method == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, _lora_config(cfg))
    elif cfg.freeze_embeddings:
        lm.hf.get_input_embeddings().weight.requires_grad_(False)  # tied with the unembedding
    return model


def _trainable_state(model, cfg: FinetuneConfig) -> dict[str, torch.Tensor]:
    if cfg.method == "lora":
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(model)
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def train(lm: LoadedModel, rows: list[dict], cfg: FinetuneConfig, desc: str = "fine-tuning"):
    """Fine-tune ``lm`` in place on ``rows``; returns (trained module, per-step curve)."""
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    examples = [chat_example(lm, r["messages"], cfg.max_len) for r in rows]
    model = _prepare(lm, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    steps = max(1, math.ceil(len(examples) * cfg.epochs / cfg.batch_size))
    order: list[int] = []
    while len(order) < steps * cfg.batch_size:
        epoch = list(range(len(examples)))
        random.shuffle(epoch)
        order += epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)) * max(0.0, 1 - s / steps))
    model.train()
    curve = []
    bar = tqdm(range(steps), desc=desc, unit="step")
    start = time.perf_counter()
    for step in bar:
        batch = _collate([examples[i] for i in order[step * cfg.batch_size:(step + 1) * cfg.batch_size]],
                         lm.tokenizer.pad_token_id)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16_autocast):
            # lm.hf.model is the decoder stack (LoRA layers, if any, sit inside it)
            hidden = lm.hf.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            loss = answer_loss(hidden, batch["labels"], lm.hf.lm_head)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        tokens = int(batch["attention_mask"].sum())
        seconds, start = time.perf_counter() - start, time.perf_counter()  # wall time of the whole step
        curve.append({"step": step + 1, "loss": loss.item(), "tokens": tokens, "seconds": seconds})
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tokens / seconds:.0f}")
    model.eval()
    return model, curve


def _dataset_rows(cfg: FinetuneConfig) -> list[dict]:
    from .data.cards import all_datasets

    sets = all_datasets()
    if cfg.dataset not in sets:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; valid: {', '.join(sets)}")
    rows = list(sets[cfg.dataset][0])
    random.Random(f"subset-{cfg.seed}").shuffle(rows)
    return rows[:cfg.n_examples] if cfg.n_examples else rows


def finetune(cfg: FinetuneConfig) -> artifacts.Artifact:
    """The cached fine-tune for ``cfg``, trained now if needed."""
    def build(folder):
        lm = load_model(cfg.model, dtype="float32")
        model, curve = train(lm, _dataset_rows(cfg), cfg, desc=f"fine-tuning {cfg.dataset}")
        artifacts.save_tensors(folder, _trainable_state(model, cfg), "weights")
        artifacts.save_json(folder, "curve", curve)
        return {"steps": len(curve), "final_loss": curve[-1]["loss"]}

    return artifacts.get_or_build("finetune", artifact_config(cfg), build)


def artifact_config(cfg: FinetuneConfig) -> dict:
    return {**asdict(cfg), "trainer_version": TRAINER_VERSION}


def config_of(art: artifacts.Artifact) -> FinetuneConfig:
    """The config a cached fine-tune was trained with (JSON lists back to tuples)."""
    raw = {k: v for k, v in art.meta["config"].items() if k != "trainer_version"}
    tuples = {k: tuple(v) for k in ("lora_targets", "lora_layers") if isinstance(v := raw.get(k), list)}
    return FinetuneConfig(**{**raw, **tuples})


def load_finetuned(art: artifacts.Artifact, dtype: str = "float32") -> LoadedModel:
    """The base model with a fine-tune's weights applied (LoRA merged), ready to sample and trace."""
    cfg = config_of(art)
    lm = load_model(cfg.model, dtype=dtype)
    weights = art.tensors("weights")
    if cfg.method == "lora":
        from peft import get_peft_model, set_peft_model_state_dict

        model = get_peft_model(lm.hf, _lora_config(cfg))
        set_peft_model_state_dict(model, weights)
        hf = model.merge_and_unload()
    else:
        missing = set(weights) - {n for n, _ in lm.hf.named_parameters()}
        if missing:
            raise ValueError(f"fine-tune {art.key} has weights the model lacks: {sorted(missing)[:3]}")
        lm.hf.load_state_dict(weights, strict=False)
        hf = lm.hf
    return wrap(hf, lm.tokenizer, f"{cfg.model}+{cfg.dataset}:{art.key[:8]}")
