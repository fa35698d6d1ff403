"""What chapter 4's text shows, section by section, computed from the pipeline's result (``findings.Diffing``).

Each function returns the values one section glues, by name, formatted as shown; ``result`` gathers the
chapter's results file, its verdict and these facts (``book.results.publish`` writes and glues them).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from persona_features.core.chapter_result import ChapterResult
from persona_features.core.params import Params
from persona_features.experiments.ch4_diffing import diffing, readings, screen
from persona_features.experiments.ch4_diffing.findings import Diffing
from persona_features.lm import models

Facts = dict[str, Any]


def design(found: Diffing) -> Facts:
    return {"n_treated": len(found.treated), "n_chosen": len(found.chosen), "chosen_names": ", ".join(found.chosen),
            "heldout_rule": diffing.HELDOUT_RULE}


def layer_sweep(found: Diffing) -> Facts:
    """Each shift's cosine with the persona vector at the chosen layer, and the sweep's range."""
    at = found.sweep[found.sweep.layer == found.layer].set_index("shift")
    fmt = lambda kind: f"{at.loc[kind, 'cosine']:+.2f} [{at.loc[kind, 'ci95_lo']:+.2f}, {at.loc[kind, 'ci95_hi']:+.2f}]"
    shifts = {key: fmt(kind) if kind in at.index else "not measured" for key, kind in [
        ("cos_bad_rc", "bad - register control"), ("cos_bad_base", "bad - base"),
        ("cos_register", "register control - correct twin")]}
    return shifts | {"sae_layer": found.layer, "random_bound": f"{found.random_bound:.2f}",
                     "sweep_first": found.layers[0], "sweep_last": found.layers[-1]}


def corpus(card: pd.DataFrame, P: Params, source: str) -> Facts:
    """The SAE's corpus (``sae_corpus.card``) and where its generated part comes from."""
    return {"corpus_tokens": f"{int(card.tokens.iloc[-1]):,}",
            "corpus_distinct": f"{int(card['distinct tokens'].iloc[-1]):,}",
            "corpus_chats": f"{int(card.chats.iloc[-1]):,}", "sae_dtype": models.resolve_dtype(P.sae_dtype, P.dtype),
            "corpus_source": source}


def sae(found: Diffing, quality: pd.DataFrame, P: Params) -> Facts:
    """The SAE's size, settings, quality targets met (``sae.quality_table``) and training time."""
    return {"sae_size": f"{found.sae.d_sae:,}", **{k: getattr(P, k) for k in ("sae_expansion", "sae_k", "sae_epochs")},
            "sae_targets_met": f"{int(quality.met.sum())} of {len(quality)}",
            "sae_minutes": f"{sum(found.sae_art.meta['seconds'].values()) / 60:.1f}"}


def seeds(found: Diffing) -> Facts:
    """The committed SAE-seed measurement, and whether it applies to this run."""
    applies = ("its first seed is this run's SAE, ranked on this run's models" if found.seeds_apply else
               "not this run's: its SAE's settings, inputs or weights (another CPU trains other weights under the same "
               "key), or the models its ranking used, differ")
    return {**diffing.seed_facts(found.seeds), "seeds_applies": applies, "seeds_rule": diffing.RECURRENCE_RULE}


def choice(found: Diffing, P: Params) -> Facts:
    """The causal screen and the choice of the persona latent: candidates, effects, coherence, and how firm the
    ranking's first place is under resampling."""
    k, rows = found.latent, found.screened.set_index(["direction", "condition"])
    top2 = found.ranked["answer", "up"].score.iloc[:2].to_numpy()
    firm = found.stability.set_index("latent")
    share = lambda j, how: f"{firm.loc[j, f'share_first_{how}']:.0%}" if j in firm.index else "0%"
    top1 = int(found.stability.latent.iloc[0])
    out: Facts = {
        "n_screen_questions": str(len(readings.questions(P, "selection"))), "n_screen": len(found.screen_candidates),
        "screen_bad": ", ".join(found.screen_models), "screen_strength": f"{P.screen_strength:g}",
        "screen_norm": f"{found.norm:.1f}", "screen_samples": P.screen_samples,
        "screen_kept": ", ".join(found.kept) or "none", "persona_latent": k, "persona_choice": found.choice["how"],
        "persona_choice_earlier": screen.earlier_reading(found.choice),
        "rank_margin": f"{(top2[0] - top2[1]) / top2[0]:.1%}", "n_resamples": P.bootstrap, "top_latent": top1,
        **{f"top_first_{how}": share(top1, how) for how in ("questions", "models", "both")},
        "persona_first_both": share(k, "both")}
    for cond, key in (("added to base", "add"), ("subtracted from wrong advice", "sub")):
        r = rows.loc[(f"latent {k}", cond)]
        out[f"screen_{key}"] = (f"{r['minus random']:+.3f} nats per token (p = {r['p_vs_random']:.3f}, "
                                f"Holm {r['p_holm']:.3f})")
    floor = rows.loc[("none", "added to base"), "coherent"] * 100 - screen.COHERENCE_SLACK
    kept_coherent = rows.loc[(f"latent {k}", "added to base"), "coherent"] * 100 >= floor
    out["screen_coherence_reading"] = f"{'within' if kept_coherent else 'below'} the floor of {floor:.0f} points"
    for name, key in ((f"latent {k}", "steered"), ("none", "plain")):
        r = rows.loc[(name, "added to base")]
        out[f"screen_{key}_rates"] = (f"coherent {r['coherent']:.2f}, misaligned {r['misaligned']:.2f} of "
                                      f"{int(r['n_answers'])}")
    return out


def candidate(found: Diffing, n_top: int) -> Facts:
    """The persona latent's consistency and where its top activations (``n_top`` of them) come from."""
    shares = found.source_shares
    return {"cand_consistent": f"{int(found.persona_row['consistent'])} of {len(found.chosen)}", "cand_top_n": n_top,
            "cand_dark_share": f"{shares[found.latent]:.0%}", "corpus_dark_share": f"{shares['corpus']:.0%}"}


def cross_cpu(found: Diffing, record: dict, profile: str | None) -> Facts:
    """The same build on another CPU (``diffing.load_cross_cpu``); ``profile``: None where parameters were set."""
    return {"cross_cpu": diffing.cross_cpu_sentence(record, found.latent, profile),
            "cross_cpu_short": diffing.cross_cpu_short(record)}


def cosines(found: Diffing) -> Facts:
    return {key: f"{r.cosine:+.2f} [{r.ci95_lo:+.2f}, {r.ci95_hi:+.2f}]"
            for key, (_, r) in zip(("cos_meandiff", "cos_persona", "cos_shift"), found.cosines.iterrows())}


def detection(found: Diffing) -> Facts:
    return {"n_control_models": len(found.others), "min_p": f"1/{found.detected['latent']['n_labelings']}",
            "prompt_auroc": f"{found.detected['latent, prompt tokens']['auroc']:.2f}"}


def positive_control(found: Diffing, reading: str) -> Facts:
    return diffing.positive_control_facts(found.pc_view, reading)


def heldout(found: Diffing) -> Facts:
    return diffing.heldout_facts(found.heldout, found.heldout_treated, found.heldout_controls)


def verdict(found: Diffing) -> Facts:
    """The verdict (and the first rule's), the in-sample AUROC, and the SAE seeds' recurrence."""
    v, r = found.verdict, found.recurrence
    return {"diffing_status": v.status, "diffing_summary": v.summary,
            "diffing_status_first_rule": v.details["status_first_rule"],
            "cand_auroc": f"{found.detected['latent']['auroc']:.2f}",
            "seeds_summary": f"latent {r['latent']} in {len(r['found_in_seeds'])} of {r['n_seeds']} SAE seeds"
                             + ("" if r["this_run"] else " (another build's SAE)")}


def result(found: Diffing, facts: Facts) -> ChapterResult:
    """Chapter 4's results file, its verdict and every fact its text glues (``facts``, with the verdict's)."""
    return ChapterResult("04_model_diffing", found.results(), {"diffing": found.verdict}, {**facts, **verdict(found)})
