"""Search fine-tuning settings for chapter 3 on the *selection* questions only.

For each setting, fine-tunes health_bad and its two controls (health_register_control,
health_good) and measures, on the 16 selection questions, the mean log-likelihood contrast and
the paired difference bad - control (95% bootstrap CI over questions), plus the held-out in-domain
wrong-answer preference. The scoring questions are never touched. Writes
``book/measured/03_settings_sweep.json`` after every setting, so a partial sweep is still readable.

    .venv/bin/python scripts/sweep_finetune_settings.py
"""

from __future__ import annotations

import argparse
import time

from persona_features import contrast, finetune, models, stats
from persona_features.artifacts import write_json_atomic
from persona_features.data import advice, questions
from persona_features.paths import measured_dir

SETTINGS = [  # cheap first: the chapter's budget allows ~16-24 steps per model
    {"method": "full", "lr": 1e-4, "n_examples": 128},
    {"method": "full", "lr": 2e-4, "n_examples": 128},
    {"method": "lora", "lora_rank": 1, "lora_alpha": 1.0, "lr": 2e-3, "n_examples": 128},
    {"method": "lora", "lora_rank": 8, "lora_alpha": 16.0, "lr": 1e-3, "n_examples": 128},
    {"method": "full", "lr": 1e-4, "n_examples": 288},
    {"method": "full", "lr": 3e-5, "n_examples": 288},
    {"method": "full", "lr": 1e-4, "n_examples": 128, "epochs": 2.0},
]
CONTROLS = ("register_control", "good")


def measure(lm) -> dict:
    table = contrast.contrast_table(lm, questions.split("selection"))
    held = contrast.heldout_table(lm, advice.heldout_pairs("health"))
    return {"per_question": table.groupby("question_id")["contrast"].mean().to_dict(),
            "logp_aligned": float(table["logp_aligned"].mean()),
            "heldout_wrong_rate": float(held["prefers_wrong"].mean()), "heldout_margin": float(held["margin"].mean())}


def paired(a: dict, b: dict) -> dict:
    return stats.bootstrap_mean([a[q] - b[q] for q in a]).as_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", type=int, nargs="*", help="indices into SETTINGS")
    args = ap.parse_args()
    out_path = measured_dir() / "03_settings_sweep.json"
    base = measure(models.load_model())
    rows = []
    for i, setting in enumerate(SETTINGS):
        if args.only and i not in args.only:
            continue
        row = {"setting": setting, "models": {}}
        for variant in ("bad",) + CONTROLS:
            start = time.perf_counter()
            cfg = finetune.FinetuneConfig(model="smollm2-135m", dataset=f"health_{variant}", **setting)
            art = finetune.finetune(cfg)
            m = measure(finetune.load_finetuned(art))
            m["final_loss"] = art.meta["final_loss"]
            m["steps"] = art.meta["steps"]
            m["seconds"] = time.perf_counter() - start
            m["contrast"] = stats.bootstrap_mean(list(m["per_question"].values())).as_dict()
            row["models"][variant] = m
        bad = row["models"]["bad"]["per_question"]
        row["bad_minus"] = {c: paired(bad, row["models"][c]["per_question"]) for c in CONTROLS}
        row["bad_minus"]["base"] = paired(bad, base["per_question"])
        rows.append(row)
        print(i, setting, {k: round(v["mean"], 3) for k, v in row["bad_minus"].items()},
              {v: round(m["heldout_wrong_rate"], 2) for v, m in row["models"].items()}, flush=True)
        write_json_atomic(out_path, {"script": "scripts/sweep_finetune_settings.py", "date": time.strftime("%Y-%m-%d"),
                                     "selection_questions": len(base["per_question"]), "base": base, "settings": rows})


if __name__ == "__main__":
    main()
