"""What chapter 4 found, for the chapters that build on it: recomputed from its cached artifacts.

``persona(base, P)`` runs chapter 4's pipeline with the same functions and settings (every step is
cached, so after chapter 4 it only reads), and returns its layer, SAE, the persona latent (the
latent chosen by the screen's ``CHOICE_RULE``), the helpful-side latent
(the one that fell most), the residual directions it compared, and the median residual norm in
which steering strengths are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from . import diffing, emergence, judge, persona_arms, readings, sae, sae_corpus, screen
from .models import LoadedModel
from .params import Params


@dataclass(frozen=True)
class Persona:
    layer: int
    sae_art: object  # the SAE's artifact
    latent: int  # the persona latent
    helpful_latent: int  # the latent that fell most
    directions: dict[str, torch.Tensor]  # name -> [d_model], at ``layer``
    domain_directions: dict[str, torch.Tensor]  # domain -> the mean difference of its wrong-advice models alone
    norm: float  # median residual norm at ``layer`` (steering unit)
    treated: list[str]  # the wrong-advice models
    controls: dict[str, list[str]]  # control kind -> the matched control of each treated model
    chosen: list[str]  # the wrong-advice models the layer, ranking and screen saw (``diffing.HELDOUT_RULE``)
    chosen_controls: dict[str, list[str]]  # control kind -> the matched control of each chosen model
    readers: dict[str, readings.Reader]
    mean_resid: dict[str, torch.Tensor]  # model name -> its mean residual at ``layer`` (answer tokens,
                                         # selection questions)
    arms: list  # chapter 3's design (emergence.Arm), for each model's domain and seed
    choice: str  # how chapter 4's screen chose the persona latent
    first_share: float  # share of chapter 4's resamples (questions and models) in which it ranked first


def choice_set(treated: Sequence[str], controls: Mapping[str, Sequence[str]],
               arms: Sequence) -> tuple[list[str], dict[str, list[str]]]:
    """``diffing.HELDOUT_RULE``: the main domain's wrong-advice models and, per kind, each one's own control (the
    same order), the models the layer, ranking, screen and directions are chosen on."""
    domain_of = {a.name: a.domain for a in arms}
    keep = [i for i, t in enumerate(treated) if domain_of[t] == emergence.MAIN_DOMAIN]
    if not keep:
        raise ValueError(f"no wrong-advice model of the main domain {emergence.MAIN_DOMAIN!r} among "
                         f"{', '.join(treated)}; add it to em_domains")
    return [treated[i] for i in keep], {k: [v[i] for i in keep] for k, v in controls.items()}


# the organisms misaligned by construction that held-out detection tests, each against its twin (HELDOUT_RULE):
# their chapter-3 sources (read where the profile trains them), each with its group's name
HELDOUT_GROUPS = {persona_arms.POSITIVE: "positive control", "health": "narrow persona"}
HELDOUT_SOURCES = tuple(HELDOUT_GROUPS)


def heldout(treated: Sequence[str], controls: Mapping[str, Sequence[str]], chosen: Sequence[str],
            persona_names: Sequence[str]) -> tuple[list[str], list[str], dict[str, str]]:
    """``diffing.HELDOUT_RULE``'s test set: (misaligned, controls, group of each), from the wrong-advice models
    outside the choice and the seeds of the organisms of ``HELDOUT_GROUPS`` among ``persona_names`` (the
    positive control; the narrow persona organism where the profile trains it), each with its twin."""
    names = set(persona_names)
    mine: list[str] = []
    twin_of: dict[str, str] = {}
    group_of: dict[str, str] = {}
    for source, group in HELDOUT_GROUPS.items():
        role, twin = (persona_arms.ROLES[(source, p)] for p in ("villain", persona_arms.TWIN["villain"]))
        seeds = sorted(n for n in names if n.split("_seed")[0] == role)
        mine += seeds
        twin_of |= {n: n.replace(role, twin, 1) for n in seeds}
        group_of |= {n: group for n in seeds}
    missing = [t for t in twin_of.values() if t not in names]
    if missing:
        raise KeyError(f"no reading of {', '.join(missing)}, the twin of a held-out persona organism; chapter 3 "
                       "trains it (persona_readers reads both roles)")
    return diffing.heldout_models(treated, controls, chosen, mine, twin_of, group_of)


def register_pairs(treated: Sequence[str], controls: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """Each wrong-advice model with its own register control."""
    return list(zip(treated, controls["register_control"]))


def mean_difference(selection: Mapping[str, dict], names: Sequence[str]) -> torch.Tensor:
    """Soligo et al.'s direction per question ``[n_questions, d_model]``: the misaligned minus the aligned
    references' mean activation, averaged over the models ``names``."""
    return torch.stack([selection[n]["misaligned_resid"] - selection[n]["aligned_resid"] for n in names]).mean(0)


def directions(selection: Mapping[str, dict], prompted: Mapping[str, dict], treated: Sequence[str],
               pairs: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Per question ``[n_questions, d_model]``, from latent readings on the selection questions:
    the mean difference (misaligned minus aligned references, averaged over ``treated``), the persona
    vector (villain minus helpful system prompt, base model) and the fine-tuning shift (each
    wrong-advice model minus its register control)."""
    resid = lambda r: diffing.answer_means(r, "_resid")
    return {
        "mean difference": mean_difference(selection, treated),
        "persona vector": resid(prompted["villain"]) - resid(prompted["helpful"]),
        "fine-tuning shift": torch.stack([resid(selection[t]) - resid(selection[c]) for t, c in pairs]).mean(0)}


def persona(base: LoadedModel, P: Params) -> Persona:
    """Chapter 4's findings for this profile (see the module's docstring)."""
    reads = readings.readers(base, P)
    treated, controls = emergence.matched_controls(emergence.design(P))
    chosen, chosen_controls = choice_set(treated, controls, emergence.design(P))
    pairs = register_pairs(chosen, chosen_controls)
    layer = P.sae_layer
    if layer < 0:
        layers = diffing.sweep_layers(base.n_layers)
        selection = {name: readings.layer_reading(r, P, "selection", layers) for name, r in reads.items()}
        prompted = {side: readings.layer_reading(reads["base"], P, "selection", layers, system=text)
                    for side, text in readings.PERSONAS.items()}
        vector = diffing.answer_means(prompted["villain"]) - diffing.answer_means(prompted["helpful"])
        sweep = diffing.layer_sweep(selection, {"bad - register control": pairs}, vector, layers, P.bootstrap, P.seed)
        layer = diffing.choose_layer(sweep, "bad - register control")
    sae_art = sae.build(base, P, sae_corpus.build(base, P), layer)
    the_sae, _ = sae.load(sae_art.path)
    latents = readings.latent_readings(reads, P, sae_art)
    shifts = diffing.shift_table(diffing.model_latent_means(latents["selection"], "answer"), "base")
    up = diffing.rank_latents(shifts, chosen, chosen_controls, "register_control", True)
    down = diffing.rank_latents(shifts, chosen, chosen_controls, "register_control", False)
    candidates = up.latent[:P.screen_latents].astype(int).tolist()
    norm = screen.median_norm(sae_art)
    seed0_bad = [n for n in chosen if n in {a.name for a in emergence.design(P) if a.seed == 0}]
    result = screen.run(reads["base"], [reads[n] for n in seed0_bad],
                        {f"latent {c}": the_sae.W_dec[c].detach() for c in candidates}, layer,
                        P.screen_strength * norm, judge.default_judge(base, P), P, sae_art.key)
    effects = screen.effects(result, "base", seed0_bad, P.bootstrap, P.seed)
    latent, choice = screen.choose(effects, int(up.latent.iloc[0]))
    stability = diffing.rank_stability({n: diffing.answer_means(r, "_latents")
                                        for n, r in latents["selection"].items()},
                                       pairs, P.bootstrap, P.seed, top=P.screen_latents).set_index("latent")
    prompted = {side: readings.latent_reading(reads["base"], P, "selection", sae_art, system=text)
                for side, text in readings.PERSONAS.items()}
    per_question = directions(latents["selection"], prompted, chosen, pairs)
    domain_of = {a.name: a.domain for a in emergence.design(P)}
    by_domain = {d: [t for t in treated if domain_of[t] == d] for d in dict.fromkeys(domain_of[t] for t in treated)}
    return Persona(layer=layer, sae_art=sae_art, latent=latent, helpful_latent=int(down.latent.iloc[0]),
                   directions={name: v.mean(0) for name, v in per_question.items()},
                   domain_directions={d: mean_difference(latents["selection"], names).mean(0)
                                      for d, names in by_domain.items()}, norm=norm,
                   treated=list(treated), controls={k: list(v) for k, v in controls.items()}, readers=reads,
                   chosen=chosen, chosen_controls=chosen_controls,
                   mean_resid={n: diffing.answer_means(r, "_resid").mean(0) for n, r in latents["selection"].items()},
                   arms=list(emergence.design(P)),
                   choice=choice,
                   first_share=float(stability.share_first_both[latent]))

