"""Collect chapter 5's judged steered answers for a blind audit by reading (issue: chapter 5, audit).

Step 1 measures every model exactly as chapter 5 does under a profile (default cpu; the same cached
artifacts) and writes a pool to label: every steered answer the judge counted as misaligned and as
many of the others drawn at random, shuffled, with only an id, the question and the answer
(``book/measured/05_hit_audit_pool.jsonl``). What the reader must not see (model, setting, scores,
the judge's call) goes to ``05_hit_audit_key.jsonl`` beside it.

A reader adds ``misaligned`` and ``coherent`` (0/1) to each pool row, by the definitions of
``data/labels.py``, and saves the rows as JSON lines. Step 2 joins the labels with the key into
the audit file ``interventions.HIT_AUDIT`` in ``book/measured``, which chapter 5 reads, and removes
the pool and the key.

If the audit file already holds a reading of the same judge's hits, the new pool leaves out the answers it
read, and step 2 adds the new rows to it (say how they were read in ``--reading``).

An earlier run's judged answers can join the pool (``--earlier CACHE``: the "steer" artifacts of
another cache, judged by the same judge on the same questions); answers already in the pool are
left out.

    PERSONA_CACHE=... .venv/bin/python scripts/audit_steered_hits.py [--profile cpu] [--earlier CACHE ...]
    .venv/bin/python scripts/audit_steered_hits.py --merge LABELS.jsonl --reading "how it was read"
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import pandas as pd

from persona_features.core import params
from persona_features.core.artifacts import write_json_atomic, write_text_atomic
from persona_features.core.paths import measured_dir
from persona_features.experiments.ch4_diffing import findings, readings
from persona_features.experiments.ch5_steering import interventions as iv
from persona_features.lm import models
from persona_features.measure import judge
from persona_features.sae import sae

POOL, KEY = "05_hit_audit_pool.jsonl", "05_hit_audit_key.jsonl"


def earlier_runs(cache: Path, judge_key: str, questions: list[str]) -> list[dict]:
    """The judged steering runs kept in another cache, by the same judge on the same questions."""
    runs = []
    for folder in sorted((cache / "steer").glob("*/")):
        config = json.loads((folder / "meta.json").read_text())["config"]
        if config["judge"] == judge_key and config["questions"] == questions:
            runs.append({"model": config["model"],
                         "answers": pd.DataFrame(json.loads((folder / "answers.json").read_text()))})
    return runs


def existing_audit(judge_key: str) -> dict | None:
    """The audit file, if it holds a reading of this judge's hits: a new reading extends it."""
    if not (measured_dir() / iv.HIT_AUDIT).is_file():
        return None
    audit = judge.load_hit_audit(iv.HIT_AUDIT)
    return audit if audit["judge"] == judge_key else None


def collect(profile: str, earlier: list[Path]) -> None:
    P = params.resolve(profile)
    base = models.load_model(P.model, dtype=P.dtype, device=P.device)
    found = findings.persona(base, P)
    the_sae, _ = sae.load(found.sae_art.path)
    plan = iv.plan(found, the_sae.W_dec.detach(), P)
    qs, the_judge = readings.questions(P, "scoring")[:P.steer_questions], judge.default_judge(base)
    runs = [iv.run(found.readers[m], settings, plan.directions, found.layer, found.norm, qs, the_judge, P,
                   P.steer_samples) for m, settings in plan.settings.items()]
    for cache in earlier:
        runs += earlier_runs(cache, the_judge.key, [q for q, _ in qs])
    extended = existing_audit(the_judge.key)
    pool = iv.audit_pool(runs, qs, P.seed, read=extended["rows"] if extended else ())
    header = {"judge": the_judge.key, "profile": P.profile}
    lines = lambda rows: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    write_text_atomic(measured_dir() / POOL, lines(pool[["id", "question", "answer"]].to_dict(orient="records")))
    keyed = pool.drop(columns=["question"]).assign(**header)
    write_text_atomic(measured_dir() / KEY, lines(keyed.to_dict(orient="records")))
    print(f"{int(pool['hit'].sum())} judged hits and {int((~pool['hit']).sum())} others -> {measured_dir() / POOL}")


def merge(labels_path: Path, reading: str) -> None:
    key = {r["id"]: r for r in map(json.loads, (measured_dir() / KEY).read_text().splitlines())}
    questions = {r["id"]: r["question"] for r in map(json.loads, (measured_dir() / POOL).read_text().splitlines())}
    labels = [json.loads(line) for line in labels_path.read_text().splitlines() if line.strip()]
    missing = sorted(set(key) - {r["id"] for r in labels})
    if missing:
        raise SystemExit(f"{labels_path}: no labels for {len(missing)} ids, e.g. {missing[:5]}; label every row")
    rows = []
    for r in labels:
        if r.get("misaligned") not in (0, 1) or r.get("coherent") not in (0, 1):
            raise SystemExit(f"{labels_path}: id {r.get('id')} needs 0/1 labels 'misaligned' and 'coherent'")
        k = key[r["id"]]
        rows.append({**{f: k[f] for f in ("id", "model", "setting", "question_id", "alignment", "coherence",
                                          "answer", "hit", "n_rated")},
                     "question": questions[r["id"]], "misaligned": r["misaligned"], "coherent": r["coherent"]})
    first, today = next(iter(key.values())), datetime.date.today().isoformat()
    earlier = existing_audit(first["judge"])
    if earlier:  # the pool left out what this audit read; the new rows join it
        rows += earlier["rows"]
        reading = f"{earlier['reading']} Extended on {today} ({len(labels)} more answers): {reading}"
    write_json_atomic(measured_dir() / iv.HIT_AUDIT, {
        "judge": first["judge"], "profile": first["profile"], "date": today,
        "reading": reading, "rows": sorted(rows, key=lambda r: r["id"])})
    (measured_dir() / POOL).unlink()
    (measured_dir() / KEY).unlink()
    print(f"{len(rows)} labelled answers -> {measured_dir() / iv.HIT_AUDIT}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", choices=params.PROFILES)
    ap.add_argument("--merge", type=Path, metavar="LABELS",
                    help="the labelled pool (JSON lines: id, misaligned, coherent)")
    ap.add_argument("--reading", default="", help="how the pool was read (kept in the audit)")
    ap.add_argument("--earlier", type=Path, nargs="*", default=[], metavar="CACHE",
                    help="other caches whose judged steering runs join the pool")
    args = ap.parse_args()
    if args.merge:
        merge(args.merge, args.reading)
    else:
        collect(args.profile, args.earlier)


if __name__ == "__main__":
    main()
