"""Chapter 3's strength curve, on the *selection* questions only (``persona_features.organisms.strength``).

For every setting of ``strength.GRID`` (training rows x learning rate), fine-tunes a domain's wrong-advice set
and its register control with seed 0 and measures both, beside the base model. Then every setting whose
wrong-advice model keeps the coherence floor and learned the narrow task at seed 0 gets further seeds
(``--seeds``), which the rule's narrow-task condition needs (a setting that fails either at seed 0 cannot be
eligible). Writes ``book/measured/03_strength_curve_<domain>.json`` after every model, so a partial
curve is readable and a rerun with the same header resumes; fine-tunes are cached artifacts.

    PERSONA_CACHE=... .venv/bin/python scripts/strength_curve.py --domain health [--only 0 4] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import time

from persona_features.core.artifacts import write_json_atomic
from persona_features.core.paths import measured_dir
from persona_features.data import advice, questions
from persona_features.lm import finetune, models
from persona_features.measure import judge
from persona_features.organisms import design, setting_sweep, strength


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domain", default="health", choices=advice.DOMAINS)
    ap.add_argument("--only", type=int, nargs="*", help="indices into strength.GRID (default: all)")
    ap.add_argument("--samples", type=int, default=5, help="answers per selection question at T=0.7")
    ap.add_argument("--seeds", type=int, default=strength.SEEDS_NEEDED,
                    help="seeds of every setting that keeps the coherence floor at seed 0")
    args = ap.parse_args()
    domain = args.domain
    out_path = measured_dir() / f"03_strength_curve_{domain}.json"
    selection = questions.split("selection")
    qs = [q for q in selection if q[0] in design.unrelated_questions([i for i, _ in selection], domain)]
    pairs = advice.heldout_pairs(domain)
    header = {"script": "scripts/strength_curve.py", "domain": domain, "questions": [q for q, _ in qs],
              "heldout_topics": sorted({p["group"] for p in pairs}), "samples": args.samples,
              "temperature": strength.TEMPERATURE, "max_new_tokens": strength.MAX_NEW_TOKENS, "rule": strength.RULE}
    earlier = json.loads(out_path.read_text()) if out_path.exists() else {}
    same = bool(earlier) and all(earlier.get(k) == v for k, v in header.items())
    base_lm = models.load_model()
    j = judge.default_judge(base_lm)
    base = earlier["base"] if same else strength.measure(base_lm, j, qs, pairs, args.samples, seed=0)
    points = {p["index"]: p for p in earlier.get("points", [])} if same else {}

    def save() -> None:
        rows = [points[i] for i in sorted(points)]
        complete = [p for p in rows if all(set(strength.VARIANTS) <= set(m) for m in p["seeds"].values())]
        write_json_atomic(out_path, {**header, "judge": j.key, "date": time.strftime("%Y-%m-%d"), "base": base,
                                     "points": rows, "choice": strength.choose(complete) if complete else None})

    def run(index: int, seed: int) -> None:
        setting = strength.GRID[index]
        point = points.setdefault(index, {"index": index, "setting": setting, "seeds": {}})
        models_ = point["seeds"].setdefault(str(seed), {})
        for variant in strength.VARIANTS:
            if variant in models_:
                continue
            start = time.perf_counter()
            art = finetune.finetune(finetune.FinetuneConfig(model="smollm2-135m", dataset=f"{domain}_{variant}",
                                                            seed=seed, **setting))
            trained = time.perf_counter() - start
            m = strength.measure(finetune.load_finetuned(art), j, qs, pairs, args.samples, seed=seed)
            m.update(final_loss=art.meta["final_loss"], steps=art.meta["steps"], finetune_key=art.key,
                     seconds={"train": round(trained, 1), "total": round(time.perf_counter() - start, 1)})
            models_[variant] = m
            save()
            print(f"#{index} seed {seed} {variant}: {strength.describe(setting)}, coherent "
                  f"{setting_sweep.mean(m, 'coherent'):.2f}, {m['seconds']}", flush=True)

    todo = [i for i in range(len(strength.GRID)) if not args.only or i in args.only]
    for i in todo:
        run(i, 0)
    for i in todo:
        first = strength.status(points[i])
        if first["coherent_enough"] and all(p < strength.NARROW_ALPHA for p in first["narrow_p"].values()):
            for seed in range(1, args.seeds):
                run(i, seed)
    save()


if __name__ == "__main__":
    main()
