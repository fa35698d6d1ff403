"""Fine-tuning throughput: this book's trainer vs a plain Hugging Face ``Trainer``.

Same model, same rows, same batch size and sequence lengths, measured side by side in one
run. Prints a Markdown table and writes ``results/benchmark_finetune.json``.

    .venv/bin/python benchmarks/finetune_throughput.py --steps 8
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import Trainer, TrainingArguments

from persona_features import finetune, models
from persona_features.artifacts import write_json_atomic
from persona_features.data import advice
from persona_features.paths import results_dir


def ours(rows, steps: int, batch: int, bf16: bool) -> dict:
    lm = models.load_model()
    cfg = finetune.FinetuneConfig(model="smollm2-135m", dataset="health_bad", batch_size=batch, lr=1e-4,
                                  epochs=steps * batch / len(rows), bf16_autocast=bf16, max_len=256)
    _, curve = finetune.train(lm, rows, cfg, desc=f"ours (bf16={bf16})")
    timed = curve[1:]  # the first step warms up
    return {"tokens_per_s": sum(c["tokens"] for c in timed) / sum(c["seconds"] for c in timed),
            "s_per_step": sum(c["seconds"] for c in timed) / len(timed)}


class _Chats(torch.utils.data.Dataset):
    def __init__(self, lm, rows):
        self.items = [finetune.chat_example(lm, r["messages"], 256) for r in rows]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def hf_trainer(rows, steps: int, batch: int, bf16: bool) -> dict:
    lm = models.load_model()
    data = _Chats(lm, rows)
    pad = lm.tokenizer.pad_token_id
    n_tokens = []

    def collate(items):
        out = finetune._collate(items, pad)
        n_tokens.append(int(out["attention_mask"].sum()))
        return out

    args = TrainingArguments(output_dir="/tmp/hf-trainer-bench", per_device_train_batch_size=batch, max_steps=steps,
                             learning_rate=1e-4, logging_steps=10_000, save_strategy="no", report_to=[],
                             bf16=bf16, use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True)
    trainer = Trainer(model=lm.hf, args=args, train_dataset=data, data_collator=collate)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"tokens_per_s": sum(n_tokens) / seconds, "s_per_step": seconds / steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = advice.build("health", "bad")[: args.steps * args.batch]
    runs = {
        "HF Trainer, fp32": hf_trainer(rows, args.steps, args.batch, bf16=False),
        "HF Trainer, bf16": hf_trainer(rows, args.steps, args.batch, bf16=True),
        "ours, fp32": ours(rows, args.steps, args.batch, bf16=False),
        "ours, bf16 autocast": ours(rows, args.steps, args.batch, bf16=True),
    }
    baseline = runs["HF Trainer, fp32"]["tokens_per_s"]
    print("| trainer | tokens/s | s/step | vs HF Trainer fp32 |\n|---|---|---|---|")
    for name, r in runs.items():
        r["ratio_vs_hf_fp32"] = r["tokens_per_s"] / baseline
        print(f"| {name} | {r['tokens_per_s']:.0f} | {r['s_per_step']:.2f} | {r['ratio_vs_hf_fp32']:.2f}x |")
    write_json_atomic(results_dir() / "benchmark_finetune.json",
                      {"steps": args.steps, "batch": args.batch, "runs": runs, "torch_threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
