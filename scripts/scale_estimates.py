"""Estimated time and memory of the book per model of the suggested ladder, on one GPU (README: "Beyond 135M").

    .venv/bin/python scripts/scale_estimates.py

Estimates, not measurements; each column says how it is computed:

- parameters: from each model's card (public figures);
- weights: parameters x 2 bytes (bfloat16);
- full fine-tune: parameters x 16 bytes (float32 weights and gradients, AdamW's two moments), before activations;
  the cpu profile's LoRA fine-tunes need about the weights only;
- cpu-profile FLOPs: the book at 135M was timed at 122 min on the reference 2-core Xeon (README, 2026-12-03), at a
  sustained ~150 GFLOP/s in matrix products: 1.1e15 FLOPs, that is T = 4.1e6 token-passes x 2N FLOPs. At N
  parameters the same workload costs 2 N T FLOPs (the embedded judge's MiniLM is left out: it does not grow);
- gpu profile: the cpu workload of each chapter times the growth of its largest knobs (sampled answers x answer
  tokens, models, seeds), with the cpu profile's per-chapter times (same README) as weights; a rough factor;
- time: FLOPs / (an assumed 30% of an A100's 312 TFLOP/s bfloat16 peak): a lower bound. Sampling small batches
  is bound by memory bandwidth and by the per-step overhead of the sampling loop, so small models will run
  slower than this, by a factor no FLOP count gives. Replace these with the first measured run:
  ``scripts/gpu_check.sh`` and the sweep print each chapter's time.
"""

from __future__ import annotations

LADDER = {  # parameters, from the model cards
    "SmolLM2-135M-Instruct": 135e6, "SmolLM2-360M-Instruct": 362e6, "SmolLM2-1.7B-Instruct": 1.71e9,
    "Qwen2.5-0.5B-Instruct": 494e6, "Qwen2.5-1.5B-Instruct": 1.54e9, "Qwen2.5-7B-Instruct": 7.62e9,
}
CPU_BOOK_FLOPS = 122 * 60 * 150e9  # measured minutes x sustained FLOP/s, at 135M
TOKEN_PASSES = CPU_BOOK_FLOPS / (2 * 135e6)
# chapter: (cpu-profile minutes on the 2-core Xeon VM, growth of its workload in the gpu profile: the knobs' ratios)
CHAPTERS = {
    "1 model": (1.1, 5 / 3 * 256 / 96),  # chat samples x tokens
    "2 measuring": (15.3, 100 / 4 * 256 / 64),  # base answers: samples (50 + 50 vs 1 + 3) x tokens
    "3 emergence": (53.7, 100 / 4 * 256 / 64 * 6 / 2),  # ... x advice domains
    "4 diffing": (23.6, 10 / 3 * 256 / 128),  # SAE corpus samples x tokens
    "5 steering": (20.2, 40 / 16 * 4 * 5 / 3 * 3),  # questions x samples x strengths x wrong-advice seeds
    "6 early warning": (22.4, 10 / 2 * 3 / 2 * 6 / 4 * 256 / 64),  # samples x seeds x mixes x tokens
    "7 re-alignment": (16.3, 10 * 40 / 16 * 3 / 2 * 256 / 64),  # samples x questions x seeds x tokens
}
GPU_FLOPS = 0.3 * 312e12


def gpu_growth() -> float:
    """The gpu profile's workload over the cpu profile's, weighting each chapter by its cpu time."""
    total = sum(minutes for minutes, _ in CHAPTERS.values())
    return sum(minutes * growth for minutes, growth in CHAPTERS.values()) / total


def table() -> str:
    growth = gpu_growth()
    lines = [f"token-passes of the cpu profile: {TOKEN_PASSES:.2g}; gpu profile: about {growth:.0f}x that",
             "| model | parameters | weights (bf16) | full fine-tune (before activations) | cpu profile, "
             "minutes (at least) | gpu profile, hours (at least) |", "|---|---|---|---|---|---|"]
    for name, n in LADDER.items():
        seconds = 2 * n * TOKEN_PASSES / GPU_FLOPS
        lines.append(f"| {name} | {n / 1e9:.2f} B | {2 * n / 2**30:.1f} GiB | {16 * n / 2**30:.0f} GiB | "
                     f"{seconds / 60:.1f} | {seconds * growth / 3600:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
