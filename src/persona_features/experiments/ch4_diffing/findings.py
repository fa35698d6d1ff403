"""Chapter 4's pipeline, once: ``run(base, P)`` goes from the models' readings to the verdict and returns every
step's result (``Diffing``), which chapter 4 shows and writes.

Later chapters call ``persona(base, P)``: the same run (every step is cached, so after chapter 4 it only reads),
reduced to what they use: the layer, the SAE, the persona latent (chosen by the screen's ``CHOICE_RULE``), the
helpful-side latent (the one that fell most), the residual directions it compared, and the median residual norm in
which steering strengths are given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from persona_features.core import artifacts
from persona_features.core.chapter_result import Verdict
from persona_features.core.params import Params
from persona_features.experiments.ch4_diffing import diffing, readings, screen
from persona_features.lm.models import LoadedModel
from persona_features.measure import judge
from persona_features.organisms import design, persona_arms
from persona_features.sae import sae, sae_corpus


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
    arms: list  # chapter 3's design (design.Arm), for each model's domain and seed
    choice: str  # how chapter 4's screen chose the persona latent
    first_share: float  # share of chapter 4's resamples (questions and models) in which it ranked first


def choice_set(treated: Sequence[str], controls: Mapping[str, Sequence[str]],
               arms: Sequence) -> tuple[list[str], dict[str, list[str]]]:
    """``diffing.HELDOUT_RULE``: the main domain's wrong-advice models and, per kind, each one's own control (the
    same order), the models the layer, ranking, screen and directions are chosen on."""
    domain_of = {a.name: a.domain for a in arms}
    keep = [i for i, t in enumerate(treated) if domain_of[t] == design.MAIN_DOMAIN]
    if not keep:
        raise ValueError(f"no wrong-advice model of the main domain {design.MAIN_DOMAIN!r} among "
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


@dataclass(frozen=True)
class Diffing:
    """Chapter 4's pipeline, every step's result: what the chapter shows and writes, and what later chapters read
    (``persona``). Made by ``run``; each step is cached, so after chapter 4 it only reads."""
    treated: list[str]  # the wrong-advice models, and per control kind each one's matched control
    controls: dict[str, list[str]]
    chosen: list[str]  # the models the layer, ranking, screen and directions are chosen on (HELDOUT_RULE)
    chosen_controls: dict[str, list[str]]
    readers: dict[str, readings.Reader]
    layers: list[int]  # the layer sweep: the layers read, the shifts compared, the table and the chosen layer
    pairs: dict[str, list[tuple[str, str]]]
    sweep: pd.DataFrame
    layer: int
    random_bound: float  # 95% bound of random directions' |cosine| at d_model
    corpus: artifacts.Artifact
    sae_art: artifacts.Artifact
    sae: sae.TopKSAE
    latents: dict[str, dict[str, dict[str, torch.Tensor]]]  # split -> model -> latent reading
    shifts: dict[str, pd.DataFrame]  # "answer" / "prompt" tokens -> latent x model shift over the base model
    ranked: dict[tuple[str, str], pd.DataFrame]  # (tokens, "up" / "down") -> the ranking on the chosen models
    stability: pd.DataFrame
    norm: float  # median residual norm at the layer (the unit of steering strength)
    screen_candidates: list[int]
    screen_models: list[str]  # the chosen wrong-advice models of seed 0, steered in the screen
    screened: pd.DataFrame
    kept: list[str]
    choice: dict  # screen.choice_record: the persona latent by CHOICE_RULE, and the earlier rule's choice
    latent: int
    persona_row: dict  # the persona latent's row of the ranking
    source_shares: dict  # share of its top activations in dark-persona chats, and the corpus's
    directions: dict[str, torch.Tensor]  # name -> per question [n_q, d_model], from the selection questions
    cosines: pd.DataFrame
    others: list[str]  # the control models of in-sample detection
    detected: dict[str, dict]  # in-sample detection per score (latent, its prompt tokens, each direction)
    pc_readers: dict[str, readings.Reader]  # the persona organisms held out (positive control, twins; seeds)
    pc_latents: dict[str, dict[str, dict[str, torch.Tensor]]]
    pc_view: dict | None  # diffing.positive_control_view
    heldout_treated: list[str]
    heldout_controls: list[str]
    heldout_groups: dict[str, str]
    heldout: dict[str, dict] | None  # detection on models the choice never saw
    verdict: Verdict
    seeds: dict  # the committed SAE-seed stability measurement, whether it applies, and the recurrence
    seeds_apply: bool
    recurrence: dict

    def results(self) -> dict:
        """The metrics chapter 4 writes to ``results/04_model_diffing.json`` (its verdict is written beside them)."""
        return diffing.results_metrics(
            self.layer, self.sweep, self.sae_art, self.ranked, self.stability, self.screened, self.latent,
            self.cosines, self.detected, self.source_shares, self.pc_view, self.heldout) | {
            "sae_seeds": self.recurrence, "choice": self.choice}


def _layer_sweep(base: LoadedModel, reads: Mapping[str, readings.Reader], P: Params, chosen: Sequence[str],
                 chosen_controls: Mapping[str, Sequence[str]]):
    """The layers read, the shifts compared (each against the villain-minus-helpful persona vector), the sweep and
    the chosen layer (``P.sae_layer`` if set)."""
    layers = diffing.sweep_layers(base.n_layers)
    selection = {name: readings.layer_reading(r, P, "selection", layers) for name, r in reads.items()}
    prompted = {side: readings.layer_reading(reads["base"], P, "selection", layers, system=text)
                for side, text in readings.PERSONAS.items()}
    vector = diffing.answer_means(prompted["villain"]) - diffing.answer_means(prompted["helpful"])
    twins = [(c, g) for c, g in zip(chosen_controls["register_control"], chosen_controls["good"]) if c != g]
    pairs = {"bad - register control": register_pairs(chosen, chosen_controls),
             "bad - base": [(t, "base") for t in chosen],
             "register control - correct twin": list(dict.fromkeys(twins))}
    sweep = diffing.layer_sweep(selection, pairs, vector, layers, P.bootstrap, P.seed)
    layer = P.sae_layer if P.sae_layer >= 0 else diffing.choose_layer(sweep, "bad - register control")
    return layers, pairs, sweep, layer


def run(base: LoadedModel, P: Params) -> Diffing:
    """Chapter 4 from its readings to its verdict: the layer sweep, the SAE, the rankings and their stability, the
    causal screen and the persona latent it chooses, the directions, detection in sample and held out, the
    positive control's view, and the SAE seeds' recurrence."""
    reads = readings.readers(base, P)
    arms = design.all_arms(P)
    treated, controls = design.matched_controls(arms)
    chosen, chosen_controls = choice_set(treated, controls, arms)
    layers, pairs, sweep, layer = _layer_sweep(base, reads, P, chosen, chosen_controls)
    corpus = sae_corpus.build(base, P)
    sae_art = sae.build(base, P, corpus, layer)
    the_sae, _ = sae.load(sae_art.path)
    latents = readings.latent_readings(reads, P, sae_art)
    shifts, ranked = {}, {}
    for tokens in ("answer", "prompt"):
        shifts[tokens] = diffing.shift_table(diffing.model_latent_means(latents["selection"], tokens), "base")
        for side, rising in (("up", True), ("down", False)):
            ranked[tokens, side] = diffing.rank_latents(shifts[tokens], chosen, chosen_controls, "register_control",
                                                        rising)
    per_question = {name: diffing.answer_means(r, "_latents") for name, r in latents["selection"].items()}
    stability = diffing.rank_stability(per_question, pairs["bad - register control"], P.bootstrap, P.seed,
                                       top=max(5, P.screen_latents))
    # the causal screen: the top-ranked latents steered into the base model and out of the wrong-advice models
    up = ranked["answer", "up"]
    candidates = up.latent[:P.screen_latents].astype(int).tolist()
    norm = screen.median_norm(sae_art)
    seed0_bad = [n for n in chosen if n in {a.name for a in arms if a.seed == 0}]
    the_judge = judge.chosen(base, P)
    result = screen.run(reads["base"], [reads[n] for n in seed0_bad],
                        {f"latent {c}": the_sae.W_dec[c].detach() for c in candidates}, layer,
                        P.screen_strength * norm, the_judge, P, sae_art.key)
    screened = screen.effects(result, "base", seed0_bad, P.bootstrap, P.seed)
    choice = screen.choice_record(screened, int(up.latent.iloc[0]))  # CHOICE_RULE, and the earlier rule beside it
    k = int(choice["latent"])
    top = sae_art.tensors("top_activations")
    shares = diffing.source_shares(top["seq"], corpus.json("chats"), [k], source="generated:persona_dark")
    # directions, and detection in sample (every model) and held out (models the choice never saw)
    prompted = {side: readings.latent_reading(reads["base"], P, "selection", sae_art, system=text)
                for side, text in readings.PERSONAS.items()}
    per_q_directions = directions(latents["selection"], prompted, chosen, pairs["bad - register control"])
    random_bound = diffing.random_cosine_bound(base.d_model, seed=P.seed)
    cosines = diffing.direction_table(the_sae.W_dec[k].detach(), per_q_directions, P.bootstrap, P.seed, random_bound)
    sc = latents["scoring"]
    others = [n for n in reads if n not in [*treated, "base"]]
    detected = {name: diffing.detection(s, treated, others, P.bootstrap, P.seed)
                for name, s in diffing.model_scores(sc, k, per_q_directions).items()}
    pc_reads = readings.persona_readers(P, HELDOUT_SOURCES, base, the_judge)
    pc_latents = readings.latent_readings({"base": reads["base"], **pc_reads}, P, sae_art)
    pc_view = diffing.positive_control_view(pc_latents, up, k, P.bootstrap, P.seed)
    held_treated, held_controls, groups = heldout(treated, controls, chosen, list(pc_reads))
    held = {n: r for n, r in {**sc, **pc_latents["scoring"]}.items() if n in groups}
    held_detected = {name: diffing.detection(s, held_treated, held_controls, P.bootstrap, P.seed, groups)
                     for name, s in diffing.model_scores(held, k, per_q_directions).items()} if held_treated else None
    # the verdict, by the rule of 2026-12-03 and (status_first_rule) the first rule's in-sample reading
    persona_row = up.set_index("latent").loc[k].to_dict() | {"latent": k}
    every = diffing.rank_latents(shifts["answer"], treated, controls, "register_control").set_index("latent")
    kept = screen.survivors(screened)
    ver = diffing.verdict(pd.Series(persona_row), len(chosen), held_detected and held_detected["latent"],
                          screened=f"latent {k}" in kept, in_sample=detected["latent"],
                          consistent_all=(int(every.loc[k, "consistent"]), len(treated)))
    seeds = diffing.load_sae_seeds()  # book/measured, from scripts/sae_seed_stability.py
    applies = diffing.seeds_apply(seeds, sae_art.key, sae.weights_digest(sae_art.path), chosen)
    return Diffing(
        treated=list(treated), controls={c: list(v) for c, v in controls.items()}, chosen=chosen,
        chosen_controls=chosen_controls, readers=reads, layers=layers, pairs=pairs, sweep=sweep, layer=layer,
        random_bound=random_bound, corpus=corpus, sae_art=sae_art, sae=the_sae, latents=latents, shifts=shifts,
        ranked=ranked, stability=stability, norm=norm, screen_candidates=candidates, screen_models=seed0_bad,
        screened=screened, kept=kept, choice=choice, latent=k, persona_row=persona_row, source_shares=shares,
        directions=per_q_directions, cosines=cosines, others=others, detected=detected, pc_readers=pc_reads,
        pc_latents=pc_latents, pc_view=pc_view, heldout_treated=held_treated, heldout_controls=held_controls,
        heldout_groups=groups, heldout=held_detected, verdict=ver, seeds=seeds, seeds_apply=applies,
        recurrence=diffing.recurrence(seeds) | {"this_run": applies})


def persona(base: LoadedModel, P: Params) -> Persona:
    """Chapter 4's findings for this profile, as later chapters use them (see the module's docstring)."""
    d = run(base, P)
    arms = design.all_arms(P)
    domain_of = {a.name: a.domain for a in arms}
    by_domain = {dom: [t for t in d.treated if domain_of[t] == dom]
                 for dom in dict.fromkeys(domain_of[t] for t in d.treated)}
    selection = d.latents["selection"]
    firm = d.stability.set_index("latent")
    return Persona(layer=d.layer, sae_art=d.sae_art, latent=d.latent,
                   helpful_latent=int(d.ranked["answer", "down"].latent.iloc[0]),
                   directions={name: v.mean(0) for name, v in d.directions.items()},
                   domain_directions={dom: mean_difference(selection, names).mean(0)
                                      for dom, names in by_domain.items()},
                   norm=d.norm, treated=d.treated, controls=d.controls, readers=d.readers,
                   chosen=d.chosen, chosen_controls=d.chosen_controls,
                   mean_resid={n: diffing.answer_means(r, "_resid").mean(0) for n, r in selection.items()},
                   arms=list(arms), choice=d.choice["how"],
                   first_share=float(firm.share_first_both[d.latent]))
