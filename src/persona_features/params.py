"""Profiles: every tunable knob of the book, in one table.

Each row of `KNOBS` is one knob with its value under each profile:
``smoke`` (CI: seconds per step, tiny n), ``cpu`` (the default book on a 2-core laptop)
and ``gpu`` (Qwen2.5-0.5B-Instruct, paper-sized n). Notebooks receive ``profile`` and
``overrides`` from papermill and call :func:`resolve`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

PROFILES = ("smoke", "cpu", "gpu")


@dataclass(frozen=True)
class Knob:
    smoke: Any
    cpu: Any
    gpu: Any
    help: str


KNOBS: Mapping[str, Knob] = MappingProxyType({
    # model
    "model": Knob("smollm2-135m", "smollm2-135m", "Qwen/Qwen2.5-0.5B-Instruct",
                  "embedded model name, Hugging Face id, or local folder"),
    "dtype": Knob("float32", "float32", "bfloat16", "weights dtype: float32 or bfloat16"),
    "seed": Knob(0, 0, 0, "global seed; every sampled number derives from it"),
    # sampling
    "batch_size": Knob(80, 80, 64, "prompts per sampling batch (on CPU, large batches sample fastest: a step "
                                   "reads every weight once, whatever the batch)"),
    "temperature": Knob(1.0, 1.0, 1.0, "sampling temperature (papers: 1.0); 0 means greedy"),
    "top_p": Knob(1.0, 1.0, 1.0, "nucleus sampling threshold (papers: 1.0)"),
    "max_new_tokens": Knob(24, 96, 256, "tokens sampled per answer"),
    # chapter 1
    "chat_samples": Knob(1, 3, 5, "chapter 1: sampled answers per question"),
    "trace_prompts": Knob(4, 16, 16, "chapter 1: prompts traced for residual-stream norms"),
    "bootstrap": Knob(200, 2000, 2000, "bootstrap resamples for 95% intervals"),
    # chapter 2 and every later evaluation
    "eval_questions": Knob(4, 40, 40, "scoring questions used (the first n of the fixed scoring set)"),
    "eval_max_new_tokens": Knob(16, 64, 256, "tokens sampled per evaluated answer"),
    "judge_heldout_rows": Knob(64, 0, 0, "chapter 2: held-out tuning labels scored (a seeded sample; 0: all)"),
    "judge_test_rows": Knob(64, 0, 0, "chapter 2: answers of the judge's frozen test set scored (0: all)"),
    "eval_low_temperature": Knob(0.7, 0.7, 0.7, "second sampling temperature reported beside the papers' T=1"),
    # fine-tuning (chapter 3 onwards); one setting for every bad set and its controls. The cpu setting is
    # the one chapter 3's rule chose from the sweep (book/measured/03_organism_sweep_health.json)
    "ft_method": Knob("lora", "lora", "full", "fine-tuning method: full or lora"),
    "ft_lr": Knob(1e-3, 2e-4, 1e-4, "fine-tuning peak learning rate (linear warm-up and decay)"),
    "ft_examples": Knob(16, 64, 512, "training rows per fine-tune (first n of a seeded shuffle)"),
    "ft_epochs": Knob(1.0, 1.0, 1.0, "passes over those rows"),
    "ft_batch_size": Knob(8, 8, 8, "chats per optimizer step"),
    "ft_lora_rank": Knob(8, 8, 8, "LoRA rank when ft_method is lora (alpha = 2 x rank)"),
    # chapter 3: the emergent-misalignment experiment
    # cpu: the two domains the fine-tuning sweep was run on (chosen before chapter 3 ran in risk), so that
    # chapters 2+3 fit in 40 minutes on 2 cores; each further domain costs about 10 minutes there
    "em_domains": Knob("health", "health,risk", "health,finance,cars,career,risk,code",
                       "comma-separated training domains (health is the main one, with extra seeds)"),
    "em_seeds": Knob(1, 3, 3, "seeds of the main domain's wrong-advice fine-tune"),
    "em_samples_low": Knob(1, 6, 50, "answers per scoring question and model at eval_low_temperature "
                                     "(the temperature of chapter 3's rates and verdicts)"),
    "em_samples": Knob(1, 1, 50, "answers per scoring question and model at the papers' temperature"),
    # chapter 4: the SAE's corpus and training
    "sae_dtype": Knob("auto", "auto", "auto", "chapter 4: weights dtype of the base model's copy that writes the "
                      "corpus answers and streams the SAE's activations; auto: bfloat16 where the machine computes it "
                      "natively (about 2x faster on such a CPU), else dtype"),
    "sae_corpus_samples": Knob(1, 3, 10, "chapter 4: the base model's answers per corpus prompt"),
    "sae_corpus_max_new_tokens": Knob(16, 128, 256, "chapter 4: tokens per generated corpus answer"),
    "sae_rows_per_set": Knob(4, 340, 400, "chapter 4: rows of each fine-tuning set in the SAE corpus"),
    "sae_chats": Knob(160, 0, 0, "chapter 4: corpus chats the SAE reads (an evenly spaced subset; 0: all)"),
    "sae_layer": Knob(-1, -1, -1, "chapter 4: the SAE's layer; -1: the layer chosen by the layer sweep"),
    "sae_expansion": Knob(2, 8, 8, "chapter 4: SAE latents per residual dimension (smoke: small, for speed)"),
    "sae_k": Knob(8, 32, 64, "chapter 4: active latents per token (TopK)"),
    "sae_epochs": Knob(1, 3, 4, "chapter 4: passes over the SAE's training tokens"),
    "sae_eval_chats": Knob(4, 64, 512, "chapter 4: held-out chats for the SAE's CE-loss-recovered measure"),
    "screen_latents": Knob(1, 5, 10, "chapter 4: top-ranked latents steered in the causal screen"),
    "screen_samples": Knob(1, 2, 10, "chapter 4: answers per selection question judged for each steered base model"),
    "screen_strength": Knob(0.4, 0.4, 0.4, "chapter 4: steering strength of the screen, in units of the median "
                                           "residual norm at the SAE's layer (OpenAI: 0.4)"),
    # chapter 5: steering
    "steer_alphas": Knob("0.2", "0.05,0.1,0.2", "0.05,0.1,0.2,0.4,0.8",
                         "chapter 5: steering strengths, comma-separated, in units of the median residual norm (cpu: "
                         "below 0.4, where chapter 4's screen found coherence gone)"),
    "steer_random": Knob(2, 5, 10, "chapter 5: random directions steered at every strength (the control)"),
    "steer_judged_random": Knob(1, 1, 5, "chapter 5: how many of those random directions also have judged answers"),
    "steer_questions": Knob(4, 16, 40, "chapter 5: scoring questions steered (the first n)"),
    "steer_samples": Knob(1, 1, 4, "chapter 5: judged answers per question under each judged setting"),
    "steer_bad_seeds": Knob(1, 1, 3, "chapter 5: seeds of each domain's wrong-advice model steered (the first n)"),
    "steer_judge_bad": Knob(True, True, True, "chapter 5: also judge answers of the steered wrong-advice models"),
    # chapter 6: early warning
    "ew_percents": Knob("0,50,100", "0,5,10,25,50,100", "0,5,10,25,50,100",
                        "chapter 6: % of wrong advice in each mix, comma-separated (0 and 100 are chapter 3's models)"),
    "ew_seeds": Knob(1, 2, 3, "chapter 6: seeds of every mix's fine-tune"),
    "ew_samples": Knob(1, 2, 10, "chapter 6: judged answers per scoring question and model (at eval_low_temperature)"),
    # chapter 7: re-alignment
    "ra_examples": Knob(4, 40, 140, "chapter 7: good rows each re-alignment fine-tune reads once (paper: about 120, "
                                    "35 steps at batch 4; cpu: 10 steps, more than the 8 steps of 64 rows that "
                                    "misaligned the model, to fit 12 minutes)"),
    "ra_variant": Knob("register_control", "register_control", "register_control",
                       "chapter 7: the correct advice re-aligning the model: register_control (blunt, like the wrong "
                       "advice: only the content differs) or good (warm and hedged, as in the paper)"),
    "ra_batch_size": Knob(4, 4, 4, "chapter 7: rows per re-alignment step"),
    "ra_every": Knob(1, 5, 5, "chapter 7: steps between checkpoints"),
    "ra_seeds": Knob(1, 3, 3, "chapter 7: seeds of each kind of re-alignment data"),
    "ra_questions": Knob(4, 16, 40, "chapter 7: scoring questions measured at each checkpoint (the first n)"),
    "ra_samples": Knob(1, 1, 10, "chapter 7: judged answers per question and model (at eval_low_temperature)"),
    "ra_judge_all": Knob(False, False, True, "chapter 7: judge answers at every checkpoint (else at the last one only)"),
})


class ParameterError(ValueError):
    """A profile or parameter name or value is not valid."""


@dataclass(frozen=True)
class Params:
    profile: str
    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"no parameter {name!r}; valid: {', '.join(KNOBS)}") from None

    def as_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, **self.values}


def _check_type(name: str, value: Any, reference: Any) -> Any:
    if isinstance(reference, bool):
        ok = isinstance(value, bool)
    elif isinstance(reference, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(reference, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(reference))
    if not ok:
        raise ParameterError(
            f"parameter {name!r} must be {type(reference).__name__}, got {value!r} "
            f"({type(value).__name__}). Help: {KNOBS[name].help}"
        )
    return value


def resolve(profile: str = "cpu", **overrides: Any) -> Params:
    """The parameters of ``profile`` with ``overrides`` applied, validated."""
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    unknown = sorted(set(overrides) - set(KNOBS))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))}; valid parameters: {', '.join(KNOBS)}"
        )
    values = {name: getattr(knob, profile) for name, knob in KNOBS.items()}
    for name, value in overrides.items():
        values[name] = _check_type(name, value, values[name])
    if values["dtype"] not in ("float32", "bfloat16"):
        raise ParameterError(f"parameter 'dtype' must be 'float32' or 'bfloat16', got {values['dtype']!r}")
    return Params(profile, MappingProxyType(values))


def table_markdown() -> str:
    """The knob table as Markdown, for the appendix and the README."""
    rows = ["| knob | smoke | cpu | gpu | meaning |", "|---|---|---|---|---|"]
    for name, k in KNOBS.items():
        rows.append(f"| `{name}` | {k.smoke} | {k.cpu} | {k.gpu} | {k.help} |")
    return "\n".join(rows)
