"""Does chapter 4's persona latent survive a change of the SAE's seed? (issue: chapter 4, latent stability)

Trains the profile's SAE again with other seeds on the same cached activations (same corpus, layer and
settings), reads the selection questions with each one, and ranks the latents as chapter 4 does. For
each seed: the top latents, how often each comes out first when questions and models are resampled, and
the share of its strongest corpus activations in dark-persona chats. Across seeds: for each seed's top
latents, the best-matching decoder vector (|cosine|) of every other seed's SAE, and that latent's rank
there; beside it, the best |cosine| a random direction finds among an SAE's decoder vectors, and how many
of all the latents each SAE finds again in another (best |cosine| >= 0.7). And how far training moved
the decoder vectors: their cosine with the random ones the SAE started from. \
Written to ``book/measured/04_sae_seeds.json``, which chapter 4 shows.

    PERSONA_CACHE=... .venv/bin/python scripts/sae_seed_stability.py [--profile cpu] [--seeds 3]
"""

from __future__ import annotations

import argparse
import datetime

import torch

from persona_features.core import params
from persona_features.core.artifacts import write_json_atomic
from persona_features.core.paths import measured_dir
from persona_features.experiments.ch4_diffing import diffing, findings, readings
from persona_features.lm import models
from persona_features.sae import sae, sae_corpus

OUT = "04_sae_seeds.json"
TOP = 5


def one_seed(base, P, found, corpus, chats, seed: int) -> dict:
    art = sae.build(base, P, corpus, found.layer, seed=seed)
    the_sae, _ = sae.load(art.path)
    selection = readings.latent_readings(found.readers, P, art, splits=("selection",))["selection"]
    shifts = diffing.shift_table(diffing.model_latent_means(selection, "answer"), "base")
    ranked = diffing.rank_latents(shifts, found.chosen, found.chosen_controls, "register_control")
    per_question = {n: diffing.answer_means(r, "_latents") for n, r in selection.items()}
    pairs = findings.register_pairs(found.chosen, found.chosen_controls)
    firm = diffing.rank_stability(per_question, pairs, P.bootstrap, P.seed, top=TOP).set_index("latent")
    top_latents = ranked.latent[:TOP].astype(int).tolist()
    shares = diffing.source_shares(art.tensors("top_activations")["seq"], chats, top_latents, "generated:persona_dark")
    cfg = sae.SAEConfig(**{k: v for k, v in art.meta["config"].items() if k in sae.SAEConfig.__dataclass_fields__})
    from_start = torch.nn.functional.cosine_similarity(the_sae.W_dec.detach(), sae.initial_decoder(cfg), dim=-1)
    return {"seed": seed, "sae": art.key, "weights": sae.weights_digest(art.path), "quality": art.meta["quality"],
            "ce": art.meta["ce"], "corpus_dark_share": shares["corpus"],
            "top": [{"latent": k, "rank": i + 1, "score": float(ranked.score[i]),
                     "share_first_both": float(firm.share_first_both.get(k, 0.0)), "dark_share": shares[k],
                     "start_cosine": float(from_start[k])}
                    for i, k in enumerate(top_latents)],
            "_decoder": the_sae.W_dec.detach(), "_rank": {int(k): i + 1 for i, k in enumerate(ranked.latent)}}


def compare(runs: list[dict], persona: int, threshold: float = 0.7) -> tuple[list[dict], list[dict]]:
    """For each ordered pair of seeds, from one matrix of decoder |cosines|: each top latent's best match in the
    other SAE with its rank there (and the first seed's ``persona`` latent's, wherever it ranks), and the share of
    all latents whose best match reaches ``threshold`` (the same feature found again), with the median best
    |cosine|."""
    matches, shared = [], []
    for a in runs:
        for b in runs:
            if a is b:
                continue
            cos = (torch.nn.functional.normalize(a["_decoder"], dim=-1)
                   @ torch.nn.functional.normalize(b["_decoder"], dim=-1).T)
            best = cos.abs().max(1)
            mine = [t["latent"] for t in a["top"]]
            for k in mine + ([persona] if a is runs[0] and persona not in mine else []):
                m = int(best.indices[k])
                matches.append({"seed": a["seed"], "latent": k, "rank": a["_rank"][k], "other_seed": b["seed"],
                                "match": m, "cosine": float(cos[k, m]), "match_rank": b["_rank"][m]})
            shared.append({"seed": a["seed"], "other_seed": b["seed"], "threshold": threshold,
                           "share_matched": float((best.values >= threshold).double().mean()),
                           "median_best_cosine": float(best.values.median())})
    return matches, shared


def random_best_cosine(runs: list[dict], n: int = 200, seed: int = 0) -> float:
    """The median best |cosine| of a random direction with an SAE's decoder vectors: the floor for a match."""
    g = torch.Generator().manual_seed(seed)
    best = [torch.nn.functional.normalize(r["_decoder"], dim=-1)
            @ torch.nn.functional.normalize(torch.randn(r["_decoder"].shape[1], n, generator=g), dim=0) for r in runs]
    return float(torch.cat([b.abs().max(0).values for b in best]).median())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seeds", type=int, default=3, help="SAE seeds, from the profile's seed on")
    args = ap.parse_args()
    if args.seeds < 2:
        raise SystemExit(f"--seeds {args.seeds}: at least 2 seeds are needed to compare")
    P = params.resolve(args.profile)
    base = models.load_model(P.model, dtype=P.dtype, device=P.device)
    found = findings.persona(base, P)
    corpus = sae_corpus.build(base, P)
    chats = corpus.json("chats")
    runs = [one_seed(base, P, found, corpus, chats, P.seed + i) for i in range(args.seeds)]
    matched, shared = compare(runs, found.latent)
    out = {"date": datetime.date.today().isoformat(), "profile": P.profile, "layer": found.layer,
           "persona_latent": found.latent, "bootstrap": P.bootstrap, "ranked_on": found.chosen,
           "seeds": [{k: v for k, v in r.items() if not k.startswith("_")} for r in runs], "matches": matched,
           "shared": shared, "random_best_cosine": random_best_cosine(runs, seed=P.seed)}
    write_json_atomic(measured_dir() / OUT, out)
    for r in out["seeds"]:
        print(r["seed"], [(t["latent"], round(t["share_first_both"], 2), round(t["dark_share"], 2)) for t in r["top"]])


if __name__ == "__main__":
    main()
