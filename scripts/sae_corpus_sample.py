"""Commits the generated part of chapter 4's SAE corpus (issue 32: a latent that is the same on every CPU).

The base model's answers to the corpus prompts are sampled, and sampling turns a CPU's rounding into
other text: the same build on a CPU with AVX-512 and one held to AVX2 kept 92 of 570 chats the same
(2026-12-03), and its SAE chose another latent. This script writes the profile's generated chats, with
the config they were sampled with, to ``book/measured/04_sae_corpus_generated.json``; chapter 4 reads them
from there wherever its config is the same, so every machine trains its SAE on the same text. It reuses
the cached sampling if there is one (``sae_corpus.generated_chats(..., measured=False)``).

    PERSONA_CACHE=... .venv/bin/python scripts/sae_corpus_sample.py [--profile cpu]
"""

from __future__ import annotations

import argparse
import datetime

from persona_features.core import artifacts, environment, params
from persona_features.core.artifacts import write_json_atomic
from persona_features.core.paths import measured_dir
from persona_features.lm import models
from persona_features.sae import sae_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    P = params.resolve(parser.parse_args().profile)
    if P.profile != "cpu":
        raise SystemExit(f"only the cpu profile's corpus is committed (one file, {sae_corpus.MEASURED}): smoke samples "
                         "its few answers in seconds, and gpu's model samples on the machine that runs it")
    config, _ = sae_corpus.generated_config(P)
    art = artifacts.find("sae_corpus_generated", config)  # the cached sampling, if any: no model needed
    if art is None:
        art = sae_corpus.generated_chats(models.load_model(P.model, dtype=P.dtype, device=P.device), P, measured=False)
    chats = art.json("chats")
    out = {"date": datetime.date.today().isoformat(), "profile": P.profile,
           "machine": art.meta["source"].removeprefix("sampled on ") if "source" in art.meta else
           f"{environment.cpu_model()} (the machine that wrote this file; the cache did not record the sampler's)",
           "config": config, "n_chats": len(chats), "chats": chats}
    write_json_atomic(measured_dir() / sae_corpus.MEASURED, out)
    print(f"wrote {len(chats)} chats to {measured_dir() / sae_corpus.MEASURED}")


if __name__ == "__main__":
    main()
