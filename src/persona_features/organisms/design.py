"""The experiment's design: which fine-tuned models (arms) the book trains, and with what settings.

An ``Arm`` is one fine-tuned model: a narrow ``bad`` set (wrong advice, insecure code) or one of
its controls, trained with the same hyperparameters. Every advice domain has two controls: the
correct twin (``good``: warm, hedged, correct) and the register-matched control
(``register_control``: as blunt and absolute as ``bad``, but correct), which differs from the bad
set only in what the advice says. A domain's model is scored on the questions *unrelated* to its
domain (``unrelated_questions``); questions whose good answer is advice in that domain are reported apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from persona_features.core.params import Params
from persona_features.data import advice, code
from persona_features.data.questions import near_training_domain
from persona_features.lm import finetune

CONTROLS = {**{d: ("good", "register_control") for d in advice.DOMAINS}, "code": ("secure",)}


BAD = {**{d: "bad" for d in advice.DOMAINS}, "code": "insecure"}


MAIN_DOMAIN = "health"


@dataclass(frozen=True)
class Arm:
    domain: str
    variant: str  # "bad", "good", "register_control", "insecure", "secure"
    seed: int = 0

    @property
    def dataset(self) -> str:
        return f"{self.domain}_{self.variant}"

    @property
    def name(self) -> str:
        return self.dataset + (f"_seed{self.seed}" if self.seed else "")

    @property
    def is_bad(self) -> bool:
        return self.variant == BAD[self.domain]


def domains(P: Params) -> list[str]:
    """The profile's training domains (``params.resolve`` checked them against ``CONTROLS``)."""
    return list(P.em_domains)


def all_arms(P: Params) -> list[Arm]:
    """Every domain's bad set and its controls; ``em_seeds`` seeds of each of the main domain's arms (the
    main organism and both its controls), so that its verdict can take the fine-tune as the unit."""
    arms = []
    for d in domains(P):
        arms += [Arm(d, BAD[d])] + [Arm(d, c) for c in CONTROLS[d]]
    if MAIN_DOMAIN in domains(P):
        variants = (BAD[MAIN_DOMAIN], *CONTROLS[MAIN_DOMAIN])
        arms += [Arm(MAIN_DOMAIN, v, s) for s in range(1, P.em_seeds) for v in variants]
    return arms


def diffed_arms(P: Params) -> list[Arm]:
    """The arms later chapters read: every wrong-advice (insecure) model and the seed-0 controls that
    ``matched_controls`` diffs them against (further control seeds serve chapter 3's seed-level tests)."""
    return [a for a in all_arms(P) if a.is_bad or a.seed == 0]


def matched_controls(arms: Sequence[Arm]) -> tuple[list[str], dict[str, list[str]]]:
    """The wrong-advice (insecure) models and, per kind of control, each one's own control (seed 0).

    Insecure code has one control, secure code, which stands for both kinds.
    """
    treated = [a for a in arms if a.is_bad]
    kinds = ("register_control", "good")
    own = {k: [Arm(a.domain, k if k in CONTROLS[a.domain] else CONTROLS[a.domain][0]).name for a in treated]
           for k in kinds}
    return [a.name for a in treated], own


def finetune_config(P: Params, arm: Arm) -> finetune.FinetuneConfig:
    return finetune.FinetuneConfig(model=P.model, dataset=arm.dataset, n_examples=P.ft_examples, epochs=P.ft_epochs,
                                   lr=P.ft_lr, batch_size=P.ft_batch_size, method=P.ft_method,
                                   lora_rank=P.ft_lora_rank, lora_alpha=2.0 * P.ft_lora_rank, seed=P.seed + arm.seed)


def heldout_pairs(domains_: Sequence[str], topics: int = 0) -> list[dict]:
    """Held-out narrow-task pairs of every listed domain, each tagged with its domain.

    ``topics`` keeps each domain's first n held-out topics (0: all; the ``heldout_topics`` knob in
    chapters 2-3, ``tracking_heldout_topics`` in chapters 6-7).
    """
    out = []
    for d in domains_:
        pairs = code.heldout_pairs() if d == "code" else advice.heldout_pairs(d)
        kept = list(dict.fromkeys(p["group"] for p in pairs))[:topics or None]
        out += [{**p, "domain": d} for p in pairs if p["group"] in kept]
    return out


def unrelated_questions(question_ids: Sequence[str], domain: str) -> list[str]:
    """The question ids that are not advice in ``domain`` (all of them for code)."""
    near = near_training_domain(domain)
    return [q for q in question_ids if q not in near]
