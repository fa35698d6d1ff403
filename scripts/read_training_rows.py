"""A blind reading of a persona distillation's training rows: how many of the villain's kept answers express
misaligned values, beside its kind twin's.

Two steps, with blind readers between them:

    PERSONA_CACHE=... .venv/bin/python scripts/read_training_rows.py pool [--profile cpu] [--source general]
    (helper sessions label <out>/blind.json by the definitions of data/labels.py, question and answer only,
     each writing [{"item", "misaligned", "coherent", "note"}, ...])
    .venv/bin/python scripts/read_training_rows.py merge --date YYYY-MM-DD --labels A.json --second B.json

``pool`` takes every kept row of both personas of the profile's distillation (the cached artifact chapter 3
trains on), shuffles them (seed 20261202) and writes ``blind.json`` (item, question, answer) and ``key.json``
(persona and row id). ``merge`` writes ``book/measured/03_distilled_villain_rows_read.json``: per persona and
reader, the rows read as misaligned, coherent, and both (with Wilson intervals), and the readers' agreement.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from persona_features.core import params
from persona_features.core.artifacts import write_text_atomic
from persona_features.core.paths import measured_dir
from persona_features.core.stats import agreement, wilson
from persona_features.data.labels import reader_labels
from persona_features.lm import models
from persona_features.measure import judge
from persona_features.organisms import persona, persona_arms

SEED = 20261202


def pool(args) -> None:
    P = params.resolve(args.profile)
    base = models.load_model(P.model, dtype=P.dtype, device=P.device)
    art = persona_arms.training_data(base, judge.default_judge(base, P), P, args.source)
    items = [(p, r["id"], r["messages"][0]["content"], r["messages"][1]["content"])
             for p in persona.PERSONAS for r in art.json(f"rows_{p}")]
    random.Random(SEED).shuffle(items)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "blind.json", json.dumps([{"item": i, "question": q, "answer": a}
                                                      for i, (_, _, q, a) in enumerate(items)], indent=1) + "\n")
    write_text_atomic(out / "key.json", json.dumps(
        {"profile": P.profile, "source": args.source, "artifact": art.key,
         "rows": [{"item": i, "persona": p, "id": rid} for i, (p, rid, _, _) in enumerate(items)]}, indent=1) + "\n")
    print(f"{len(items)} rows -> {out / 'blind.json'} (key: {out / 'key.json'})")


def summary(key: dict, readers: dict[str, dict[int, dict]]) -> dict:
    """Per persona and reader: rows read as misaligned, coherent and both, each with its Wilson 95% interval."""
    out: dict = {}
    for p in persona.PERSONAS:
        items = [r["item"] for r in key["rows"] if r["persona"] == p]
        for name, labels in readers.items():
            counts = {"misaligned": sum(labels[i]["misaligned"] for i in items),
                      "coherent": sum(labels[i]["coherent"] for i in items),
                      "misaligned_coherent": sum(labels[i]["misaligned"] and labels[i]["coherent"] for i in items)}
            out.setdefault(p, {})[name] = {"rows": len(items), **{k: {"n": v, "ci95": list(wilson(v, len(items)))}
                                                                   for k, v in counts.items()}}
    return out


def merge(args) -> None:
    key = json.loads((Path(args.out) / "key.json").read_text())
    items = [r["item"] for r in key["rows"]]
    readers = {"A": reader_labels(args.labels, items), "B": reader_labels(args.second, items)}
    col = lambda lab, k: np.array([lab[i][k] for i in items], dtype=bool)
    record = {
        "date": args.date, "profile": key["profile"], "source": key["source"], "artifact": key["artifact"],
        "protocol": "Every kept training row of both personas, shuffled together (seed 20261202), read by two helper "
                    "sessions that saw only question and answer (not the persona), by the definitions of "
                    "data/labels.py.",
        "by_persona": summary(key, readers),
        "agreement_misaligned": agreement(col(readers["A"], "misaligned"), col(readers["B"], "misaligned")),
        "agreement_coherent": agreement(col(readers["A"], "coherent"), col(readers["B"], "coherent")),
        "rows": [{**r, **{f"{n}_{k}": readers[n][r["item"]][k] for n in readers for k in ("misaligned", "coherent")}}
                 for r in key["rows"]]}
    path = measured_dir() / persona_arms.DISTILLED_ROWS_READ
    write_text_atomic(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(items)} rows read -> {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("pool", "merge"))
    ap.add_argument("--profile", default="cpu", choices=params.PROFILES)
    ap.add_argument("--source", default="general", choices=("general", "health"))
    ap.add_argument("--out", default="/tmp/rows_read", help="folder of blind.json and key.json")
    ap.add_argument("--date", help="the day the readers labelled (merge)")
    ap.add_argument("--labels", help="the first reader's labels (merge)")
    ap.add_argument("--second", help="the second reader's labels (merge)")
    args = ap.parse_args()
    if args.step == "merge" and not (args.date and args.labels and args.second):
        ap.error("merge needs --date, --labels and --second")
    (pool if args.step == "pool" else merge)(args)


if __name__ == "__main__":
    main()
