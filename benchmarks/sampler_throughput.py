"""Sampling throughput: this book's sampler against plain ``model.generate``.

Both get the same model, prompts, batches, temperature and seeds, and run side by side in one
process, alternating round by round so that drift of the machine hits both alike. The workload
is chapter 3's: every scoring question, ``--samples`` answers each, at the profile's answer
length and batch size and at the temperature of chapter 3's rates (most of its answers; ``--temperature``), \
for the base model and, when cached, chapter 3's fine-tunes, whose
answers end earlier. Tokens/s counts the answer tokens up to and including the end of turn.
One more row times our sampler with the base model's weights in bf16.

Writes ``book/measured/benchmark_sampler.json``, which the appendix shows.

    .venv/bin/python benchmarks/sampler_throughput.py --rounds 2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from persona_features.book import appendix
from persona_features.core import artifacts, environment, params
from persona_features.core.artifacts import write_json_atomic
from persona_features.core.paths import measured_dir
from persona_features.data.questions import split
from persona_features.lm import finetune, generation, models
from persona_features.organisms import design

SAMPLERS = {"transformers generate": generation.reference_generate_batch, "ours": generation.generate_batch}


def _lengths(new: torch.Tensor, stop_ids: set[int]) -> list[int]:
    lengths, finished = generation._answer_lengths(new, stop_ids)
    return [n + done for n, done in zip(lengths, finished)]  # the end-of-turn token is computed too


def _time(lm, texts, sampler, P, temperature, seed) -> tuple[float, list[int]]:
    stop_ids, seconds, lengths = generation._stop_ids(lm), 0.0, []
    for b, start in enumerate(range(0, len(texts), P.batch_size)):
        torch.manual_seed(seed * 1_000_003 + b)
        t0 = time.perf_counter()
        new = sampler(lm, texts[start:start + P.batch_size], P.eval_max_new_tokens, temperature, P.top_p)
        seconds += time.perf_counter() - t0
        lengths += _lengths(new, stop_ids)
    return seconds, lengths


def _models(P, with_finetunes: bool):
    yield "base", lambda: models.load_model(P.model, dtype=P.dtype, device=P.device)
    if with_finetunes:
        for arm in design.all_arms(P)[:2]:
            cfg = design.finetune_config(P, arm)
            if artifacts.find("finetune", finetune.artifact_config(cfg)) is not None:
                yield arm.dataset, lambda cfg=cfg: finetune.load_finetuned(finetune.finetune(cfg), dtype=P.dtype,
                                                                           device=P.device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--samples", type=int, default=2, help="answers per scoring question")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per sampler and model")
    ap.add_argument("--no-finetunes", action="store_true", help="time the base model only")
    ap.add_argument("--temperature", type=float, default=None,
                    help="sampling temperature (default: the profile's eval_low_temperature, chapter 3's rates)")
    args = ap.parse_args()
    P = params.resolve(args.profile)
    temperature = P.eval_low_temperature if args.temperature is None else args.temperature
    texts = None
    results = {}
    for name, load in _models(P, not args.no_finetunes):
        lm = load()
        texts = [lm.chat_text(q) for _, q in split("scoring")[:P.eval_questions] for _ in range(args.samples)]
        runs = {s: {"seconds": 0.0, "lengths": []} for s in SAMPLERS}
        for r in range(args.rounds):
            for sampler, fn in SAMPLERS.items():
                seconds, lengths = _time(lm, texts, fn, P, temperature, seed=r)
                runs[sampler]["seconds"] += seconds
                runs[sampler]["lengths"] += lengths
        if name == "base":
            bf16 = models.load_model(P.model, dtype="bfloat16")
            runs["ours, bf16 weights"] = {"seconds": 0.0, "lengths": []}
            for r in range(args.rounds):
                seconds, lengths = _time(bf16, texts, generation.generate_batch, P, temperature, seed=r)
                runs["ours, bf16 weights"]["seconds"] += seconds
                runs["ours, bf16 weights"]["lengths"] += lengths
        for run in runs.values():
            n = np.array(run.pop("lengths"))
            run.update(tokens=int(n.sum()), tokens_per_s=float(n.sum() / run["seconds"]),
                       length_quartiles=[float(q) for q in np.percentile(n, [25, 50, 75])],
                       ended_early=float((n < P.eval_max_new_tokens).mean()))
        results[name] = runs
        print(name, {s: round(r["tokens_per_s"], 1) for s, r in runs.items()}, flush=True)
    data = {"script": "benchmarks/sampler_throughput.py", "date": time.strftime("%Y-%m-%d"), "profile": P.profile,
            "prompts": len(texts), "batch": P.batch_size, "max_new_tokens": P.eval_max_new_tokens,
            "temperature": temperature, "rounds": args.rounds, "torch_threads": torch.get_num_threads(),
            "cpu": environment.cpu_model(), "cores": os.cpu_count(), "models": results}
    write_json_atomic(measured_dir() / "benchmark_sampler.json", data)
    print(appendix.sampler_benchmark_markdown(data))


if __name__ == "__main__":
    main()
