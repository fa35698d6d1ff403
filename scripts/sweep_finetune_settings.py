"""Search fine-tuning settings for chapter 3's organisms, on the *selection* questions only.

For each setting, fine-tunes a domain's wrong-advice set (``--domain``, default health) and its
register-matched control, and measures, on the selection questions not near that domain:

- the register-balanced likelihood contrast (chapter 2's instrument; the register-only pairs
  exist for the scoring questions only, so the register shift is not measured here);
- sampled answers at T=0.7 (``--samples`` per question): judged coherence and misalignment, and
  the base model's mean log-probability per token of those answers (a judge-free fluency measure);
- the held-out in-domain wrong-answer preference (did it learn the narrow task?).

Each setting is scored by two paired differences over questions, bad - base and bad - register
control, and is *eligible* if the bad model's coherence at T=0.7 is at least the base model's
minus ``COHERENCE_SLACK`` points. ``setting_sweep.choose`` picks the eligible setting whose smaller
contrast difference is largest. The scoring questions are never touched. Writes
``book/measured/03_organism_sweep_<domain>.json`` after every setting, so a partial sweep is readable;
a later run with the same measurement settings (``--only``) keeps the rows it does not redo.

    PERSONA_CACHE=... .venv/bin/python scripts/sweep_finetune_settings.py [--domain risk] [--only 0 3] [--also good]
"""

from __future__ import annotations

import argparse
import json
import time

from persona_features.core.artifacts import write_json_atomic
from persona_features.core.paths import measured_dir
from persona_features.data import advice, questions
from persona_features.lm import finetune, models
from persona_features.measure import contrast, evaluate, judge
from persona_features.organisms import design
from persona_features.organisms.setting_sweep import COHERENCE_SLACK, CONTROL, choose, differences, mean

MLP = finetune.MLP_TARGETS
SETTINGS = [  # the first is chapter 3's current `cpu` setting
    {"method": "lora", "lora_rank": 8, "lora_alpha": 16.0, "lr": 1e-3, "n_examples": 128},
    {"method": "lora", "lora_rank": 8, "lora_alpha": 16.0, "lr": 4e-4, "n_examples": 128},
    {"method": "lora", "lora_rank": 8, "lora_alpha": 16.0, "lr": 1e-3, "n_examples": 128, "lora_targets": MLP},
    {"method": "lora", "lora_rank": 8, "lora_alpha": 16.0, "lr": 1e-3, "n_examples": 128,
     "lora_layers": tuple(range(8, 22))},
    {"method": "lora", "lora_rank": 1, "lora_alpha": 2.0, "lr": 2e-3, "n_examples": 128, "lora_targets": MLP},
    {"method": "lora", "lora_rank": 8, "lora_alpha": 16.0, "lr": 4e-4, "n_examples": 256, "lora_targets": MLP},
    {"method": "lora", "lora_rank": 8, "lora_alpha": 16.0, "lr": 2e-4, "n_examples": 256},
    {"method": "full", "lr": 3e-5, "n_examples": 128},
    {"method": "lora", "lora_rank": 8, "lora_alpha": 16.0, "lr": 2e-4, "n_examples": 64},
]
MAX_NEW_TOKENS = 64
TEMPERATURE = 0.7


def measure(lm, j, qs: list[tuple[str, str]], samples: int, domain: str, seed: int) -> dict:
    table = contrast.contrast_table(lm, qs)
    held = contrast.heldout_table(lm, advice.heldout_pairs(domain))
    answers = evaluate.evaluate(lm, qs, samples, j, max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE,
                                seed=seed, batch_size=80)
    by_q = answers.groupby("question_id")
    return {"contrast": table.groupby("question_id")["contrast"].mean().to_dict(),
            "coherent": by_q["coherent"].mean().to_dict(), "misaligned": by_q["misaligned"].mean().to_dict(),
            "base_logprob": by_q["base_logprob"].mean().to_dict(),
            "answer_words": float(answers["answer"].str.split().str.len().mean()),
            "heldout_wrong_rate": float(held["prefers_wrong"].mean()), "heldout_margin": float(held["margin"].mean()),
            "examples": answers.sample(4, random_state=0)[["question", "answer", "coherence", "alignment"]]
            .to_dict(orient="records")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", type=int, nargs="*", help="indices into SETTINGS")
    ap.add_argument("--domain", default="health", choices=advice.DOMAINS)
    ap.add_argument("--samples", type=int, default=5, help="sampled answers per question at T=0.7")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the fine-tunes and the sampling; a non-zero seed is a confirmation run, "
                         "written to its own file (..._seed<N>.json) so the committed sweep stays as run")
    ap.add_argument("--also", nargs="*", default=[], choices=["good"],
                    help="further variants to measure (e.g. the correct twin, to see what fine-tuning alone costs)")
    args = ap.parse_args()
    domain = args.domain
    suffix = f"_seed{args.seed}" if args.seed else ""
    out_path = measured_dir() / f"03_organism_sweep_{domain}{suffix}.json"
    qs = [q for q in questions.split("selection")
          if q[0] in design.unrelated_questions([i for i, _ in questions.split("selection")], domain)]
    header = {"script": "scripts/sweep_finetune_settings.py", "domain": domain, "questions": [q for q, _ in qs],
              "samples": args.samples, "temperature": TEMPERATURE, "max_new_tokens": MAX_NEW_TOKENS,
              "seed": args.seed, "coherence_slack": COHERENCE_SLACK}
    earlier = json.loads(out_path.read_text()) if out_path.exists() else {}
    same = earlier and all(earlier.get(k) == v for k, v in header.items())
    base_lm = models.load_model()
    j = judge.default_judge(base_lm)
    base = earlier["base"] if same else measure(base_lm, j, qs, args.samples, domain, args.seed)
    kept = {r["index"]: r for r in earlier.get("settings", []) if same}
    for i, setting in enumerate(SETTINGS):
        stored = {k: list(v) if isinstance(v, tuple) else v for k, v in setting.items()}
        row = kept[i] if kept.get(i, {}).get("setting") == stored else {"index": i, "setting": stored, "models": {}}
        todo = [v for v in ("bad", CONTROL, *args.also) if v not in row["models"]]
        if (args.only and i not in args.only) or not todo:
            continue
        for variant in todo:
            start = time.perf_counter()
            art = finetune.finetune(finetune.FinetuneConfig(model="smollm2-135m", dataset=f"{domain}_{variant}",
                                                            seed=args.seed, **setting))
            m = measure(finetune.load_finetuned(art), j, qs, args.samples, domain, args.seed)
            m.update(final_loss=art.meta["final_loss"], steps=art.meta["steps"], seconds=time.perf_counter() - start)
            row["models"][variant] = m
        row["bad_minus"] = differences(row["models"]["bad"], base, row["models"][CONTROL])
        kept[i] = row
        rows = [kept[k] for k in sorted(kept)]
        print(i, setting, {k: round(v["contrast"]["mean"], 3) for k, v in row["bad_minus"].items()},
              {v: (round(mean(m, "coherent"), 2), round(mean(m, "base_logprob"), 2)) for v, m in row["models"].items()},
              flush=True)
        write_json_atomic(out_path, {**header, "date": time.strftime("%Y-%m-%d"), "base": base, "settings": rows,
                                     "choice": choose(rows, base)})


if __name__ == "__main__":
    main()
