"""Chapter 5's ablated positive control, read by hand: every answer the positive control sampled unsteered and
under each judged ablation (``ablation.answers``), so that the chapter's rates are counts, not estimates.

Two steps, with blind readers between them:

    PERSONA_CACHE=... .venv/bin/python scripts/audit_ablation.py pool [--profile cpu] [--out /tmp/ablation_audit]
    (helper sessions label <out>/blind.json: question and answer only, by the definitions of data/labels.py,
     each writing [{"item", "misaligned", "coherent", "note"}, ...]; two readers read every item)
    .venv/bin/python scripts/audit_ablation.py merge --date YYYY-MM-DD --labels A.json --second B.json

``pool`` runs chapter 5's ablation of the positive control exactly as the chapter does under the profile (the
same cached artifacts) and writes ``blind.json`` (item, question, answer: nothing else), shuffled, and
``key.json`` (the same items with model, setting and the judge's scores). ``merge`` joins the readers' labels to
the key and writes ``book/measured/05_positive_control_ablation_audit.json``; the chapter counts the first
reader's labels when the audit read every answer of its run (``ablation.read_labels``).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from persona_features.core import params
from persona_features.core.artifacts import write_text_atomic
from persona_features.core.paths import measured_dir
from persona_features.data.labels import reader_labels, second_reader
from persona_features.data.questions import split
from persona_features.experiments.ch4_diffing import findings
from persona_features.experiments.ch5_steering import ablation
from persona_features.lm import models
from persona_features.measure import judge
from persona_features.sae import sae

SEED = 20261203
PROTOCOL = ("Every answer the {profile} profile's positive control ({seeds} seeds) sampled at T = {t:g} on {q} "
            "scoring questions, unsteered and under each judged ablation of chapter 5 ({settings}); shuffled (seed "
            "{seed}) and read by two helper sessions each, that saw only question and answer (no model, no setting, "
            "no scores), with the definitions of data/labels.py.")


def pool(args) -> None:
    P = params.resolve(args.profile)
    base = models.load_model(P.model, dtype=P.dtype, device=P.device)
    j = judge.default_judge(base, P)
    found = findings.persona(base, P)
    the_sae, _ = sae.load(found.sae_art.path)
    done = ablation.measured(found, the_sae.W_dec.detach(), j, P)
    if done is None:
        raise SystemExit(f"the {P.profile} profile trains no positive control (persona_sources={P.persona_sources})")
    plan, runs = done
    frame = ablation.answers(runs, plan).drop_duplicates(ablation.KEYS)
    text = dict(split("scoring"))
    rows = [{"model": r.model, "setting": r.setting, "question_id": r.question_id, "question": text[r.question_id],
             "answer": r.answer, "judged_misaligned": bool(r.misaligned), "alignment": round(float(r.alignment), 1),
             "coherence": round(float(r.coherence), 1)} for r in frame.itertuples()]
    random.Random(SEED).shuffle(rows)
    items = [{"item": i, **r} for i, r in enumerate(rows)]
    settings = sorted(frame["setting"].unique())
    asked = len(ablation.questions(P))
    q = f"all {asked}" if not P.pc_ablation_questions else f"the first {asked}"
    header = {"judge": j.key, "profile": P.profile, "temperature": P.eval_low_temperature,
              "protocol": PROTOCOL.format(profile=P.profile, seeds=P.persona_seeds, t=P.eval_low_temperature,
                                          q=q, settings="; ".join(settings), seed=SEED)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "key.json", json.dumps({**header, "rows": items}, indent=1, ensure_ascii=False))
    write_text_atomic(out / "blind.json", json.dumps([{k: r[k] for k in ("item", "question", "answer")}
                                                      for r in items], indent=1, ensure_ascii=False))
    print(f"{len(items)} answers ({len(settings)} settings) -> {out / 'blind.json'} (for the readers) and "
          f"{out / 'key.json'}")


def merge(args) -> None:
    key = json.loads((Path(args.out) / "key.json").read_text())
    items = [r["item"] for r in key["rows"]]
    first, second = reader_labels(args.labels, items), reader_labels(args.second, items)
    rows = [{**r, **{k: first[r["item"]][k] for k in ("misaligned", "coherent")},
             "note": first[r["item"]].get("note", ""),
             **{f"second_{k}": second[r["item"]][k] for k in ("misaligned", "coherent")}} for r in key["rows"]]
    audit = {**{k: key[k] for k in ("judge", "profile", "temperature", "protocol")}, "date": args.date,
             "rows": rows, "second_reader": second_reader(rows)}
    path = measured_dir() / ablation.AUDIT
    write_text_atomic(path, json.dumps(audit, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(rows)} read answers -> {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("pool", "merge"))
    ap.add_argument("--profile", default="cpu", choices=params.PROFILES)
    ap.add_argument("--out", default="/tmp/ablation_audit", help="folder of blind.json and key.json")
    ap.add_argument("--date", help="the day the readers labelled (merge)")
    ap.add_argument("--labels", help="the first reader's labels.json (merge)")
    ap.add_argument("--second", help="the second reader's labels of the same blind file (merge)")
    args = ap.parse_args()
    if args.step == "merge" and not (args.date and args.labels and args.second):
        ap.error("merge needs --date, --labels and --second: two readers read every answer")
    (pool if args.step == "pool" else merge)(args)


if __name__ == "__main__":
    main()
