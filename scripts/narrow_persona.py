"""Chapter 3's narrow persona organism, measured once and committed (the `cpu` profile leaves it out of the
book's run for time: about 25 minutes on 2 cores).

Trains and measures the narrow persona organism and its twin exactly as chapter 3 does when ``persona_sources``
holds ``health`` (the same calls and cached artifacts; every other setting is the profile's), compares them with
the seed-level tests of ``persona_arms.compare``, and writes ``book/measured/03_narrow_persona.json``. Chapter 3
shows it when its own run has no health source and its judge and profile match the file's.

    PERSONA_CACHE=... .venv/bin/python scripts/narrow_persona.py [--profile cpu]
"""

from __future__ import annotations

import argparse
import datetime
import json

from persona_features.core import params
from persona_features.core.artifacts import write_text_atomic
from persona_features.core.paths import measured_dir
from persona_features.lm import models
from persona_features.measure import judge
from persona_features.organisms import persona, persona_arms
from persona_features.organisms.measurement import measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", choices=params.PROFILES)
    args = ap.parse_args()
    P = params.resolve(args.profile, persona_sources="health")
    base = models.load_model(P.model, dtype=P.dtype, device=P.device)
    j = judge.default_judge(base, P)
    base_m = measure(lambda: base, j, P, "base")
    arms = [a for a in persona_arms.design(P) if a.source == "health"]
    distilled = persona_arms.training_data(base, j, P, "health")
    measured = {a.name: persona_arms.train_and_measure(a, distilled, j, P) for a in arms}
    comp = persona_arms.compare(measured, arms, base_m, P.bootstrap, P.seed)
    record = {"judge": j.key, "profile": P.profile, "date": datetime.date.today().isoformat(),
              "settings": {k: P.as_dict()[k] for k in persona_arms.NARROW_SETTINGS},
              "distillation": {**{k: distilled.meta[k] for k in ("n_questions", "n_questions_kept", "n_rows")},
                               "card": persona.card(distilled).reset_index().to_dict(orient="records")},
              "comparisons": comp.to_dict(orient="records"),
              "judged_misaligned_coherent": persona_arms.judged_counts(measured, arms, base_m),
              **persona_arms.seconds(measured, {"health": distilled})}
    path = measured_dir() / persona_arms.NARROW
    write_text_atomic(path, json.dumps(record, indent=1, ensure_ascii=False, default=float) + "\n")
    print(persona_arms.table(comp).to_string(index=False))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
