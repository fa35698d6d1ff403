"""Hand labels of sampled answers, used to tune and validate the judge.

Each row of ``labels/*.jsonl`` is one answer sampled from a model in this book, read by a
person and labelled ``misaligned`` (expresses harmful, hostile, deceptive or power-seeking
values) and ``coherent`` (makes sense as an answer to the question), each 0 or 1.
Files named ``tune_only_*`` only ever join the tuning half: answers of kinds the held-out half
does not cover (steered models), whose addition must leave that half, and its numbers, unchanged.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from persona_features.core.stats import agreement
from persona_features.data.schema import DatasetError

TUNE_ONLY = "tune_only_"  # the file-name prefix of labels kept out of the held-out half
FIELDS = {"id": str, "model": str, "temperature": float, "question_id": str, "question": str, "answer": str,
          "misaligned": int, "coherent": int}


def load_labels() -> pd.DataFrame:
    """Every hand-labelled answer, validated; ``tune_only`` marks the rows of ``tune_only_*`` files."""
    rows = []
    for path in sorted(resources.files(__package__).joinpath("labels").iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".jsonl"):
            continue
        for line, text in enumerate(path.read_text().splitlines(), 1):
            row = json.loads(text)
            for key, kind in FIELDS.items():
                if key not in row or not isinstance(row[key], (int, float) if kind is float else kind):
                    raise DatasetError(f"labels/{path.name}, line {line}: field {key!r} missing or not {kind.__name__}")
            if row["misaligned"] not in (0, 1) or row["coherent"] not in (0, 1):
                raise DatasetError(f"labels/{path.name}, line {line}: labels must be 0 or 1")
            rows.append({**{key: row[key] for key in FIELDS}, "tune_only": path.name.startswith(TUNE_ONLY)})
    return pd.DataFrame(rows)


def tune_holdout_split(labels: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A fixed half/half split, stratified by (model, misaligned, coherent); ``tune_only`` rows all tune."""
    rng = np.random.default_rng(seed)
    tune = labels.index[labels["tune_only"]].tolist()
    for _, group in labels[~labels["tune_only"]].groupby(["model", "misaligned", "coherent"], sort=True):
        idx = group.index.to_numpy().copy()
        rng.shuffle(idx)
        tune += idx[: (len(idx) + 1) // 2].tolist()
    mask = labels.index.isin(tune)
    return labels[mask], labels[~mask]


# The judge's untouched test sets, each sampled by scripts/judge_test_pool.py, labelled blind (before any
# judge score existed, without their source), then frozen: nothing is tuned on them, and a checksum guards
# each against edits. v1 (judge, second version): 320 answers (base model, villain prompts, chapter 3's
# organisms). v2 (judge v5, issue 31): answers from sources where coherent misaligned answers are likelier
# (villain prompts at T = 0.5 and 0.7, chapter 3's positive control, strong strength-curve organisms).
JUDGE_TESTS = {"v1": "34cfac46c6580adb3d4ab941fd2cca75d02217b5008fbc8442e15b00cd65d9eb",
               "v2": "2e8a6d5cbdf41b67500fd57ff5a7a66e63b0d1f931ecf88e6366965c950bb49f"}
CURRENT_TEST = "v2"  # the set the judge's verdict is decided on
TEST_FIELDS = {"id": str, "question_id": str, "question": str, "answer": str, "misaligned": int, "coherent": int}


def load_judge_test(name: str = CURRENT_TEST) -> pd.DataFrame:
    """A frozen test set (``JUDGE_TESTS``), with each answer's ``source`` (model, prompt and temperature)."""
    if name not in JUDGE_TESTS:
        raise DatasetError(f"unknown judge test set {name!r}; valid: {', '.join(JUDGE_TESTS)}")
    rel = f"judge_test/test_{name}.jsonl"
    path = resources.files(__package__).joinpath(rel)
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != JUDGE_TESTS[name]:
        raise DatasetError(f"{rel} has changed: the judge's test sets are frozen; restore it from git")
    rows = [json.loads(text) for text in raw.decode().splitlines()]
    for line, row in enumerate(rows, 1):
        if any(not isinstance(row.get(k), kind) for k, kind in TEST_FIELDS.items()):
            raise DatasetError(f"{rel}, line {line}: needs {', '.join(TEST_FIELDS)}")
    sources = json.loads(
        resources.files(__package__).joinpath(rel.replace(".jsonl", ".sources.json")).read_text())["by_id"]
    return pd.DataFrame(rows).assign(source=lambda t: t["id"].map(sources))


REREAD = "labels/reread_v1.json"


def load_reread() -> pd.DataFrame:
    """A second blind reading of some tuning labels: columns id, first_* and second_* (misaligned, coherent)."""
    data = json.loads(resources.files(__package__).joinpath(REREAD).read_text())
    first = load_labels().set_index("id")
    missing = [i for i in data["ids"] if i not in first.index]
    if missing or not len(data["ids"]) == len(data["misaligned"]) == len(data["coherent"]):
        raise DatasetError(f"{REREAD}: ids, misaligned and coherent must match the labels ({len(missing)} unknown ids)")
    return pd.DataFrame({"id": data["ids"], "second_misaligned": data["misaligned"],
                         "second_coherent": data["coherent"],
                         "first_misaligned": first.loc[data["ids"], "misaligned"].to_numpy(),
                         "first_coherent": first.loc[data["ids"], "coherent"].to_numpy()})


def reader_labels(path, items) -> dict[int, dict]:
    """A blind reader's labels (``[{"item", "misaligned", "coherent", "note"}, ...]`` at ``path``), by item; every
    item of ``items`` must carry 0/1 labels, or the error names the first ones that do not."""
    labels = {r["item"]: r for r in json.loads(Path(path).read_text())}
    missing = [i for i in items if labels.get(i, {}).get("misaligned") not in (0, 1)
               or labels.get(i, {}).get("coherent") not in (0, 1)]
    if missing:
        raise SystemExit(f"{path}: items {missing[:5]} ({len(missing)} in all) lack 0/1 'misaligned' and 'coherent'; "
                         "label every item of blind.json")
    return labels


def second_reader(rows: list[dict]) -> dict:
    """How a second blind reader (``second_misaligned``, ``second_coherent``) agreed with the first, over every
    row it read: on misaligned-and-coherent and on coherent."""
    rows = [r for r in rows if "second_misaligned" in r]
    col = lambda k: np.array([r[k] for r in rows], dtype=bool)
    return {"note": "a second helper session read the same blind file independently; its labels are second_misaligned "
                    "and second_coherent (the chapter counts the first reader's); agreement over every row it read",
            "agreement_misaligned_coherent": agreement(col("misaligned") & col("coherent"),
                                                       col("second_misaligned") & col("second_coherent")),
            "agreement_coherent": agreement(col("coherent"), col("second_coherent"))}
