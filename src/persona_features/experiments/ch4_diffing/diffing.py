"""Model diffing (chapter 4): which SAE latents fine-tuning switches on, and which it switches off.

Every model is read on the same chats at the same layer (``readings``); each latent's mean
activation is compared with the base model's. Much of any fine-tune's shift is generic (shared by the bad
models and their controls), so a latent's score is its rise in the wrong-advice models minus
the rise in their own controls, matched model by model. Each kind of control is reported apart;
the register-matched one separates values from style.

Also here: the layer sweep and the directions compared with a latent (cosines with bootstrap
intervals over questions), detection (AUROC with an exact permutation p-value) and the verdict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from itertools import combinations, product

import pandas as pd
import torch

from persona_features.core.chapter_result import Verdict
from persona_features.core.paths import measured_dir


def shift_table(means: Mapping[str, torch.Tensor], base: str) -> pd.DataFrame:
    """One row per latent, one column per model: its mean activation minus the base model's."""
    if base not in means:
        raise KeyError(f"no means for the base model {base!r}; have {', '.join(means)}")
    return pd.DataFrame({name: (m - means[base]).numpy() for name, m in means.items() if name != base})


def rank_latents(shifts: pd.DataFrame, treated: Sequence[str], controls: Mapping[str, Sequence[str]],
                 primary: str, rising: bool = True) -> pd.DataFrame:
    """Latents ranked by how much more the ``treated`` models moved them than their controls did.

    ``controls`` maps a kind (e.g. ``register_control``) to one model per treated model, in the same
    order. ``score`` = mean shift of the treated models minus that of the ``primary`` controls;
    ``consistent`` counts treated models that moved a latent further than their own primary control.
    ``rising=False`` ranks the largest falls instead (the helpful-assistant side).
    """
    if primary not in controls:
        raise KeyError(f"primary control {primary!r} is not among the controls: {', '.join(controls)}")
    for kind, models in controls.items():
        if len(models) != len(treated):
            raise ValueError(f"control {kind!r} lists {len(models)} models for {len(treated)} treated ones")
    missing = [m for m in [*treated, *(m for ms in controls.values() for m in ms)] if m not in shifts]
    if missing:
        raise KeyError(f"no shifts for {', '.join(missing)}")
    out = pd.DataFrame({"latent": shifts.index, "shift_treated": shifts[list(treated)].mean(1).to_numpy()})
    for kind, models in controls.items():
        out[f"shift_{kind}"] = shifts[list(models)].mean(1).to_numpy()
    out["score"] = out["shift_treated"] - out[f"shift_{primary}"]
    sign = 1 if rising else -1
    own = shifts[list(treated)].to_numpy() - shifts[list(controls[primary])].to_numpy()
    out["consistent"] = (sign * own > 0).sum(1)
    return out.sort_values("score", ascending=not rising, kind="stable").reset_index(drop=True)


def rank_stability(per_question: Mapping[str, torch.Tensor], pairs: Sequence[tuple[str, str]], n_boot: int,
                   seed: int, top: int = 5, min_share: float = 0.01) -> pd.DataFrame:
    """How often each latent ranks first when the data behind ``rank_latents`` is resampled.

    ``per_question[name]`` is a model's ``[n_q, d_sae]`` mean activations; a latent's score is, as in
    ``rank_latents``, the mean over ``pairs`` (treated, its own control) of the treated minus the control
    model's mean. Resampled: the questions, the pairs (models), or both at once. One row per latent
    among the ``top`` of the full sample or first in at least ``min_share`` of the resamples of any kind,
    with its ``share_first`` under each.
    """
    missing = [m for pair in pairs for m in pair if m not in per_question]
    if missing:
        raise KeyError(f"no per-question means for {', '.join(dict.fromkeys(missing))}")
    if not pairs:
        raise ValueError("rank_stability needs at least one (treated, control) pair")
    diff = torch.stack([per_question[t].double() - per_question[c].double() for t, c in pairs])  # [p, q, d]
    n_pairs, n_q, _ = diff.shape
    score = diff.mean((0, 1))
    flat_q = torch.full((n_boot, n_q), 1.0 / n_q, dtype=torch.float64)
    flat_p = torch.full((n_boot, n_pairs), 1.0 / n_pairs, dtype=torch.float64)
    w_q = bootstrap_weights(n_q, n_boot, seed).double()
    w_p = bootstrap_weights(n_pairs, n_boot, seed + 1).double()
    firsts = {resampled: torch.einsum("bp,bq,pqd->bd", wp, wq, diff).argmax(1)
              for resampled, (wq, wp) in {"questions": (w_q, flat_p), "models": (flat_q, w_p),
                                          "both": (w_q, w_p)}.items()}
    order = score.argsort(descending=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(1, len(order) + 1)
    shares = {r: torch.bincount(f, minlength=len(score)).double() / n_boot for r, f in firsts.items()}
    often = torch.stack(list(shares.values())).max(0).values >= min_share
    shown = dict.fromkeys([*order[:top].tolist(), *often.nonzero().flatten().tolist()])
    rows = [{"latent": k, "rank": int(rank[k]), "score": float(score[k]),
             **{f"share_first_{r}": float(v[k]) for r, v in shares.items()}} for k in shown]
    return pd.DataFrame(rows).sort_values("rank", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- directions in the residual stream

def sweep_layers(n_layers: int) -> list[int]:
    """The layers the layer sweep covers: the middle of the model (8-24 of SmolLM2-135M's 30)."""
    return list(range(round(n_layers * 0.25), round(n_layers * 0.8) + 1))


def answer_means(reading: dict[str, torch.Tensor], suffix: str = "") -> torch.Tensor:
    """Per question, the mean over both sides' answer tokens (aligned and misaligned references)."""
    return (reading[f"aligned{suffix}"] + reading[f"misaligned{suffix}"]) / 2


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


def bootstrap_weights(n: int, n_boot: int, seed: int) -> torch.Tensor:
    """``[n_boot, n]`` resampling weights over ``n`` questions (each row sums to 1)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(n, (n_boot, n), generator=g)
    return torch.zeros(n_boot, n).scatter_add_(1, idx, torch.ones(n_boot, n)) / n


def cosine_with_interval(per_q_a: torch.Tensor, per_q_b: torch.Tensor, n_boot: int,
                         seed: int) -> dict[str, torch.Tensor]:
    """Cosine of the question-means of two per-question direction estimates ``[n_q, ..., d]``, and a
    95% bootstrap interval over questions (the same resample for both)."""
    w = bootstrap_weights(per_q_a.shape[0], n_boot, seed)
    boot = _cosines(torch.einsum("bq,q...->b...", w, per_q_a), torch.einsum("bq,q...->b...", w, per_q_b))
    return {"cosine": _cosines(per_q_a.mean(0), per_q_b.mean(0)),
            "ci95_lo": boot.quantile(0.025, dim=0), "ci95_hi": boot.quantile(0.975, dim=0)}


def random_cosine_bound(d_model: int, n: int = 2000, seed: int = 0) -> float:
    """95th percentile of |cosine| between two random directions of ``d_model`` dimensions."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, d_model, generator=g), torch.randn(n, d_model, generator=g)
    return float(_cosines(a, b).abs().quantile(0.95))


def layer_sweep(readings: Mapping[str, dict], pairs: Mapping[str, Sequence[tuple[str, str]]], persona: torch.Tensor,
                layers: Sequence[int], n_boot: int, seed: int) -> pd.DataFrame:
    """Per layer and kind of shift: the cosine of the mean shift (treated minus control, answer tokens,
    averaged over the pairs) with the per-question ``persona`` direction ``[n_q, n_layers, d]``."""
    rows = []
    for kind, kind_pairs in pairs.items():
        shift = torch.stack([answer_means(readings[t]) - answer_means(readings[c]) for t, c in kind_pairs]).mean(0)
        cos = cosine_with_interval(shift, persona, n_boot, seed)
        rows += [{"layer": layer, "shift": kind, **{k: float(v[j]) for k, v in cos.items()}}
                 for j, layer in enumerate(layers)]
    return pd.DataFrame(rows)


def choose_layer(sweep: pd.DataFrame, kind: str) -> int:
    """The layer where the ``kind`` shift lines up best with the persona direction."""
    rows = sweep[sweep["shift"] == kind]
    return int(rows.loc[rows["cosine"].idxmax(), "layer"])


# ---------------------------------------------------------------- latents per model, and detection

def model_latent_means(lat: Mapping[str, dict], tokens: str) -> dict[str, torch.Tensor]:
    """Each model's mean latent activations ``[d_sae]`` over the questions, on ``prompt`` or ``answer`` tokens."""
    if tokens not in ("prompt", "answer"):
        raise ValueError(f"tokens must be 'prompt' or 'answer', got {tokens!r}")
    return {name: (r["prompt_latents"] if tokens == "prompt" else answer_means(r, "_latents")).mean(0)
            for name, r in lat.items()}


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = torch.as_tensor(positive, dtype=torch.float64), torch.as_tensor(negative, dtype=torch.float64)
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def grouped_auroc(values: torch.Tensor, treated: Sequence[bool], groups: Sequence[str]) -> float:
    """AUROC over the (treated, control) pairs within each group only, every such pair weighted alike (one group:
    the plain AUROC)."""
    total = weight = 0.0
    for g in dict.fromkeys(groups):
        pos = [float(values[i]) for i, (t, h) in enumerate(zip(treated, groups)) if h == g and t]
        neg = [float(values[i]) for i, (t, h) in enumerate(zip(treated, groups)) if h == g and not t]
        if pos and neg:
            total += auroc(pos, neg) * len(pos) * len(neg)
            weight += len(pos) * len(neg)
    if not weight:
        raise ValueError("no group holds both a treated and a control model")
    return total / weight


def detection(per_question: Mapping[str, torch.Tensor], treated: Sequence[str], controls: Sequence[str],
              n_boot: int, seed: int, groups: Mapping[str, str] | None = None) -> dict:
    """AUROC of the models' mean scores (``per_question[name]`` is ``[n_q]``) separating ``treated`` from
    ``controls``: a 95% bootstrap interval over questions, and the exact permutation p-value over
    which models carry the treated label (one-sided: treated higher). With ``groups`` (model -> group), each
    treated model is compared only with the controls of its own group, and labels are permuted within groups."""
    names = [*treated, *controls]
    group = [groups[n] if groups else "" for n in names]
    is_treated = [i < len(treated) for i in range(len(names))]
    matrix = torch.stack([per_question[n].double() for n in names])  # [models, n_q]
    means = matrix.mean(1)
    value = grouped_auroc(means, is_treated, group)
    w = bootstrap_weights(matrix.shape[1], n_boot, seed).double()
    boot = torch.tensor([grouped_auroc(m, is_treated, group) for m in (w @ matrix.T)])
    members = [[i for i, h in enumerate(group) if h == g] for g in dict.fromkeys(group)]
    per_group = [list(combinations(m, sum(is_treated[i] for i in m))) for m in members]
    null = []
    for choice in product(*per_group):
        chosen = {i for c in choice for i in c}
        null.append(grouped_auroc(means, [i in chosen for i in range(len(names))], group))
    return {"auroc": value, "ci95_lo": float(boot.quantile(0.025)), "ci95_hi": float(boot.quantile(0.975)),
            "p_value": sum(v >= value - 1e-12 for v in null) / len(null), "n_treated": len(treated),
            "n_controls": len(controls), "n_labelings": len(null), "scores": dict(zip(names, means.tolist())),
            **({"groups": dict(groups)} if groups else {})}


def direction_table(latent_direction: torch.Tensor, directions: Mapping[str, torch.Tensor], n_boot: int, seed: int,
                    random_bound: float) -> pd.DataFrame:
    """Cosine of a latent's decoder vector with each per-question direction estimate ``[n_q, d]`` (95%
    bootstrap interval over questions), beside the random-direction bound."""
    rows = []
    for name, per_q in directions.items():
        cos = cosine_with_interval(latent_direction.expand_as(per_q), per_q, n_boot, seed)
        rows.append({"direction": name, **{k: float(v) for k, v in cos.items()}, "random 95%": random_bound})
    return pd.DataFrame(rows)


def source_shares(top_seq: torch.Tensor, chats: Sequence[dict], latents: Sequence[int], source: str) -> dict:
    """Share of each latent's top-activating tokens that lie in chats of ``source``, and the corpus share."""
    is_source = torch.tensor([c["source"] == source for c in chats])
    return {"corpus": float(is_source.float().mean()),
            **{int(k): float(is_source[top_seq[:, k].long()].float().mean()) for k in latents}}


# The first rule (until 2026-12-03): the choice and the detection test used the same wrong-advice models.
FIRST_VERDICT_RULE = (
    "The candidate is the persona latent that the causal screen chose among the latents that rose most "
    "in the wrong-advice models over their own register controls (selection questions, answer tokens; "
    "the screen's rule above). (a) It rose more than its own register control in every "
    "wrong-advice model. (b) On the scoring questions its mean activation separates the wrong-advice "
    "models from all control fine-tunes: exact permutation p < 0.05 over which models carry the label. "
    "'Replicated': (a), (b) and it survived the screen; 'partial': two of the three; 'inconclusive': "
    "one; 'not replicated': none.")
HELDOUT_RULE = (
    "Written on 2026-12-03 (issue 32), after earlier builds had reported an AUROC over the same models the latent was "
    "chosen on: the layer, the ranking, the causal screen and the directions use only the wrong-advice models of the "
    "main domain (health) and their own controls. Detection is then tested on labelled models that this choice never "
    "saw: every other domain's wrong-advice model against its own controls, and chapter 3's positive control against "
    "its twin, each seed a model. Each misaligned model is compared only with the controls of its own group (its "
    "domain's controls, or the twins), and the permutation p-value gives the misaligned label anew within each "
    "group. (The SAE itself was trained on a corpus that holds rows of every advice and code fine-tuning set, "
    "though none of the persona organisms' answers; it is the choice that never saw these models.) Added the same "
    "day, before chapter 4 had read it in any profile (a script of chapter 3 had trained and measured it at cpu on "
    "2026-12-02): where the profile trains chapter 3's narrow persona organism (gpu), its seeds join the test "
    "against their twins, as a group of their own.")
VERDICT_RULE = (
    "Amended on 2026-12-03 (the held-out rule). The candidate is the persona latent that the causal screen chose "
    "among the latents that rose most in the main domain's wrong-advice models over their own register controls "
    "(selection questions, answer tokens). (a) It rose more than its own register control in every one of those "
    "models. (b) On the scoring questions its mean activation separates the held-out misaligned models from their "
    "controls: exact permutation p < 0.05 (not met where the profile has no held-out models, or too few for any "
    "labelling to reach p < 0.05). 'Replicated': (a), (b) and it survived the screen; 'partial': two of the three; "
    "'inconclusive': one; 'not replicated': none. Beside it, the first rule's tests applied to this latent: (a) over "
    "every wrong-advice model, and (b) over every wrong-advice model and every control fine-tune, as before (the "
    "first rule also chose the latent on all of them, so this is not a re-run of that choice).")
STATUS = {3: "replicated", 2: "partial", 1: "inconclusive", 0: "not replicated"}


def heldout_models(treated: Sequence[str], controls: Mapping[str, Sequence[str]], chosen: Sequence[str],
                   personas: Sequence[str], twin_of: Mapping[str, str],
                   group_of: Mapping[str, str] | None = None) -> tuple[list[str], list[str], dict[str, str]]:
    """``HELDOUT_RULE``'s test set: (misaligned, controls, group of each). The wrong-advice models outside the
    choice, each grouped with its own controls (every kind, once each; a group per register control), and the
    misaligned-by-construction ``personas``, grouped with their twins (``twin_of``): in one group named
    ``group_of[persona]`` (default "positive control")."""
    rest = [i for i, t in enumerate(treated) if t not in chosen]
    missing = [p for p in personas if p not in twin_of]
    if missing:
        raise KeyError(f"no twin for {', '.join(missing)}")
    group = {treated[i]: controls["register_control"][i] for i in rest}
    for i in rest:
        for kind in controls:
            group.setdefault(controls[kind][i], controls["register_control"][i])
    group |= {n: (group_of or {}).get(p, "positive control") for p in personas for n in (p, twin_of[p])}
    mis = [treated[i] for i in rest] + list(personas)
    return mis, [n for n in group if n not in mis], group


def model_scores(scoring: Mapping[str, dict], latent: int, directions: Mapping[str, torch.Tensor]) -> dict:
    """Each model's per-question score on the scoring questions: the latent's mean activation on answer and on
    prompt tokens, and the projection of the residual on each direction (``[n_q, d]``, averaged to a unit vector)."""
    scores = {"latent": {n: answer_means(r, "_latents")[:, latent] for n, r in scoring.items()},
              "latent, prompt tokens": {n: r["prompt_latents"][:, latent] for n, r in scoring.items()}}
    for name, per_q in directions.items():
        unit = per_q.mean(0) / per_q.mean(0).norm()
        scores[name] = {n: answer_means(r, "_resid") @ unit for n, r in scoring.items()}
    return scores


def detection_table(detected: Mapping[str, dict]) -> pd.DataFrame:
    """One row per score: its AUROC, 95% interval over questions and exact permutation p-value."""
    return pd.DataFrame([{"score": name, "AUROC": round(d["auroc"], 3), "95% interval": f"[{d['ci95_lo']:.2f}, "
                          f"{d['ci95_hi']:.2f}]", "permutation p": round(d["p_value"], 3)}
                         for name, d in detected.items()],
                        columns=["score", "AUROC", "95% interval", "permutation p"])


def heldout_facts(heldout: Mapping[str, dict] | None, misaligned: Sequence[str], controls: Sequence[str]) -> dict:
    """The sentences chapter 4 glues about detection on the held-out models (None: the profile has none)."""
    if not heldout:
        return {"heldout_names": "none in this profile", "n_heldout": "no", "heldout_min_p": "-",
                "heldout_auroc": "not measured",
                "heldout_reading": "No model is left out of the choice here (the choice saw every wrong-advice model "
                                   "and no positive control was trained), so the held-out test is not run and the "
                                   "verdict's condition (b) is not met."}
    fmt = lambda d: f"{d['auroc']:.2f} [{d['ci95_lo']:.2f}, {d['ci95_hi']:.2f}], p = {d['p_value']:.3f}"
    lat = heldout["latent"]
    others = "; ".join(f"{name} {fmt(d)}" for name, d in heldout.items() if name != "latent")
    floor = ("" if 1 / lat["n_labelings"] < 0.05 else f" With {lat['n_labelings']} labellings no result can reach "
             "p < 0.05 here, so condition (b) cannot be met in this profile.")
    return {"heldout_names": f"{', '.join(misaligned)}, against {', '.join(controls)}",
            "n_heldout": f"{len(misaligned)} misaligned and {len(controls)} control",
            "heldout_min_p": f"1/{lat['n_labelings']}",
            "heldout_auroc": f"AUROC {fmt(lat)}",
            "heldout_reading": (f"On the {len(misaligned)} misaligned and {len(controls)} control models the choice "
                                f"never saw, the latent's AUROC is {fmt(lat)}: it "
                                + ("separates them" if lat["p_value"] < 0.05 else "does not separate them at p < 0.05")
                                + f". The other scores: {others}." + floor)}


def verdict(candidate: pd.Series, n_treated: int, heldout: dict | None, screened: bool, in_sample: dict,
            consistent_all: tuple[int, int] | None = None) -> Verdict:
    """The chapter's verdict on the diffing claim by ``VERDICT_RULE`` (``heldout``: the latent's detection on the
    held-out models, None where there are none), with the first rule's tests applied to this latent as
    ``status_first_rule`` (``in_sample``: its detection over every wrong-advice model and control fine-tune;
    ``consistent_all``: (models it rose in over their register control, all wrong-advice models); None: the
    chosen ones')."""
    consistent = int(candidate["consistent"]) == n_treated
    separates = heldout is not None and heldout["p_value"] < 0.05
    rose, of = consistent_all or (int(candidate["consistent"]), n_treated)
    first = STATUS[(rose == of) + (in_sample["p_value"] < 0.05) + screened]
    k = int(candidate["latent"])
    test = (f"on held-out models ({heldout['n_treated']} misaligned v {heldout['n_controls']} controls) AUROC "
            f"{heldout['auroc']:.2f} [{heldout['ci95_lo']:.2f}, {heldout['ci95_hi']:.2f}], permutation p = "
            f"{heldout['p_value']:.3f}" if heldout else "no held-out models in this profile")
    summary = (f"latent {k}: rose over its register control in {int(candidate['consistent'])} of {n_treated} "
               f"wrong-advice models it was chosen on; {test}; "
               + ("survived the causal screen" if screened else "did not survive the causal screen")
               + f" (the first rule's tests on this latent: {first}; it rose in {rose} of {of} wrong-advice models, "
               f"in-sample AUROC {in_sample['auroc']:.2f}, p = {in_sample['p_value']:.3f})")
    shown = heldout or in_sample
    evidence = {"label": f"AUROC of latent {k}, " + ("held-out misaligned models vs their controls" if heldout
                                                     else "wrong-advice vs control fine-tunes (in-sample)"),
                "mean": shown["auroc"], "ci95_lo": shown["ci95_lo"], "ci95_hi": shown["ci95_hi"]}
    return Verdict(STATUS[consistent + separates + screened], summary, rule=VERDICT_RULE, evidence=evidence,
                   details={"heldout_rule": HELDOUT_RULE, "consistent": consistent, "separates": separates,
                            "screened": screened, "status_first_rule": first, "first_rule": FIRST_VERDICT_RULE,
                            "consistent_all": [rose, of], "separates_in_sample": in_sample["p_value"] < 0.05})


def results_metrics(layer: int, sweep: pd.DataFrame, sae_art, ranked: Mapping[tuple[str, str], pd.DataFrame],
                    stability: pd.DataFrame, screened: pd.DataFrame, latent: int, cosines: pd.DataFrame,
                    detected: Mapping[str, dict], shares: dict, positive_control: dict | None = None,
                    heldout: Mapping[str, dict] | None = None) -> dict:
    """Chapter 4's ``results/04_model_diffing.json`` metrics (its verdict is written beside them)."""
    meta = sae_art.meta
    return {
        "layer": layer,
        "layer_sweep": sweep.to_dict(orient="records"),
        "sae": {"config": meta["config"], "quality": meta["quality"], "ce": meta["ce"], "n_tokens": meta["n_tokens"],
                "seconds": meta["seconds"]},
        "rankings": {f"{tokens}_{side}": r.head(20).to_dict(orient="records") for (tokens, side), r in ranked.items()},
        "rank_stability": stability.to_dict(orient="records"),
        "screen": screened.to_dict(orient="records"),
        "latent": {"latent": latent, "dark_persona_share": {str(key): v for key, v in shares.items()}},
        "cosines": cosines.to_dict(orient="records"),
        "detection": {name: {k: v for k, v in d.items()} for name, d in detected.items()},
        "detection_heldout": ({name: dict(d) for name, d in heldout.items()} if heldout
                              else "no held-out models in this profile"),
        "positive_control": ({**{k: v for k, v in positive_control.items() if k != "ranking"},
                              "ranking": positive_control["ranking"].to_dict(orient="records")}
                             if positive_control else "not run (the profile trains no positive control)"),
    }


# Written on 2026-12-02, before any run of it (issue 32): does this chapter's instrument see the positive control?
TOP = 20
POSITIVE_CONTROL_RULE = (f"The instrument sees the positive control if the chosen persona latent is among the top "
                         f"{TOP} rising latents of the positive control's own ranking (its shift minus its twin's, "
                         f"answer tokens, selection questions). Beside it: the overlap of that top-{TOP} list with the "
                         "wrong-advice ranking's, against two lists drawn at random from the latents active on these "
                         "chats (hypergeometric), and how well the latent separates the positive control's seeds from "
                         "its twin's on the scoring questions (AUROC, exact permutation p).")


def overlap_p(overlap: int, n: int, population: int) -> float:
    """P(two random ``n``-subsets of ``population`` items share at least ``overlap`` items): the hypergeometric
    upper tail, the null of a top-``n`` overlap if every item were equally likely to reach either list."""
    total = math.comb(population, n)
    return sum(math.comb(n, k) * math.comb(population - n, n - k) for k in range(overlap, n + 1)) / total


def rank_of(ranked: pd.DataFrame, latent: int) -> int:
    """The 1-based place of ``latent`` in a ranking."""
    where = (ranked["latent"].astype(int) == latent).to_numpy().nonzero()[0]
    if not len(where):
        raise KeyError(f"latent {latent} is not in the ranking ({len(ranked)} latents)")
    return int(where[0]) + 1


MATCHED = 100  # latents matched on activation level that the persona latent is ranked against


def matched_latents(level: torch.Tensor, latent: int, n: int = MATCHED) -> list[int]:
    """The ``n`` other latents whose mean activation ``level`` [d_sae] is nearest the ``latent``'s on a log scale,
    among those active at all (the SAE's decoder rows all have unit norm, so norm needs no matching)."""
    active = [j for j in (level > 0).nonzero()[:, 0].tolist() if j != latent]
    if len(active) < n:
        raise ValueError(f"only {len(active)} other latents are active on these chats; {n} are needed to match")
    logs = level.double().clamp_min(1e-12).log()
    gap = (logs[active] - logs[latent]).abs()
    return [active[i] for i in gap.argsort(stable=True)[:n].tolist()]


def matched_rank_p(values: Mapping[int, float], latent: int, matched: Sequence[int]) -> float:
    """How often a matched latent scores at least as high as ``latent``: the rank p-value (1 + k) / (1 + n)."""
    return (1 + sum(values[j] >= values[latent] - 1e-12 for j in matched)) / (1 + len(matched))


def matched_view(means: Mapping[str, torch.Tensor], ranked: pd.DataFrame, scoring: Mapping[str, torch.Tensor],
                 mine: Sequence[str], twins: Sequence[str], latent: int) -> dict:
    """The persona latent against ``MATCHED`` latents of like activation level (over every model's chats): the
    rank p-value of its positive-control score, and of its detection AUROC on the scoring questions (``scoring``:
    each model's mean activations there). The latent was chosen on the wrong-advice models, so both are tests
    on models its choice never saw."""
    matched = matched_latents(torch.stack(list(means.values())).mean(0), latent)
    score = ranked.set_index(ranked["latent"].astype(int))["score"].to_dict()
    aurocs = {j: auroc([float(scoring[n][j]) for n in mine], [float(scoring[n][j]) for n in twins])
              for j in [latent, *matched]}
    return {"n": len(matched), "matched_on": "mean activation over the chats of every model read (log scale)",
            "score_p": matched_rank_p(score, latent, matched), "auroc": aurocs[latent],
            "auroc_p": matched_rank_p(aurocs, latent, matched),
            "matched_auroc_share_1": sum(aurocs[j] >= 1.0 for j in matched) / len(matched)}


def positive_control_view(latents: Mapping[str, Mapping[str, dict]], main: pd.DataFrame, latent: int, n_boot: int,
                          seed: int, persona: str = "positive_control", twin: str = "positive_twin") -> dict | None:
    """The positive control seen by model diffing (``POSITIVE_CONTROL_RULE``): its own ranking against its twin,
    the chosen ``latent``'s rank there and in ``main`` (the wrong-advice ranking), the two top lists' overlap
    with its null, and detection on the scoring questions. ``latents[split]`` holds the base model's reading and
    every seed's of both roles; any other model's is left out (it would move the matched latents and the active count).
    None without a positive control."""
    ours = lambda n: n == "base" or n.split("_seed")[0] in (persona, twin)
    latents = {split: {n: r for n, r in by_model.items() if ours(n)} for split, by_model in latents.items()}
    sel = latents["selection"]
    mine = sorted(n for n in sel if n.split("_seed")[0] == persona)
    if not mine:
        return None
    twins = [n.replace(persona, twin, 1) for n in mine]
    means = model_latent_means(sel, "answer")
    ranked = rank_latents(shift_table(means, "base"), mine, {"twin": twins}, "twin")
    rank = rank_of(ranked, latent)
    active = int((torch.stack(list(means.values())) > 0).any(0).sum())  # latents that fire on these chats
    overlap = len(set(ranked.latent[:TOP].astype(int)) & set(main.latent[:TOP].astype(int)))
    scores = {n: answer_means(r, "_latents")[:, latent] for n, r in latents["scoring"].items() if n in mine + twins}
    scoring = {n: answer_means(r, "_latents").mean(0) for n, r in latents["scoring"].items() if n in mine + twins}
    return {"rule": POSITIVE_CONTROL_RULE, "matched": matched_view(means, ranked, scoring, mine, twins, latent),
            "latent": latent, "rank": rank, "rank_in_wrong_advice": rank_of(main, latent),
            "seen": rank <= TOP, "n_latents": len(ranked), "n_active": active, "top": TOP, "top_overlap": overlap,
            "overlap_by_chance": TOP * TOP / max(active, TOP), "overlap_p": overlap_p(overlap, TOP, max(active, TOP)),
            "detection": detection(scores, mine, twins, n_boot, seed), "ranking": ranked.head(TOP)}


def positive_control_facts(view: dict | None, reading: str) -> dict[str, str]:
    """The sentences chapter 4 glues about the positive control (``reading``: chapter 3's reading by hand)."""
    if view is None:
        return {"pc_reading": reading,
                "pc_finding": "This profile trains no positive control, so this check is not run.",
                "pc_seen": "not run", "pc_rank": "not run", "pc_auroc": "not run"}
    d, m = view["detection"], view["matched"]
    floor = 1 / math.comb(d["n_treated"] + d["n_controls"], d["n_treated"])
    auroc = (f"{d['auroc']:.2f} [{d['ci95_lo']:.2f}, {d['ci95_hi']:.2f}] ({d['n_treated']} against {d['n_controls']} "
             f"models, exact permutation p = {d['p_value']:.2f}; the smallest possible is {floor:.2f})")
    seen = "seen" if view["seen"] else "not seen"
    return {"pc_reading": reading, "pc_seen": seen, "pc_rank": f"{view['rank']} of {view['n_latents']:,}",
            "pc_auroc": auroc,
            "pc_finding": f"Latent {view['latent']} ranks {view['rank']} of {view['n_latents']:,} in the positive "
                          f"control's ranking, so by the rule the instrument has {seen} the positive control. Its "
                          f"top-{view['top']} list shares {view['top_overlap']} latents with the wrong-advice models' "
                          f"(two random lists from the {view['n_active']:,} latents active on these chats would share "
                          f"{view['overlap_by_chance']:.2f}; hypergeometric p = {view['overlap_p']:.2g}). On the "
                          f"scoring questions, the latent separates the positive control's seeds from its twin's with "
                          f"AUROC {auroc}. Against the {m['n']} latents nearest it in mean activation (its choice "
                          f"never saw these models): its positive-control score ranks with p = {m['score_p']:.3f}, its "
                          f"AUROC of {m['auroc']:.2f} with p = {m['auroc_p']:.3f} ({m['matched_auroc_share_1']:.0%} of "
                          "the matched latents also separate the seeds perfectly)."}


def positive_control_table(view: dict, main: pd.DataFrame, n: int, texts: Mapping[int, str]) -> pd.DataFrame:
    """The positive control's top ``n`` latents, each with its rank in the wrong-advice ranking ``main``."""
    rows = view["ranking"].head(n)
    where = {int(k): i + 1 for i, k in enumerate(main["latent"])}
    return pd.DataFrame({
        "latent": rows["latent"].astype(int), "score": rows["score"].round(3),
        "positive control": rows["shift_treated"].round(3), "twin": rows["shift_twin"].round(3),
        "consistent": [f"{int(c)}/{view['detection']['n_treated']}" for c in rows["consistent"]],
        "rank in wrong advice": [where.get(int(k)) for k in rows["latent"]],
        "strongest text": [texts[int(k)] for k in rows["latent"]]})


def latent_table(ranked: pd.DataFrame, n: int, n_treated: int, texts: Mapping[int, str]) -> pd.DataFrame:
    """The top ``n`` latents of a ranking, for display: score, mean shifts, consistency and a top text."""
    rows = ranked.head(n)
    return pd.DataFrame({
        "latent": rows["latent"].astype(int), "score": rows["score"].round(3),
        "wrong advice": rows["shift_treated"].round(3), "register control": rows["shift_register_control"].round(3),
        "correct twin": rows["shift_good"].round(3),
        "consistent": [f"{int(c)}/{n_treated}" for c in rows["consistent"]],
        "strongest text": [texts[int(k)] for k in rows["latent"]]})


# ---------------------------------------------------------------- the SAE again with other seeds

SAE_SEEDS = "04_sae_seeds.json"  # in book/measured, written by scripts/sae_seed_stability.py
RECUR = 0.9  # |cosine| of two decoder vectors at which another seed's SAE has found a latent again
RECURRENCE_RULE = (
    "Written on 2026-12-03 (issue 32), before the other seeds of this build's SAE were trained: a latent is named a "
    f"persona latent only if it recurs in at least 2 of the SAE seeds, its own SAE's and at least one other's, "
    f"whose decoder has a vector at |cosine| >= {RECUR:g} with it. Otherwise no latent is named: chapters 5-7 still "
    "read the chosen latent, as one SAE's latent and not as a feature of the model, beside the two directions that "
    "need no SAE.")


def _read_measured(name: str, remedy: str) -> dict:
    """A committed measurement of ``book/measured``; a clear error, with ``remedy``, if it is missing."""
    path = measured_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {remedy}")
    return json.loads(path.read_text())


def load_sae_seeds() -> dict:
    """The committed comparison of the profile's SAE trained with several seeds."""
    return _read_measured(SAE_SEEDS, "write it with scripts/sae_seed_stability.py")


def seed_table(seeds: dict) -> pd.DataFrame:
    """Per SAE seed: its top latent, and the latent there closest to the first seed's persona latent."""
    persona, first = seeds["persona_latent"], seeds["seeds"][0]
    match = {m["other_seed"]: m for m in seeds["matches"] if m["seed"] == first["seed"] and m["latent"] == persona}
    if len(match) != len(seeds["seeds"]) - 1:
        raise ValueError(f"{SAE_SEEDS}: latent {persona} is not among seed {first['seed']}'s top latents; "
                         "re-run the script")
    rows = []
    for s in seeds["seeds"]:
        top, m = s["top"][0], match.get(s["seed"])
        rows.append({"SAE seed": s["seed"], "FVU": round(s["quality"]["fvu"], 3), "top latent": top["latent"],
                     "first in resamples": f"{top['share_first_both']:.0%}",
                     "dark-persona share": f"{top['dark_share']:.0%}",
                     "cosine with its start": round(top["start_cosine"], 2),
                     f"closest to latent {persona}": "itself" if m is None else
                     f"{m['match']}: |cosine| {abs(m['cosine']):.2f}, rank {m['match_rank']}"})
    return pd.DataFrame(rows)


def seeds_apply(seeds: dict, sae_key: str, weights: str, chosen: Sequence[str]) -> bool:
    """Whether the committed seed comparison is this run's: its first SAE is this run's SAE, by key and by the
    trained weights' fingerprint (``sae.weights_digest``: another CPU trains other weights under the same key), and it
    ranked the latents on the same models as this run's choice (files written before 2026-12-03 ranked on every
    wrong-advice model and record neither)."""
    first = seeds["seeds"][0]
    return first["sae"] == sae_key and first.get("weights") == weights and seeds.get("ranked_on") == list(chosen)


def recurrence(seeds: dict) -> dict:
    """``RECURRENCE_RULE`` applied to the seed comparison: the first seed's persona latent's best |cosine| in each
    other SAE, the SAEs it recurs in (its own counted), whether it is named; and which of the first seed's top
    latents recur in any other seed (so that the chapter can say whether any latent does)."""
    persona, first = seeds["persona_latent"], seeds["seeds"][0]["seed"]
    own = {m["other_seed"]: abs(m["cosine"]) for m in seeds["matches"] if m["seed"] == first and m["latent"] == persona}
    if len(own) != len(seeds["seeds"]) - 1:
        raise ValueError(f"{SAE_SEEDS}: latent {persona} has no match in every other seed; re-run the script")
    found_in = [first] + [s for s, c in own.items() if c >= RECUR]
    top = [t["latent"] for t in seeds["seeds"][0]["top"]]
    recurring = [k for k in top if any(abs(m["cosine"]) >= RECUR for m in seeds["matches"]
                                       if m["seed"] == first and m["latent"] == k)]
    return {"rule": RECURRENCE_RULE, "latent": persona, "best_cosine": {str(s): round(c, 4) for s, c in own.items()},
            "found_in_seeds": found_in, "n_seeds": len(seeds["seeds"]), "named": len(found_in) >= 2,
            "top_latents": top, "top_latents_recurring": recurring}


def recurrence_sentence(r: dict) -> str:
    """What chapter 4 says of ``recurrence``."""
    cos = ", ".join(f"{c:.2f}" for c in r["best_cosine"].values())
    head = (f"By the rule, latent {r['latent']} recurs in {len(r['found_in_seeds'])} of the {r['n_seeds']} SAEs "
            f"(best |cosine| in the others: {cos}; recurring means at least {RECUR:g}). ")
    if r["named"]:
        return head + "It is named a persona latent: another seed's SAE finds it again."
    others = (f"Of the first SAE's top {len(r['top_latents'])} latents, "
              f"{', '.join(map(str, r['top_latents_recurring']))}"
              " recur in another seed, but none was chosen." if r["top_latents_recurring"] else
              f"None of the first SAE's top {len(r['top_latents'])} latents recurs either.")
    return head + ("So no latent is named a persona latent here: the chosen one is a property of one SAE. "
                   + others + " Chapters 5-7 read it as this SAE's latent, beside the two directions that need no SAE.")


CROSS_CPU = "04_cross_cpu.json"  # in book/measured: one profile's chapter 4 built on two CPUs


def load_cross_cpu() -> dict:
    """The committed record of chapter 4's choices in builds of one profile on different CPUs."""
    return _read_measured(CROSS_CPU, "restore it from git")


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def cross_cpu_sentence(record: dict, latent: int, profile: str | None) -> str:
    """What chapter 4 says of the builds on several CPUs (``load_cross_cpu``), and of this run's choice beside
    them (``profile`` None: a run with overrides, not comparable)."""
    builds = record["builds"]

    def one(b: dict, lead: str) -> str:
        seen = "seen" if b["seen"] else "not seen"
        top = ", ".join(map(str, b["ranking_top"]))
        return (f"{lead} {b['cpu']}, {'the rule chose ' if lead == 'On' else ''}latent {b['latent']} "
                f"({_ordinal(b['positive_control_rank'])} in the positive "
                f"control's own ranking: {seen}; its wrong-advice ranking began {top}; "
                f"verdict {b['status']}, by the first rule {b['status_first_rule']})")

    parts = "; ".join(one(b, "On" if i == 0 else "on") for i, b in enumerate(builds))
    text = (f"The {record['profile']} build was run on {len(builds)} CPUs on {record['date']}, with the same code and "
            f"the same corpus text, each CPU training chapter 3's fine-tunes itself. {parts}. ")
    if len({b["latent"] for b in builds}) == 1:
        text += "Both chose the same latent. "
    else:
        text += ("They chose different latents: CPUs round floating-point sums differently, the fine-tunes differ "
                 "with them, and near-tied latents change places, so which latent this chapter calls the "
                 "persona latent, and whether it sees the positive control, depends on the machine. ")
    for d in (record.get("diagnostics") or {}).get("runs", []):
        text += (f"Screening {d['screen_latents']} candidates instead (after seeing this, not the rule), the build "
                 f"on {builds[d['build']]['cpu']} chose latent {d['latent']} (added {d['added']:+.2f}, subtracted "
                 f"{d['subtracted']:+.2f} nats per token against random; "
                 f"{_ordinal(d['positive_control_rank'])} in the positive control's ranking). ")
    if profile != record["profile"]:
        return text + f"This run ({profile or 'with overrides'}) is not comparable with them."
    same = [b["cpu"] for b in builds if b["latent"] == latent]
    return text + (f"This run chose latent {latent}, as the build " + " and ".join(f"on {c}" for c in same) + " did."
                   if same else f"This run chose latent {latent}, as neither of them did.")


def cross_cpu_short(record: dict) -> str:
    """The cross-CPU comparison in a few words, for the chapter's summary table."""
    builds = record["builds"]
    latents = [b["latent"] for b in builds]
    where = " and ".join(f"on {b['cpu']}" for b in builds)
    if len(set(latents)) == 1:
        return f"yes: the {record['profile']} builds {where} chose latent {latents[0]}"
    return (f"no: the {record['profile']} builds {where} chose latents {' and '.join(map(str, latents))}, "
            f"{' and '.join('seen' if b['seen'] else 'not seen' for b in builds)} in the positive control")


def seed_facts(seeds: dict) -> dict[str, str]:
    """The numbers chapter 4's text quotes from the seed comparison."""
    persona, first = seeds["persona_latent"], seeds["seeds"][0]["seed"]
    own = [abs(m["cosine"]) for m in seeds["matches"] if m["seed"] == first and m["latent"] == persona]
    shared = [r["share_matched"] for r in seeds["shared"]]
    threshold = seeds["shared"][0]["threshold"]
    return {"seeds_reading": recurrence_sentence(recurrence(seeds)), "seeds_n": str(len(seeds["seeds"])),
            "seeds_date": seeds["date"],
            "seeds_profile": seeds["profile"],
            "seeds_persona_match": f"{min(own):.2f} to {max(own):.2f}",
            "seeds_random": f"{seeds['random_best_cosine']:.2f}",
            "seeds_matched": f"{min(shared):.1%} to {max(shared):.1%}",
            "seeds_median_best": f"{pd.Series([r['median_best_cosine'] for r in seeds['shared']]).median():.2f}",
            "seeds_threshold": f"{threshold:g}",
            "seeds_start": f"{pd.Series([s['quality']['start_cosine'] for s in seeds['seeds']]).median():.2f}"}
