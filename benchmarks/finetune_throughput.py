"""Fine-tuning throughput: this book's trainer vs a plain Hugging Face ``Trainer``.

Same model, same rows, same batch size and sequence lengths, measured side by side in one
run. Both are timed the same way: wall time from the end of one optimizer step to the end of
the next (data collation included), the first ``--warmup`` steps dropped. Besides the default
trainer it times each lever on its own, so the table shows where the speed comes from:

- the unembedding (49k-token vocabulary) runs only on the answer positions that carry loss;
- the embedding matrix, tied to the unembedding, is frozen (no gradient for 28M weights);
- bf16 autocast, for comparison; and LoRA (the `cpu` profile's method), in both trainers.

Writes ``book/measured/benchmark_finetune.json``, which the appendix shows.

    .venv/bin/python benchmarks/finetune_throughput.py --steps 10
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from persona_features.book import appendix
from persona_features.core import environment
from persona_features.core.artifacts import write_json_atomic
from persona_features.core.paths import measured_dir
from persona_features.data import advice
from persona_features.lm import finetune, models


def _rate(times: list[float], tokens: list[int], warmup: int) -> dict:
    steps = [b - a for a, b in zip(times[warmup:], times[warmup + 1:])]
    n = tokens[warmup + 1:warmup + 1 + len(steps)]
    return {"tokens_per_s": sum(n) / sum(steps), "s_per_step": sum(steps) / len(steps), "timed_steps": len(steps)}


def ours(rows, args, **options) -> dict:
    lm = models.load_model()
    cfg = finetune.FinetuneConfig(model="smollm2-135m", dataset="health_bad", batch_size=args.batch, lr=1e-4,
                                  epochs=args.steps * args.batch / len(rows), max_len=256, **options)
    _, curve, _ = finetune.train(lm, rows, cfg, desc=f"ours {options}")
    ends = [0.0]
    for c in curve:
        ends.append(ends[-1] + c["seconds"])
    return _rate(ends[1:], [c["tokens"] for c in curve], args.warmup - 1)


class _Chats(torch.utils.data.Dataset):
    def __init__(self, lm, rows):
        self.items = [finetune.chat_example(lm, r["messages"], 256) for r in rows]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class _StepClock(TrainerCallback):
    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def hf_trainer(rows, args, bf16: bool, lora: bool = False) -> dict:
    lm = models.load_model()
    model = lm.hf
    if lora:
        from peft import get_peft_model

        model = get_peft_model(lm.hf, finetune._lora_config(finetune.FinetuneConfig(model="-", dataset="-")))
    pad = lm.tokenizer.pad_token_id
    n_tokens = []

    def collate(items):
        out = finetune._collate(items, pad)
        n_tokens.append(int(out["attention_mask"].sum()))
        return out

    clock = _StepClock()
    targs = TrainingArguments(output_dir="/tmp/hf-trainer-bench", per_device_train_batch_size=args.batch,
                              max_steps=args.steps, learning_rate=1e-4, warmup_steps=3, lr_scheduler_type="linear",
                              weight_decay=0.0, max_grad_norm=1.0, logging_steps=10_000, save_strategy="no",
                              report_to=[], bf16=bf16, use_cpu=True, dataloader_num_workers=0, seed=0,
                              disable_tqdm=True)
    Trainer(model=model, args=targs, train_dataset=_Chats(lm, rows), data_collator=collate,
            callbacks=[clock]).train()
    return _rate(clock.ends, n_tokens, args.warmup - 1)


RUNS = {
    "HF Trainer, fp32": lambda rows, a: hf_trainer(rows, a, bf16=False),
    "HF Trainer, bf16": lambda rows, a: hf_trainer(rows, a, bf16=True),
    "ours (default: answer-only unembedding, frozen embeddings, fp32)": lambda rows, a: ours(rows, a),
    "ours, embeddings trainable": lambda rows, a: ours(rows, a, freeze_embeddings=False),
    "ours, bf16 autocast": lambda rows, a: ours(rows, a, bf16_autocast=True),
    "HF Trainer, LoRA rank 8 (peft)": lambda rows, a: hf_trainer(rows, a, bf16=False, lora=True),
    "ours, LoRA rank 8": lambda rows, a: ours(rows, a, method="lora"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2, help="steps dropped from the timing")
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = advice.build("health", "bad")[: args.steps * args.batch]
    runs = {name: run(rows, args) for name, run in RUNS.items()}
    baseline = runs["HF Trainer, fp32"]["tokens_per_s"]
    for r in runs.values():
        r["ratio_vs_hf_fp32"] = r["tokens_per_s"] / baseline
    data = {
        "script": "benchmarks/finetune_throughput.py", "date": time.strftime("%Y-%m-%d"), "steps": args.steps,
        "warmup_steps_dropped": args.warmup, "batch": args.batch, "torch_threads": torch.get_num_threads(),
        "cpu": environment.cpu_model(), "cores": os.cpu_count(), "runs": runs}
    write_json_atomic(measured_dir() / "benchmark_finetune.json", data)
    print(appendix.benchmark_markdown(data))


if __name__ == "__main__":
    main()
