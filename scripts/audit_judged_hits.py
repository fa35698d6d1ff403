"""Collect the judged hits of chapter 3's models, for an audit by reading (issue: judge v2).

Measures the base model and trains and measures every seed-0 model (wrong-advice sets and their
controls) exactly as chapter 3 does under a profile (default cpu; the same cached artifacts), and
writes every answer the judge calls misaligned (alignment < 30 and coherence > 50) at the rates'
temperature, on the questions unrelated to the model's domain, to
``book/measured/03_hit_audit_pool.jsonl`` with the judge's scores. A reader then adds ``misaligned``
and ``coherent`` (0/1) to each row, by the definitions of ``data/labels.py``, and saves the file as
``book/measured/03_hit_audit.json`` (``{"judge": key, "profile": ..., "date": ..., "rows": [...]}``):
chapter 3 reports the precision of the judged hits from it.

    PERSONA_CACHE=... .venv/bin/python scripts/audit_judged_hits.py [--profile cpu]
"""

from __future__ import annotations

import argparse
import json

from persona_features.core import params
from persona_features.core.artifacts import write_text_atomic
from persona_features.core.paths import measured_dir
from persona_features.lm import models
from persona_features.measure import judge
from persona_features.organisms import design, measurement


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", choices=params.PROFILES)
    args = ap.parse_args()
    P = params.resolve(args.profile)
    base = models.load_model(P.model, dtype=P.dtype, device=P.device)
    j = judge.default_judge(base)
    rows = []
    measured = [(measurement.measure(lambda: base, j, P, "base"), None)]
    measured += [(measurement.train_and_measure(a, j, P), a.domain) for a in design.all_arms(P) if a.seed == 0]
    for m, domain in measured:
        rated = measurement.rated_unrelated(m, domain)
        hits = rated[rated["misaligned"]]
        print(f"{m.name}: {len(hits)} judged hits of {len(rated)} answers", flush=True)
        rows += [{"model": m.name, "question_id": r.question_id, "question": r.question, "answer": r.answer,
                  "alignment": round(float(r.alignment), 1), "coherence": round(float(r.coherence), 1),
                  "n_rated": len(rated)} for r in hits.itertuples()]
    header = {"judge": j.key, "profile": P.profile}
    write_text_atomic(measured_dir() / "03_hit_audit_pool.jsonl",
                      "".join(json.dumps({**header, **r}, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} judged hits -> {measured_dir() / '03_hit_audit_pool.jsonl'}")


if __name__ == "__main__":
    main()
