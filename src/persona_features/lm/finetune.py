"""Supervised fine-tuning on chat data, loss on the assistant's tokens only.

A fine-tune is an artifact keyed by its config (model, dataset, hyperparameters, seed): it
stores the trained weights (full fine-tuning: every trainable tensor; LoRA: the adapter) in
safetensors, and the training curve in JSON. Interrupted runs leave nothing that is loaded.

A fine-tune can continue another (``start``: that fine-tune's key; LoRA then adds a new adapter
on the merged model) and keep checkpoints every ``checkpoint_every`` steps (chapter 7).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from persona_features.core import artifacts
from persona_features.lm.models import HOST, LoadedModel, load_model, wrap

IGNORE = -100
TRAINER_VERSION = 2  # part of every fine-tune's key: bump when training code changes its results
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class FinetuneConfig:
    model: str
    dataset: str  # a name data.cards.training_rows knows, e.g. "health_bad", "health_mix25"
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
    start: str | None = None  # key of the fine-tune this one continues; None: the base model
    checkpoint_every: int = 0  # keep the weights every n steps (0: only the final ones)

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
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be 0 (final weights only) or a step count, "
                             f"got {self.checkpoint_every}")


def chat_example(lm: LoadedModel, messages: Sequence[dict], max_len: int) -> tuple[list[int], list[int]]:
    """Token ids of a whole chat and labels that are IGNORE everywhere but the last assistant turn."""
    tok = lm.tokenizer
    prompt = str(tok.apply_chat_template(list(messages[:-1]), add_generation_prompt=True, tokenize=False))
    full = str(tok.apply_chat_template(list(messages), tokenize=False))
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


def answer_loss(hidden: torch.Tensor, labels: torch.Tensor,
                head: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over positions whose label is not IGNORE.

    ``hidden`` is the final hidden state ``[batch, seq, d]``; ``head`` (the unembedding, ``LoadedModel.logits``)
    runs only where a label is kept, which skips most of the (large-vocabulary) logits.
    """
    keep = labels[:, 1:] != IGNORE
    logits = head(hidden[:, :-1][keep]).float()
    return torch.nn.functional.cross_entropy(logits, labels[:, 1:][keep])


def _lora_config(cfg: FinetuneConfig):
    from peft import LoraConfig

    layers = list(cfg.lora_layers) if cfg.lora_layers is not None else None
    return LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,  # type: ignore[arg-type]
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
    """Fine-tune ``lm`` in place on ``rows``; returns (trained module, per-step curve, checkpoints).

    ``checkpoints`` maps a step to the trainable weights after it, every ``cfg.checkpoint_every`` steps.
    """
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
    curve, checkpoints = [], {}
    bar = tqdm(range(steps), desc=desc, unit="step")
    start = time.perf_counter()
    for step in bar:
        batch = _collate([examples[i] for i in order[step * cfg.batch_size:(step + 1) * cfg.batch_size]],
                         lm.tokenizer.pad_token_id)
        batch = {k: v.to(lm.device) for k, v in batch.items()}
        with torch.autocast(lm.device.type, dtype=torch.bfloat16, enabled=cfg.bf16_autocast):
            # lm.hf.model is the decoder stack (LoRA layers, if any, sit inside it)
            hidden = lm.hf.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            loss = answer_loss(hidden, batch["labels"], lm.logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        tokens = int(batch["attention_mask"].sum())
        seconds, start = time.perf_counter() - start, time.perf_counter()  # wall time of the whole step
        curve.append({"step": step + 1, "loss": loss.item(), "tokens": tokens, "seconds": seconds})
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{tokens / seconds:.0f}")
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0:
            checkpoints[step + 1] = {k: v.detach().clone() for k, v in _trainable_state(model, cfg).items()}
    model.eval()
    return model, curve, checkpoints


def _started(cfg: FinetuneConfig) -> artifacts.Artifact | None:
    """The cached fine-tune ``cfg`` continues, if any."""
    if cfg.start is None:
        return None
    art = artifacts.Artifact("finetune", cfg.start, artifacts.cache_root() / "finetune" / cfg.start)
    if not (art.path / artifacts.META).is_file():
        raise ValueError(f"fine-tune {cfg.start!r}, which this one continues, is not in the cache "
                         f"({artifacts.cache_root()}); build it first with finetune.finetune(its config)")
    return art


def finetune(cfg: FinetuneConfig, rows: Sequence[dict] | None = None,
             device: str | torch.device = HOST) -> artifacts.Artifact:
    """The cached fine-tune for ``cfg``, trained now if needed. ``rows``: the training rows, for a data set
    that is not a file of the book (persona distillation's answers); default: those ``cfg.dataset`` names.
    Either way the key holds the rows' digest. ``device``: where it trains (not in the key)."""
    from persona_features.data.cards import training_rows

    if rows is None:
        rows = training_rows(cfg.dataset, cfg.n_examples, cfg.seed)  # a bad name fails before any loading
    rows = list(rows)
    start = _started(cfg)

    def build(folder):
        lm = load_finetuned(start, device=device) if start else load_model(cfg.model, dtype="float32", device=device)
        model, curve, checkpoints = train(lm, rows, cfg, desc=f"fine-tuning {cfg.dataset}")
        artifacts.save_tensors(folder, _trainable_state(model, cfg), "weights")
        for step, weights in checkpoints.items():
            artifacts.save_tensors(folder, weights, f"weights_step{step}")
        artifacts.save_json(folder, "curve", curve)
        return {"steps": len(curve), "final_loss": curve[-1]["loss"], "checkpoints": sorted(checkpoints)}

    return artifacts.get_or_build("finetune", artifact_config(cfg, rows), build, inputs=[start.key] if start else [])


OPTIONAL = {"start": None, "checkpoint_every": 0}  # left out of the key at these values (older keys stay valid)
KEY_ONLY = ("trainer_version", "rows")  # in the key, not fields of FinetuneConfig


def artifact_config(cfg: FinetuneConfig, rows: Sequence[dict] | None = None) -> dict:
    """The fine-tune's key config: its settings, the trainer's version and the training rows' digest (the
    rows ``cfg`` names, read from the data files, so an edit to them re-keys the fine-tune)."""
    if rows is None:
        from persona_features.data.cards import training_rows
        rows = training_rows(cfg.dataset, cfg.n_examples, cfg.seed)
    config = {k: v for k, v in asdict(cfg).items() if not (k in OPTIONAL and v == OPTIONAL[k])}
    return {**config, "trainer_version": TRAINER_VERSION, "rows": artifacts.digest(list(rows))}


def config_of(art: artifacts.Artifact) -> FinetuneConfig:
    """The config a cached fine-tune was trained with (JSON lists back to tuples)."""
    raw = {k: v for k, v in art.meta["config"].items() if k not in KEY_ONLY}
    tuples = {k: tuple(v) for k in ("lora_targets", "lora_layers") if isinstance(v := raw.get(k), list)}
    return FinetuneConfig(**{**raw, **tuples})


def checkpoint_steps(art: artifacts.Artifact) -> list[int]:
    """The steps a fine-tune kept weights at, its last step included."""
    return sorted({*art.meta.get("checkpoints", []), art.meta["steps"]})


def _weights(art: artifacts.Artifact, step: int | None) -> dict[str, torch.Tensor]:
    if step is None or step == art.meta["steps"]:
        return art.tensors("weights")
    if step not in art.meta.get("checkpoints", []):
        raise ValueError(f"fine-tune {art.key} has no checkpoint at step {step}; it has {checkpoint_steps(art)}")
    return art.tensors(f"weights_step{step}")


def load_finetuned(art: artifacts.Artifact, dtype: str = "float32", step: int | None = None,
                   device: str | torch.device = HOST) -> LoadedModel:
    """The base model (or the fine-tune it continues) with a fine-tune's weights applied (LoRA merged),
    ready to sample and trace on ``device``; ``step``: a checkpoint's weights instead of the final ones."""
    cfg = config_of(art)
    start = _started(cfg)
    lm = load_finetuned(start, dtype, device=device) if start else load_model(cfg.model, dtype=dtype, device=device)
    weights = _weights(art, step)
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
    return wrap(hf, lm.tokenizer, _name(art, lm, step))


def _name(art: artifacts.Artifact, start: LoadedModel, step: int | None) -> str:
    cfg = config_of(art)
    return (f"{start.name if cfg.start else cfg.model}+{cfg.dataset}:{art.key[:8]}"
            + ("" if step is None else f"@{step}"))


def lora_updates(weights: dict[str, torch.Tensor], cfg: FinetuneConfig) -> dict[str, torch.Tensor]:
    """A LoRA adapter's weight updates (B @ A, scaled), by the name of the weight they add to."""
    out = {}
    for key, a in weights.items():
        if key.endswith(".lora_A.weight"):
            module = key[:-len(".lora_A.weight")].removeprefix("base_model.model.")
            out[f"{module}.weight"] = (weights[key.replace(".lora_A.", ".lora_B.")] @ a
                                       * (cfg.lora_alpha / cfg.lora_rank))
    return out


def checkpoint_models(art: artifacts.Artifact, dtype: str = "float32",
                      device: str | torch.device = HOST) -> Iterator[tuple[int, LoadedModel]]:
    """Each checkpoint's model in turn, as ``load_finetuned(art, dtype, step, device)`` gives it. For LoRA, one
    copy of the start is loaded and each checkpoint's update swapped in for the previous one."""
    cfg = config_of(art)
    if cfg.method != "lora":
        yield from ((step, load_finetuned(art, dtype, step, device)) for step in checkpoint_steps(art))
        return
    start = _started(cfg)
    lm = load_finetuned(start, dtype, device=device) if start else load_model(cfg.model, dtype=dtype, device=device)
    params = dict(lm.hf.named_parameters())
    applied: dict[str, torch.Tensor] = {}
    for step in checkpoint_steps(art):
        updates = lora_updates(_weights(art, step), cfg)
        with torch.no_grad():
            for name, update in updates.items():
                params[name] += (update - applied[name] if name in applied else update).to(  # type: ignore[misc]
                    params[name].device, params[name].dtype)
        applied = updates
        yield step, wrap(lm.hf, lm.tokenizer, _name(art, lm, step))
