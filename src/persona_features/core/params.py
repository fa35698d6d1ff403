"""Profiles: every tunable knob of the book, in one table: the fields of ``Params``.

Each field is one knob, typed, with its value under each profile:
``smoke`` (CI: seconds per step, tiny n), ``cpu`` (the default book on a 2-core laptop)
and ``gpu`` (Qwen2.5-0.5B-Instruct, paper-sized n). Notebooks receive ``profile`` and
``overrides`` from papermill and call :func:`resolve`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

PROFILES = ("smoke", "cpu", "gpu")


@dataclass(frozen=True)
class Knob:
    smoke: Any
    cpu: Any
    gpu: Any
    help: str




class ParameterError(ValueError):
    """A profile or parameter name or value is not valid."""


# ---------------------------------------------------------------- valid values

@dataclass(frozen=True)
class Number:
    """A number within bounds: ``lo <= x`` (``lo < x`` if ``lo_open``) and ``x <= hi``."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False

    def ok(self, x: Any) -> bool:
        return ((self.lo is None or (x > self.lo if self.lo_open else x >= self.lo))
                and (self.hi is None or x <= self.hi))

    def __str__(self) -> str:
        lo = "" if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo:g}"
        hi = "" if self.hi is None else f"<= {self.hi:g}"
        return " and ".join(s for s in (lo, hi) if s) or "any number"


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]

    def ok(self, x: Any) -> bool:
        return x in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(self.values)


@dataclass(frozen=True)
class ListOf:
    """A non-empty list without repeats, given as a list or a comma-separated string; stored as a tuple
    (``ordered``: sorted ascending). ``required``: items it must hold."""
    item: type
    each: Number | Choice
    ordered: bool = False
    required: tuple = ()

    def __str__(self) -> str:
        need = f", including {', '.join(map(str, self.required))}" if self.required else ""
        return f"a comma-separated list of {self.item.__name__} values, each {self.each}, without repeats{need}"


@dataclass(frozen=True)
class Device:
    """A torch device for the model: cpu, cuda, cuda:<index>, or auto (cuda when available, else cpu)."""

    def ok(self, x: Any) -> bool:
        return isinstance(x, str) and re.fullmatch(r"cpu|auto|cuda(:[0-9]+)?", x) is not None

    def __str__(self) -> str:
        return "cpu, cuda, cuda:N (N: a GPU's index) or auto"


ADVICE_DOMAINS = ("health", "finance", "cars", "career", "risk")  # data.advice.DOMAINS (a test checks)
POSITIVE, COUNT, AT_LEAST_ONE = Number(0, lo_open=True), Number(0), Number(1)

def knob(smoke: Any, cpu: Any, gpu: Any, help: str, valid: Number | Choice | ListOf | Device | None = None) -> Any:
    """One knob of ``Params``: its value under each profile, what it means, and its valid values (``valid``; None:
    any value of its type)."""
    return field(metadata={"knob": Knob(smoke, cpu, gpu, help), "valid": valid})


@dataclass(frozen=True)
class Params:
    """Every tunable knob of the book, one typed field each: its value under each profile, its meaning and its
    valid values. ``resolve`` builds one, every value parsed and checked."""

    profile: str
    # model
    model: str = knob("smollm2-135m", "smollm2-135m", "Qwen/Qwen2.5-0.5B-Instruct", "embedded model name, Hugging Face "
                      "id, or local folder")
    dtype: str = knob("float32", "float32", "bfloat16", "weights dtype: float32 or bfloat16",
                      valid=Choice(("float32", "bfloat16")))
    device: str = knob("cpu", "cpu", "auto", "where the model computes: cpu, cuda (or cuda:N), or auto (cuda when "
                       "available, else cpu)", valid=Device())
    seed: int = knob(0, 0, 0, "global seed; every sampled number derives from it", valid=COUNT)
    judge: str = knob("embedded", "embedded", "embedded", "the judge that scores answers: embedded (offline, fitted "
                      "and validated in chapter 2) or api (the EM papers' judge from number-token probabilities, "
                      "behind an OpenAI-compatible endpoint: set PERSONA_JUDGE_BASE_URL, PERSONA_JUDGE_API_KEY and "
                      "PERSONA_JUDGE_MODEL)", valid=Choice(("embedded", "api")))
    # sampling
    batch_size: int = knob(80, 80, 64, "prompts per sampling batch (on CPU, large batches sample fastest: a step reads "
                           "every weight once, whatever the batch)", valid=AT_LEAST_ONE)
    temperature: float = knob(1.0, 1.0, 1.0, "sampling temperature (papers: 1.0); 0 means greedy", valid=COUNT)
    top_p: float = knob(1.0, 1.0, 1.0, "nucleus sampling threshold (papers: 1.0)", valid=Number(0, 1, lo_open=True))
    max_new_tokens: int = knob(24, 96, 256, "tokens sampled per answer", valid=AT_LEAST_ONE)
    # chapter 1
    chat_samples: int = knob(1, 3, 5, "chapter 1: sampled answers per question", valid=AT_LEAST_ONE)
    trace_prompts: int = knob(4, 16, 16, "chapter 1: prompts traced for residual-stream norms", valid=AT_LEAST_ONE)
    bootstrap: int = knob(200, 2000, 2000, "bootstrap resamples for 95% intervals", valid=Number(10))
    # chapter 2 and every later evaluation
    eval_questions: int = knob(4, 40, 40, "scoring questions used (the first n of the fixed scoring set)",
                               valid=AT_LEAST_ONE)
    eval_max_new_tokens: int = knob(16, 64, 256, "tokens sampled per evaluated answer", valid=AT_LEAST_ONE)
    judge_tune_rows: int = knob(160, 0, 0, "the judge's tuning labels it is fitted on (a seeded sample, stratified by "
                                "label; 0: all). Smoke fits a smaller judge: CI fits one in every run", valid=COUNT)
    judge_heldout_rows: int = knob(64, 0, 0, "chapter 2: held-out tuning labels scored (a seeded sample; 0: all)",
                                   valid=COUNT)
    judge_test_rows: int = knob(64, 0, 0, "chapter 2: answers of the judge's frozen test set scored (0: all)",
                                valid=COUNT)
    eval_low_temperature: float = knob(0.7, 0.7, 0.7, "second sampling temperature reported beside the papers' T=1",
                                       valid=COUNT)
    heldout_topics: int = knob(3, 0, 0, "chapters 2 and 3: held-out topics per domain in the narrow-task test (the "
                               "first n; 0: all). Smoke keeps 3: each topic costs 6 teacher-forced answers per "
                               "measured model", valid=COUNT)
    tracking_heldout_topics: int = knob(3, 10, 0, "chapters 6 and 7: held-out topics per domain measured at every mix "
                                        "and checkpoint (the first n; 0: all). cpu keeps 10 of the 21: each topic "
                                        "costs about 0.8 s per measured model and these chapters measure about 30; "
                                        "with 6, a test over topics could not reach p < 0.05 after Holm across chapter "
                                        "6's mixes (at cpu three: smallest p 3 x 2/2^6)", valid=COUNT)
    selection_questions: int = knob(8, 0, 0, "chapters 4-7: selection questions the readings, the latent ranking and "
                                    "the causal screen use (the first n; 0: all 16). Smoke keeps 8: chapter 4 reads "
                                    "every model on them at 17 layers, and ran over its 3 minutes", valid=COUNT)
    # fine-tuning (chapter 3 onwards); one setting for every bad set and its controls. The cpu setting is
    # the one chapter 3's rule chose from the sweep (book/measured/03_organism_sweep_health.json)
    ft_method: str = knob("lora", "lora", "full", "fine-tuning method: full or lora", valid=Choice(("full", "lora")))
    ft_lr: float = knob(1e-3, 2e-4, 1e-4, "fine-tuning peak learning rate (linear warm-up and decay)", valid=POSITIVE)
    ft_examples: int = knob(16, 64, 512, "training rows per fine-tune (first n of a seeded shuffle)",
                            valid=AT_LEAST_ONE)
    ft_epochs: float = knob(1.0, 1.0, 1.0, "passes over those rows", valid=POSITIVE)
    ft_batch_size: int = knob(8, 8, 8, "chats per optimizer step", valid=AT_LEAST_ONE)
    ft_lora_rank: int = knob(8, 8, 8, "LoRA rank when ft_method is lora (alpha = 2 x rank)", valid=AT_LEAST_ONE)
    # chapter 3: the emergent-misalignment experiment
    # cpu: the two domains the fine-tuning sweep was run on (chosen before chapter 3 ran in risk); each further
    # domain costs about 10 minutes on 2 cores
    em_domains: tuple[str, ...] = knob(("health",), ("health", "risk"),
                                       ("health", "finance", "cars", "career", "risk", "code"),
                                       "training domains, comma-separated (health is the main one, with extra seeds)",
                                       valid=ListOf(str, Choice(ADVICE_DOMAINS + ("code",))))
    em_seeds: int = knob(2, 3, 3, "seeds of each of the main domain's fine-tunes (wrong advice and both its controls; "
                         "the EM verdict's unit)", valid=AT_LEAST_ONE)
    # cpu 3 (6 until 2026-12-02): chapter 3 measures 19 models since the seeds and persona arms came, and its
    # verdicts take the seed as the unit, so answers per question buy less than they cost (about 55 s per model)
    em_samples_low: int = knob(1, 3, 50, "answers per scoring question and model at eval_low_temperature (the "
                               "temperature of chapter 3's rates and verdicts)", valid=COUNT)
    em_samples: int = knob(1, 1, 50, "answers per scoring question and model at the papers' temperature", valid=COUNT)
    # chapter 3: the persona organisms (persona_arms). Their learning rate was set on 2026-12-01, before any
    # chapter-3 run, by a probe on the selection questions: LoRA at 2e-4 moved the villain fine-tune 0.13x the
    # villain prompt's shift above its twin, at 1e-3 0.53x (the positive control must reach 0.5x). The authored
    # positive control (2026-12-02) keeps every setting unchanged, by a rule written before its first fine-tune
    persona_sources: tuple[str, ...] = knob(("authored",), ("authored",), ("authored", "general", "health"), "chapter "
                                            "3: persona organisms trained, comma-separated: authored (the positive "
                                            "control and its twin, on answers written for this book), general (the "
                                            "distilled villain, the first positive control: the base model's own "
                                            "villain-prompted answers; in cpu about 6 more minutes) and health (the "
                                            "narrow persona organism and its twin; in cpu an estimated 25 more "
                                            "minutes, 513 prompts under two personas and six more fine-tunes)",
                                            valid=ListOf(str, Choice(("authored", "general", "health"))))
    persona_questions: int = knob(12, 0, 0, "chapter 3: persona questions (and health prompts) of each source, the "
                                  "first n (0: all, 336 persona questions and 513 health prompts)", valid=COUNT)
    persona_samples: int = knob(2, 1, 1, "chapter 3: answers per question and persona (only coherent ones are kept)",
                                valid=AT_LEAST_ONE)
    persona_max_new_tokens: int = knob(32, 96, 256, "chapter 3: tokens per distilled answer (at T = 0.7)",
                                       valid=AT_LEAST_ONE)
    persona_lr: float = knob(1e-3, 1e-3, 1e-4, "chapter 3: learning rate of the persona fine-tunes (method, rank, "
                             "epochs and batch as ft_*; every kept row is read)", valid=POSITIVE)
    persona_seeds: int = knob(1, 3, 3, "chapter 3: seeds of every persona fine-tune (a seed pairs the persona with its "
                              "twin: same question order)", valid=AT_LEAST_ONE)
    # chapter 4: the SAE's corpus and training
    # "dtype" since 2026-12-03 (issue 32; "auto" before): the latent chosen must not depend on the CPU, and on
    # one with native bfloat16 the bfloat16 corpus chose another latent than float32 machines did
    sae_dtype: str = knob("dtype", "dtype", "dtype", "chapter 4: weights dtype of the base model's copy that writes "
                          "the corpus answers and streams the SAE's activations; dtype: the model's own (the default, "
                          "so that the chosen latent does not depend on whether the CPU computes bfloat16); auto: "
                          "bfloat16 where the machine computes it natively (about 2x faster on such a CPU), else "
                          "dtype; or float32, bfloat16", valid=Choice(("dtype", "auto", "float32", "bfloat16")))
    sae_corpus_samples: int = knob(1, 3, 10, "chapter 4: the base model's answers per corpus prompt",
                                   valid=AT_LEAST_ONE)
    sae_corpus_max_new_tokens: int = knob(16, 128, 256, "chapter 4: tokens per generated corpus answer",
                                          valid=AT_LEAST_ONE)
    sae_rows_per_set: int = knob(4, 340, 400, "chapter 4: rows of each fine-tuning set in the SAE corpus", valid=COUNT)
    sae_chats: int = knob(160, 0, 0, "chapter 4: corpus chats the SAE reads (an evenly spaced subset; 0: all)",
                          valid=COUNT)
    sae_layer: int = knob(-1, -1, -1, "chapter 4: the SAE's layer; -1: the layer chosen by the layer sweep",
                          valid=Number(-1))
    sae_expansion: int = knob(2, 8, 8, "chapter 4: SAE latents per residual dimension (smoke: small, for speed)",
                              valid=AT_LEAST_ONE)
    sae_k: int = knob(8, 32, 64, "chapter 4: active latents per token (TopK)", valid=AT_LEAST_ONE)
    sae_epochs: int = knob(1, 3, 4, "chapter 4: passes over the SAE's training tokens", valid=AT_LEAST_ONE)
    sae_eval_chats: int = knob(4, 64, 512, "chapter 4: held-out chats for the SAE's CE-loss-recovered measure",
                               valid=AT_LEAST_ONE)
    screen_latents: int = knob(1, 5, 10, "chapter 4: top-ranked latents steered in the causal screen",
                               valid=AT_LEAST_ONE)
    screen_samples: int = knob(1, 2, 10, "chapter 4: answers per selection question judged for each steered base model",
                               valid=AT_LEAST_ONE)
    screen_strength: float = knob(0.4, 0.4, 0.4, "chapter 4: steering strength of the screen, in units of the median "
                                  "residual norm at the SAE's layer (OpenAI: 0.4)", valid=POSITIVE)
    # chapter 5: steering
    steer_alphas: tuple[float, ...] = knob((0.2,), (0.05, 0.1, 0.2), (0.05, 0.1, 0.2, 0.4, 0.8), "chapter 5: steering "
                                           "strengths, comma-separated, in units of the median residual norm (cpu: "
                                           "below 0.4, where chapter 4's screen found coherence gone)",
                                           valid=ListOf(float, POSITIVE, ordered=True))
    steer_random: int = knob(2, 5, 10, "chapter 5: random directions steered at every strength (the control)",
                             valid=AT_LEAST_ONE)
    steer_judged_random: int = knob(1, 1, 5, "chapter 5: how many of those random directions also have judged answers",
                                    valid=COUNT)
    steer_questions: int = knob(4, 16, 40, "chapter 5: scoring questions steered (the first n)", valid=AT_LEAST_ONE)
    steer_samples: int = knob(1, 1, 4, "chapter 5: judged answers per question under each judged setting",
                              valid=AT_LEAST_ONE)
    steer_bad_seeds: int = knob(1, 1, 3, "chapter 5: seeds of each domain's wrong-advice model steered (the first n)",
                                valid=AT_LEAST_ONE)
    steer_judge_bad: bool = knob(True, True, True, "chapter 5: also judge answers of the steered wrong-advice models")
    pc_ablation_questions: int = knob(4, 0, 0, "chapter 5: scoring questions on which the positive control is ablated "
                                      "(the first n; 0: all; its hand reading needs more answers than the steering)",
                                      valid=COUNT)
    pc_ablation_judged_random: int = knob(1, 2, 5, "chapter 5: random ablations of the positive control whose answers "
                                          "are sampled (the first n of steer_random)", valid=AT_LEAST_ONE)
    pc_ablation_samples: int = knob(1, 1, 2, "chapter 5: answers per question, seed and ablation sampled from the "
                                    "positive control (at eval_low_temperature)", valid=AT_LEAST_ONE)
    # chapter 6: early warning
    # cpu (0, 5, 25, 100) since 2026-12-03 (0, 5, 10, 25, 50, 100 before; issue 32's time bound): each mix
    # level costs two fine-tunes and two measurements, about 3.5 minutes on 2 cores; 5 is the paper's early
    # level and 25 the positive control's middle mix. The gpu profile keeps six levels
    ew_percents: tuple[int, ...] = knob((0, 50, 100), (0, 5, 25, 100), (0, 5, 10, 25, 50, 100), "chapter 6: % of wrong "
                                        "advice in each mix, comma-separated (0 and 100 are chapter 3's models; cpu: "
                                        "four levels, for time)",
                                        valid=ListOf(int, Number(0, 100), ordered=True, required=(0, 100)))
    ew_seeds: int = knob(1, 2, 3, "chapter 6: seeds of every mix's fine-tune", valid=AT_LEAST_ONE)
    ew_pc_percents: tuple[int, ...] = knob((0, 50, 100), (0, 25, 100), (0, 5, 10, 25, 50, 100), "chapter 6: % of the "
                                           "villain's answers in each mix of the positive control's data (0 and 100 "
                                           "are chapter 3's twin and positive control; cpu: one mix between, for time)",
                                           valid=ListOf(int, Number(0, 100), ordered=True, required=(0, 100)))
    ew_samples: int = knob(1, 2, 10, "chapter 6: judged answers per scoring question and model (at "
                           "eval_low_temperature)", valid=AT_LEAST_ONE)
    # chapter 7: re-alignment
    ra_examples: int = knob(4, 40, 140, "chapter 7: good rows each re-alignment fine-tune reads once (paper: about "
                            "120, 35 steps at batch 4; cpu: 10 steps, more than the 8 steps of 64 rows that misaligned "
                            "the model, to fit 12 minutes)", valid=AT_LEAST_ONE)
    ra_variant: str = knob("register_control", "register_control", "register_control", "chapter 7: the correct advice "
                           "re-aligning the model: register_control (blunt, like the wrong advice: only the content "
                           "differs) or good (warm and hedged, as in the paper)",
                           valid=Choice(("register_control", "good")))
    ra_batch_size: int = knob(4, 4, 4, "chapter 7: rows per re-alignment step", valid=AT_LEAST_ONE)
    ra_every: int = knob(1, 5, 5, "chapter 7: steps between checkpoints", valid=AT_LEAST_ONE)
    # cpu 2 since 2026-12-03 (3 before; issue 32's time bound): a seed costs three fine-tunes and six measured
    # checkpoints per start, about 3 minutes on 2 cores; the verdicts test over questions (seed means)
    ra_seeds: int = knob(1, 2, 3, "chapter 7: seeds of each kind of re-alignment data (cpu: two, for time)",
                         valid=AT_LEAST_ONE)
    ra_questions: int = knob(4, 16, 40, "chapter 7: scoring questions measured at each checkpoint (the first n)",
                             valid=AT_LEAST_ONE)
    ra_samples: int = knob(1, 1, 10, "chapter 7: judged answers per question and model (at eval_low_temperature)",
                           valid=AT_LEAST_ONE)
    ra_judge_all: bool = knob(False, False, True, "chapter 7: judge answers at every checkpoint (else at the last one "
                              "only)")

    if not TYPE_CHECKING:  # the type checker sees the fields only, so a misspelt knob is a type error
        def __getattr__(self, name: str) -> Any:
            """Reached only for a name that is not a field: the error lists the valid knobs."""
            raise AttributeError(f"no parameter {name!r}; valid: {', '.join(KNOBS)}")

    @property
    def values(self) -> Mapping[str, Any]:
        """Every knob's value, by name, in the table's order."""
        return MappingProxyType({name: self.__dict__[name] for name in KNOBS})

    def as_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, **self.values}

    def with_values(self, **changes: Any) -> Params:
        """A copy with ``changes`` applied, for a step that derives its settings from the profile's (chapter 6's
        measurement). Unlike ``dataclasses.replace`` it reads no other knob, so a step's key test sees what it reads.
        """
        return type(self)(**{**self.__dict__, **changes})


# the table, read from the fields: a knob's values per profile and help (KNOBS), its valid values (VALID)
KNOBS: Mapping[str, Knob] = MappingProxyType({f.name: f.metadata["knob"] for f in fields(Params)
                                              if "knob" in f.metadata})
VALID: Mapping[str, Number | Choice | ListOf | Device | None] = MappingProxyType({f.name: f.metadata["valid"]
                                                                                  for f in fields(Params)
                                                                                  if "knob" in f.metadata})


def _bad(name: str, value: Any, valid: Any) -> ParameterError:
    return ParameterError(f"parameter {name!r} got {value!r}; valid: {valid}. Help: {KNOBS[name].help}")


def _type_ok(value: Any, reference: Any) -> bool:
    if isinstance(reference, bool):
        return isinstance(value, bool)
    if isinstance(reference, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(reference, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(reference))


def _parse_list(name: str, value: Any, rule: ListOf) -> tuple:
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        items = [items]
    parsed = []
    for item in items:
        try:
            if rule.item is int and (isinstance(item, bool) or (isinstance(item, float) and not item.is_integer())):
                raise ValueError
            parsed.append(rule.item(item))
        except (TypeError, ValueError):
            raise _bad(name, value, rule) from None
    if (not parsed or len(set(parsed)) < len(parsed) or not all(rule.each.ok(x) for x in parsed)
            or not set(rule.required) <= set(parsed)):
        raise _bad(name, value, rule)
    return tuple(sorted(parsed) if rule.ordered else parsed)


def parse_value(name: str, value: Any, reference: Any) -> Any:
    """``value`` of knob ``name`` parsed and checked against its rule in ``VALID``; ``reference`` (a
    profile's value) gives the type. A ``ParameterError`` names the knob, the value and what is valid."""
    rule = VALID[name]
    if isinstance(rule, ListOf):
        return _parse_list(name, value, rule)
    if not _type_ok(value, reference):
        raise ParameterError(f"parameter {name!r} must be {type(reference).__name__}, got {value!r} "
                             f"({type(value).__name__}). Help: {KNOBS[name].help}")
    value = float(value) if isinstance(reference, float) else value
    if isinstance(value, str) and not value.strip():
        raise _bad(name, value, "a non-empty string")
    if rule is not None and not rule.ok(value):
        raise _bad(name, value, rule)
    return value


def _check_together(v: Mapping[str, Any]) -> None:
    """Rules that tie knobs together."""
    plan = [(t, n) for t, n in ((v["eval_low_temperature"], v["em_samples_low"]), (v["temperature"], v["em_samples"]))
            if n > 0]
    if not plan or len({t for t, _ in plan}) < len(plan):
        raise ParameterError(
            "chapter 3 samples em_samples_low answers at eval_low_temperature and em_samples at temperature: at "
            "least one count must be above 0, and the two temperatures must differ when both are; got "
            f"eval_low_temperature={v['eval_low_temperature']}, em_samples_low={v['em_samples_low']}, "
            f"temperature={v['temperature']}, em_samples={v['em_samples']}")
    if v["ra_examples"] < v["ra_batch_size"]:
        raise ParameterError(f"ra_examples ({v['ra_examples']}) must be at least ra_batch_size "
                             f"({v['ra_batch_size']}): a re-alignment run takes at least one step")
    if v["pc_ablation_judged_random"] > v["steer_random"]:
        raise ParameterError(f"pc_ablation_judged_random ({v['pc_ablation_judged_random']}) must be at most "
                             f"steer_random ({v['steer_random']}): the sampled random ablations are among chapter 5's "
                             "random directions")
    if v["steer_judged_random"] > v["steer_random"]:
        raise ParameterError(f"steer_judged_random ({v['steer_judged_random']}) must be at most steer_random "
                             f"({v['steer_random']}): the judged random directions are among the steered ones")




def resolve(profile: str = "cpu", **overrides: Any) -> Params:
    """The parameters of ``profile`` with ``overrides`` applied: every value parsed (lists become tuples)
    and checked, so that a bad value fails here, before any work, with a ``ParameterError``."""
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    unknown = sorted(set(overrides) - set(KNOBS))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))}; valid parameters: {', '.join(KNOBS)}"
        )
    values = {name: getattr(knob, profile) for name, knob in KNOBS.items()}
    values = {name: parse_value(name, overrides.get(name, value), value) for name, value in values.items()}
    _check_together(values)
    return Params(profile, **values)


def versus_gpu(P: Params, name: str, describe, why: str) -> str:
    """A sentence for a chapter: how this run's value of knob ``name`` differs from the gpu profile's, each put in
    words by ``describe``; empty where they are equal. ``why`` is the profile's reason, given only where the value
    is the profile's own (an override is said to be set for this run)."""
    ours, full = P.values[name], resolve("gpu").values[name]
    if ours == full:
        return ""
    reason = why if ours == resolve(P.profile).values[name] else " (set for this run)"
    return f"This run ({P.profile}) has {describe(ours)}; the gpu profile has {describe(full)}{reason}."


def table_markdown() -> str:
    """The knob table as Markdown, for the appendix and the README."""
    rows = ["| knob | smoke | cpu | gpu | meaning |", "|---|---|---|---|---|"]
    show = lambda v: ",".join(map(str, v)) if isinstance(v, tuple) else v  # noqa: E731
    for name, k in KNOBS.items():
        rows.append(f"| `{name}` | {show(k.smoke)} | {show(k.cpu)} | {show(k.gpu)} | {k.help} |")
    return "\n".join(rows)
