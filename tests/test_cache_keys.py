"""Every cached step keys on every knob it reads: a table-driven test.

Each row of ``STEPS`` calls one cached step the way the book does, with ``artifacts.get_or_build``
replaced by a stub that records the step's key instead of building. The step's parameters record
which knobs it reads. The test checks, per step:
- the knobs it reads are the row's (so the table cannot drift from the code);
- changing any of them to another valid value changes the key.
Every knob of the profile table is either read by some step or listed in ``NOT_KEYED`` with the
reason, so a new knob cannot be forgotten. A build function never reads the parameters itself
(``test_builds_read_no_parameters``): whatever it uses passed through the key first.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from persona_features.core import artifacts
from persona_features.core.params import KNOBS, VALID, Choice, ListOf, ParameterError, Params, resolve
from persona_features.core.paths import repo_root
from persona_features.data import questions
from persona_features.experiments.ch4_diffing import readings, screen
from persona_features.experiments.ch5_steering import ablation, interventions
from persona_features.experiments.ch6_early_warning import early_warning
from persona_features.experiments.ch7_realignment import realignment
from persona_features.lm import finetune
from persona_features.measure import judge
from persona_features.organisms import design, measurement, persona_arms
from persona_features.sae import sae, sae_corpus

NOWHERE = Path("/nonexistent")


class Recording(Params):
    """Params that note every knob read whose value is the profile's (not one a step set itself)."""
    read: set = set()
    profile_values: dict = {}

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        if name in KNOBS and value == Recording.profile_values.get(name):
            Recording.read.add(name)
        return value


def recording(P: Params) -> Recording:
    Recording.profile_values = dict(P.values)
    return Recording(**P.as_dict())


class Captured(Exception):
    def __init__(self, key):
        self.key = key


@dataclass
class StubJudge:
    key: str = "judge-key"
    name: str = "stub judge"


JUDGE = StubJudge()
SAE_ART = artifacts.Artifact("sae", "sae-key", NOWHERE)


class StubCorpus:
    key = "corpus-key"

    @staticmethod
    def json(name):
        return [{"user": f"question {i}", "system": None, "answer": f"answer {i}"} for i in range(40)]


def _reader():
    return readings.Reader("base", lambda: None)


def _steer(P):
    settings = interventions.sweep_settings(["d"], interventions.strengths(P), 1.0, judged=["d"])
    return interventions.run(_reader(), settings, {"d": torch.ones(8)}, 3, 10.0,
                             readings.questions(P, "scoring")[:P.steer_questions], JUDGE, P, P.steer_samples)


def _ablate(P):
    """Chapter 5's ablation of the positive control, called as ``ablation.run`` calls ``interventions.run``."""
    settings = [interventions.Setting("d", 0.0, ablate=True, judged=True, target=0.5)]
    return interventions.run(_reader(), settings, {"d": torch.ones(8)}, 3, 10.0, ablation.questions(P), JUDGE, P,
                             P.pc_ablation_samples)


def _finetune_key(cfg):
    raise Captured(artifacts.artifact_key("finetune", finetune.artifact_config(cfg), [cfg.start] if cfg.start else []))


START = artifacts.Artifact("finetune", "start-key", NOWHERE)
PERSONA_ROWS = [{"id": "r0", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]


def _persona_finetune_key(P):
    cfg = persona_arms.finetune_config(P, persona_arms.PersonaArm("general", "villain"))
    raise Captured(artifacts.artifact_key("finetune", finetune.artifact_config(cfg, PERSONA_ROWS)))

# step -> (how the book calls it, the knobs it reads)
STEPS = {
    "em_eval": (lambda P, lm: measurement.measure(lambda: None, JUDGE, P, "base"),
                {"model", "dtype", "eval_questions", "eval_low_temperature", "em_samples_low", "temperature",
                 "em_samples", "eval_max_new_tokens", "top_p", "seed", "batch_size", "em_domains", "heldout_topics"}),
    "em_eval, chapter 6's mixes": (
        lambda P, lm: measurement.measure(lambda: None, JUDGE, early_warning.eval_params(P), "mix",
                                        heldout_domains=["health"], register=False, score_contrast=False),
        {"model", "dtype", "eval_questions", "eval_low_temperature", "ew_samples", "eval_max_new_tokens", "top_p",
         "seed", "batch_size", "tracking_heldout_topics"}),  # em_samples_low, em_samples and heldout_topics are set
    # by the step, not read
    "realign_eval": (lambda P, lm: realignment.measure(lambda: [], [5, 10], None, P, SAE_ART, JUDGE, "health"),
                     {"model", "dtype", "eval_questions", "ra_questions", "ra_samples", "ra_judge_all",
                      "eval_low_temperature", "eval_max_new_tokens", "top_p", "seed", "batch_size",
                      "tracking_heldout_topics"}),
    "steer": (lambda P, lm: _steer(P),
              {"model", "dtype", "steer_alphas", "eval_questions", "steer_questions", "steer_samples",
               "eval_low_temperature", "eval_max_new_tokens", "top_p", "seed", "batch_size"}),
    "steer, chapter 5's positive control": (
        lambda P, lm: _ablate(P),
        {"model", "dtype", "pc_ablation_questions", "pc_ablation_samples", "eval_low_temperature",
         "eval_max_new_tokens", "top_p", "seed", "batch_size"}),
    "screen": (lambda P, lm: screen.run(_reader(), [], {"d": torch.ones(8)}, 3, P.screen_strength * 10.0, JUDGE, P,
                                        "sae-key"),
               {"model", "dtype", "screen_strength", "screen_samples", "eval_low_temperature", "eval_max_new_tokens",
                "top_p", "seed", "batch_size", "selection_questions"}),
    "sae_corpus_generated": (lambda P, lm: sae_corpus.generated_chats(None, P),
                             {"model", "dtype", "sae_dtype", "sae_corpus_samples", "sae_corpus_max_new_tokens",
                              "seed", "batch_size"}),
    "sae_corpus": (lambda P, lm: sae_corpus.build(None, P),
                   {"model", "dtype", "sae_dtype", "sae_corpus_samples", "sae_corpus_max_new_tokens", "seed",
                    "batch_size", "sae_rows_per_set"}),
    "sae_activations": (lambda P, lm: sae.build(lm, P, StubCorpus, 3), {"model", "dtype", "sae_dtype", "sae_chats"}),
    "sae": (lambda P, lm: sae.build(lm, P, StubCorpus, 3),
            {"model", "dtype", "sae_dtype", "sae_chats", "sae_expansion", "sae_k", "sae_epochs", "seed",
             "sae_eval_chats"}),
    "layer_reading": (lambda P, lm: readings.layer_reading(_reader(), P, "scoring", [1, 2]),
                      {"model", "dtype", "eval_questions", "batch_size"}),
    "layer_reading, selection": (lambda P, lm: readings.layer_reading(_reader(), P, "selection", [1, 2]),
                                 {"model", "dtype", "selection_questions", "batch_size"}),
    "latent_reading": (lambda P, lm: readings.latent_reading(_reader(), P, "scoring", SAE_ART),
                       {"model", "dtype", "eval_questions", "batch_size"}),
    "contrast_reading": (lambda P, lm: readings.contrast_reading(_reader(), P, "scoring", SAE_ART),
                         {"model", "dtype", "eval_questions"}),
    "judge": (lambda P, lm: judge.default_judge(lm, P), {"judge_tune_rows"}),  # and the loaded model's name
    "judge_heldout": (lambda P, lm: judge.heldout_agreement(JUDGE, P.judge_heldout_rows or None),
                      {"judge_heldout_rows"}),
    "finetune, chapter 3": (lambda P, lm: _finetune_key(design.finetune_config(P, design.Arm("health", "bad"))),
                            {"model", "ft_examples", "ft_epochs", "ft_lr", "ft_batch_size", "ft_method",
                             "ft_lora_rank", "seed"}),
    "persona_distill": (lambda P, lm: persona_arms.training_data(lm, JUDGE, P, "general"),
                        {"persona_questions", "persona_samples", "persona_max_new_tokens", "top_p", "seed",
                         "batch_size"}),  # the model is keyed by the loaded model's name and dtype
    "persona_authored": (lambda P, lm: persona_arms.training_data(lm, JUDGE, P, "authored"), {"persona_questions"}),
    "finetune, chapter 3's persona organisms": (
        lambda P, lm: _persona_finetune_key(P),
        {"model", "ft_epochs", "persona_lr", "ft_batch_size", "ft_method", "ft_lora_rank", "seed",
         "persona_max_new_tokens"}),
    "finetune, chapter 6": (lambda P, lm: _finetune_key(early_warning.finetune_config(P, early_warning.Mix(50, 0))),
                            {"model", "ft_examples", "ft_epochs", "ft_lr", "ft_batch_size", "ft_method",
                             "ft_lora_rank", "seed"}),
    "finetune, chapter 7": (
        lambda P, lm: _finetune_key(realignment.finetune_config(P, START,
                                                                realignment.Run("neutral", "neutral_tasks", 0))),
        {"model", "ra_examples", "ft_lr", "ra_batch_size", "ft_method", "ft_lora_rank", "seed", "ra_every"}),
}

# knobs that no cached step reads, and why that is right
NOT_KEYED = {
    "max_new_tokens": "chapter 1's chat answers, which are not cached",
    "chat_samples": "chapter 1's chat answers, which are not cached",
    "trace_prompts": "chapter 1's residual norms, which are not cached",
    "bootstrap": "intervals computed from cached tables, never cached themselves",
    "judge_test_rows": "chapter 2 scores the frozen test set afresh (not cached)",
    "em_seeds": "how many main-domain fine-tunes exist; each is keyed by its own seed",
    "sae_layer": "picks the layer, which every SAE-side key holds",
    "screen_latents": "picks the latents screened; each direction is keyed by its norm and the SAE",
    "steer_random": "how many random directions exist; each is keyed by its fingerprint",
    "steer_judged_random": "which settings are judged; each setting's judged flag is in the steer key",
    "steer_bad_seeds": "which wrong-advice models are steered; each model is keyed by its fine-tune",
    "steer_judge_bad": "which settings are judged; each setting's judged flag is in the steer key",
    "pc_ablation_judged_random": "which ablations are judged; each setting's judged flag is in the steer key",
    "ew_pc_percents": "which positive-control mixes exist; each mix is keyed by its fine-tune's training rows",
    "ew_percents": "which mixes exist; each mix is keyed by its fine-tune's data set",
    "ew_seeds": "which mixes exist; each mix is keyed by its fine-tune's seed",
    "persona_sources": "which persona organisms exist; each fine-tune is keyed by its training rows",
    "persona_seeds": "how many persona fine-tunes exist; each is keyed by its own seed",
    "ra_variant": "which re-alignment data set is used; the fine-tune is keyed by its data set",
    "ra_seeds": "how many re-alignment runs exist; each is keyed by its fine-tune's seed",
    "judge": "picks the judge; the judge's own key (embedded: its fitted artifact; api: endpoint, model, prompts) "
             "is in every judged step's key",
    "device": "where the model computes, not what: keys name the computation, not the hardware (nor the CPU's "
              "instruction set)",
}


def _key(step, P, lm, monkeypatch):
    def fake(kind, config, build, inputs=()):
        key = artifacts.artifact_key(kind, config, inputs)
        if kind == step.split(",")[0]:
            raise Captured(key)
        return artifacts.Artifact(kind, key, NOWHERE)

    monkeypatch.setattr(artifacts, "get_or_build", fake)
    monkeypatch.setattr(sae_corpus, "training_chats", lambda rows, seed: [{"rows": rows, "seed": seed}])
    Recording.read = set()
    with pytest.raises(Captured) as e:
        STEPS[step][0](recording(P), lm)
    return e.value.key, set(Recording.read)


def _alternatives(name: str, value):
    """Other valid values of a knob (a step must change its key for at least one)."""
    rule = VALID[name]
    if isinstance(rule, Choice):
        return [v for v in rule.values if v != value]
    if isinstance(rule, ListOf):
        return [value[:1] if len(value) > 1 else tuple(sorted({*value, *rule.each.values[:2]}))
                if isinstance(rule.each, Choice) else (*value, (max(value) + 1) if rule.item is float else 99)]
    if isinstance(value, bool):
        return [not value]
    if name == "model":
        return ["another/model"]
    if name == "temperature":
        return [0.9]
    if name == "top_p":
        return [0.9]
    if name == "eval_low_temperature":
        return [0.5]
    if name == "sae_layer":
        return [5]
    if name == "sae_chats":
        return [20]
    if isinstance(value, float):
        return [value * 2]
    return [value + 1] + [v for v in (value - 1, 1) if v != value and rule.ok(v)]  # counts above n may be capped


@pytest.fixture(scope="module")
def smoke_lm():
    from persona_features.lm import models
    return models.load_model("smollm2-135m", dtype="float32")


@pytest.mark.parametrize("step", list(STEPS))
def test_every_knob_a_cached_step_reads_changes_its_key(step, monkeypatch, smoke_lm):
    monkeypatch.setattr("persona_features.lm.models.native_bfloat16", lambda: False)
    base = resolve("cpu")
    key, read = _key(step, base, smoke_lm, monkeypatch)
    assert read == STEPS[step][1], f"{step} reads {sorted(read)}; the table says {sorted(STEPS[step][1])}"
    for name in sorted(read):
        keys = set()
        for alternative in _alternatives(name, base.values[name]):
            try:
                other = resolve("cpu", **{name: alternative})
            except ParameterError:  # valid alone, not with the profile's other knobs
                continue
            keys.add(_key(step, other, smoke_lm, monkeypatch)[0])
        assert keys - {key}, f"{step}: changing {name} does not change its key"


def test_every_knob_is_keyed_somewhere_or_says_why_not():
    read = set().union(*(knobs for _, knobs in STEPS.values()))
    assert not read & set(NOT_KEYED), f"listed as not keyed but keyed: {sorted(read & set(NOT_KEYED))}"
    forgotten = set(KNOBS) - read - set(NOT_KEYED)
    assert not forgotten, f"knobs in no cached step's key and not in NOT_KEYED: {sorted(forgotten)}"


def _builds(tree):
    """(function name, build function) for every nested function passed to ``get_or_build``."""
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            nested = {n.name: n for n in fn.body if isinstance(n, ast.FunctionDef)}
            for call in ast.walk(fn):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                        and call.func.attr == "get_or_build" and len(call.args) > 2):
                    build = call.args[2]
                    if isinstance(build, ast.Name) and build.id in nested:
                        yield fn.name, nested[build.id]


def test_builds_read_no_parameters():
    found = 0
    for path in sorted((repo_root() / "src" / "persona_features").rglob("*.py")):
        for name, build in _builds(ast.parse(path.read_text())):
            found += 1
            names = {n.id for n in ast.walk(build) if isinstance(n, ast.Name)}
            assert "P" not in names, f"{path.name}: {name}'s build reads the parameters P; key what it uses first"
    assert found >= 12  # the check saw the builds


def test_the_data_a_step_reads_is_in_its_key(monkeypatch, smoke_lm):
    """An edit to a training set, a question's wording or a held-out pair re-keys what read it."""
    from persona_features.data import cards

    P = resolve("cpu")
    cfg = design.finetune_config(P, design.Arm("health", "bad"))
    rows = cards.training_rows(cfg.dataset, cfg.n_examples, cfg.seed)
    edited = [dict(rows[0], messages=[*rows[0]["messages"][:-1], {"role": "assistant", "content": "edited"}]),
              *rows[1:]]
    assert finetune.artifact_config(cfg, rows) != finetune.artifact_config(cfg, edited)
    assert finetune.artifact_config(cfg) == finetune.artifact_config(cfg, rows)

    before = _key("em_eval", P, smoke_lm, monkeypatch)[0]
    real_split = questions.split
    monkeypatch.setattr(measurement, "split", lambda name: [(q, t + " (edited)") for q, t in real_split(name)])
    assert _key("em_eval", P, smoke_lm, monkeypatch)[0] != before
    monkeypatch.setattr(measurement, "split", real_split)
    real_pairs = design.heldout_pairs
    edited_pairs = lambda d, n=0: [dict(p, wrong="edited") for p in real_pairs(d, n)]
    monkeypatch.setattr(measurement, "heldout_pairs", edited_pairs)
    assert _key("em_eval", P, smoke_lm, monkeypatch)[0] != before
