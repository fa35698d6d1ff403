"""Steering: the nnsight edit equals a plain hook, zero strength changes nothing, ablation removes the direction."""

import pytest
import torch

from persona_features.data.questions import BETLEY_QUESTIONS
from persona_features.lm import generation
from persona_features.measure import contrast, steering

from .architectures import at, every_architecture

TEXTS = [q for _, q in BETLEY_QUESTIONS[:3]]


def _hooked_logits(lm, steer, enc):
    handle = lm.hf.model.layers[steer.layer].register_forward_hook(lambda m, i, out: steer.apply(out))
    try:
        return lm.hf(**enc).logits
    finally:
        handle.remove()


@every_architecture
def test_steered_forward_equals_a_plain_forward_hook(lm):
    enc = lm.encode([lm.chat_text(t) for t in TEXTS])
    steer = steering.Steer(at(lm, 12), steering.random_direction(lm.d_model, 0), strength=8.0, ablate=True)
    with torch.inference_mode():
        got = steering.steered_forward(lm, steer)(**enc)
        want = _hooked_logits(lm, steer, enc)
        plain = lm.hf(**enc).logits
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-2)  # the edit did something


def test_zero_strength_samples_like_the_plain_model_and_strength_changes_answers(lm):
    texts = [lm.chat_text(t) for t in TEXTS]
    plain = generation.generate_batch(lm, texts, 16, temperature=0.0)
    zero = steering.Steer(10, steering.random_direction(lm.d_model, 1), strength=0.0)
    assert torch.equal(generation.generate_batch(lm, texts, 16, 0.0, forward=steering.steered_forward(lm, zero)), plain)
    strong = steering.Steer(10, steering.random_direction(lm.d_model, 1), strength=200.0)
    steered = generation.generate_batch(lm, texts, 16, 0.0, forward=steering.steered_forward(lm, strong))
    assert not torch.equal(steered, plain)


def test_settings_sampled_in_one_batch_equal_each_setting_alone(lm):
    one = [lm.chat_text(t) for t in TEXTS]
    u, v = steering.random_direction(lm.d_model, 1), steering.random_direction(lm.d_model, 2)
    settings = [None, steering.Steer(10, u, strength=200.0),
                [steering.Steer(5, v, ablate=True), steering.Steer(12, u, strength=-150.0, answer_only=True)]]
    texts = [one[0], one[1], one[2], one[0], one[1], one[2], one[0]]
    groups = [0, 1, 2, 1, 2, 0, 0]  # the last row repeats the first: one prompt pass serves both
    forward, prompt_batches = steering.per_question_forward(lm, settings, groups), []

    def counting(question, **inputs):
        if generation.PROMPT_PASS in inputs:
            prompt_batches.append(inputs["input_ids"].shape[0])
        return forward(question, **inputs)

    counting.groups = forward.groups
    together = generation.generate_batch(lm, texts, 12, temperature=0.0, forward=counting)
    assert prompt_batches == [3, 6]  # the template's start once per setting, then each distinct (prompt, setting)
    for i, (text, g) in enumerate(zip(texts, groups)):
        alone = steering.steered_forward(lm, settings[g]) if settings[g] is not None else None
        assert torch.equal(together[i], generation.generate_batch(lm, [text], 12, 0.0, forward=alone)[0]), i
    assert not torch.equal(together[3], together[0]) and torch.equal(together[6], together[0])  # the steer acted
    with pytest.raises(ValueError, match="groups must index"):
        steering.per_question_forward(lm, settings, [0, 3])


def test_ablation_leaves_no_component_along_the_direction():
    u = steering.random_direction(16, 3)
    h = torch.randn(2, 5, 16)
    assert torch.allclose(steering.Steer(0, u, ablate=True).apply(h) @ u, torch.zeros(2, 5), atol=1e-5)
    added = steering.Steer(0, 3 * u, strength=2.0).apply(h)
    assert torch.allclose((added - h) @ u, torch.full((2, 5), 2.0), atol=1e-5)


def test_bad_steers_are_refused(lm):
    with pytest.raises(ValueError, match="non-zero"):
        steering.Steer(0, torch.zeros(lm.d_model))
    with pytest.raises(ValueError, match="layer must be"):
        steering.steered_forward(lm, steering.Steer(99, torch.ones(lm.d_model)))
    with pytest.raises(ValueError, match="dimensions"):
        steering.steered_forward(lm, steering.Steer(0, torch.ones(7)))


@every_architecture
def test_steered_logprobs_at_zero_strength_equal_the_contrasts_own_scoring(lm):
    prompts = [lm.chat_text(t) for t in TEXTS]
    answers = ["Rest, drink water and see a doctor if it lasts.", "I would wish for peace.", "Be kind."]
    zero = steering.Steer(at(lm, 14), steering.random_direction(lm.d_model, 2), strength=0.0)
    got = steering.steered_logprobs(zero)(lm, prompts, answers, batch_size=2)
    want = contrast.answer_logprobs(lm, prompts, answers)
    assert got == pytest.approx(want, abs=2e-3)
    push = steering.Steer(at(lm, 14), steering.random_direction(lm.d_model, 2), strength=80.0)
    pushed = steering.steered_logprobs(push)
    assert pushed(lm, prompts, answers) != pytest.approx(want, abs=2e-3)


def _hooked_forward(lm, steers):
    """The plain-PyTorch version of ``steered_forward``: forward hooks, no nnsight."""
    def forward(**inputs):
        prompt = generation.PROMPT_PASS in inputs
        handles = [lm.hf.model.layers[s.layer].register_forward_hook(lambda m, i, out, s=s: s.apply(out))
                   for s in steers if not (prompt and s.answer_only)]
        try:
            return lm.hf(**inputs).logits
        finally:
            for h in handles:
                h.remove()
    return forward


@every_architecture
def test_greedy_tokens_under_nnsight_equal_a_plain_hook_at_several_layers(lm):
    texts = [lm.chat_text(t) for t in TEXTS]
    steers = [steering.Steer(at(lm, 18), steering.random_direction(lm.d_model, 4), strength=60.0),
              steering.Steer(at(lm, 9), steering.random_direction(lm.d_model, 5), strength=30.0, ablate=True)]
    got = generation.generate_batch(lm, texts, 20, 0.0, forward=steering.steered_forward(lm, steers))
    want = generation.generate_batch(lm, texts, 20, 0.0,
                                     forward=_hooked_forward(lm, sorted(steers, key=lambda s: s.layer)))
    assert torch.equal(got, want)
    assert not torch.equal(got, generation.generate_batch(lm, texts, 20, 0.0))


def test_answer_only_steering_leaves_the_prompt_alone(lm):
    texts = [lm.chat_text(t) for t in TEXTS]
    direction = steering.random_direction(lm.d_model, 6)
    everywhere = steering.Steer(12, direction, strength=150.0)
    answer_only = steering.Steer(12, direction, strength=150.0, answer_only=True)
    plain = generation.generate_batch(lm, texts, 12, 0.0)
    only = generation.generate_batch(lm, texts, 12, 0.0, forward=steering.steered_forward(lm, answer_only))
    assert torch.equal(only, generation.generate_batch(lm, texts, 12, 0.0, forward=_hooked_forward(lm, [answer_only])))
    assert torch.equal(only[:, 0], plain[:, 0])  # the first token comes from the unsteered prompt pass
    assert not torch.equal(only, plain)
    assert not torch.equal(only, generation.generate_batch(lm, texts, 12, 0.0,
                                                           forward=steering.steered_forward(lm, everywhere)))
    # scoring: editing the answer's positions only leaves the first answer token's probability alone
    prompts, answers = [lm.chat_text(TEXTS[0])], ["Rest and drink water."]
    first = lambda steer: steering.steered_logprobs(steer)(lm, prompts, ["Rest"])
    assert first(answer_only) == pytest.approx(first(steering.Steer(12, direction, strength=0.0)), abs=1e-4)
    assert steering.steered_logprobs(answer_only)(lm, prompts, answers) != pytest.approx(
        steering.steered_logprobs(everywhere)(lm, prompts, answers), abs=1e-3)


@every_architecture
def test_steered_scoring_equals_a_plain_hook_on_the_shared_prefix_path(lm):
    prompts = [lm.chat_text(t) for t in TEXTS]
    answers = ["Rest, drink water and see a doctor if it lasts.", "I would wish for peace.", "Be kind."]
    steer = steering.Steer(at(lm, 14), steering.random_direction(lm.d_model, 7), strength=40.0, ablate=True)
    handle = lm.hf.model.layers[steer.layer].register_forward_hook(lambda m, i, out: steer.apply(out))
    try:
        want = contrast.answer_logprobs(lm, prompts, answers, batch_size=3)
    finally:
        handle.remove()
    assert steering.steered_logprobs(steer)(lm, prompts, answers, batch_size=3) == pytest.approx(want, abs=1e-4)
    assert want != pytest.approx(contrast.answer_logprobs(lm, prompts, answers), abs=1e-2)


def test_a_sweep_equals_each_setting_scored_alone(lm):
    prompts = [lm.chat_text(t) for t in TEXTS] * 2
    answers = ["Rest, drink water and see a doctor if it lasts.", "I would wish for peace.", "Be kind.",
               "Sleep.", "A quiet life.", "Listen first, then talk."]
    v, w = (steering.random_direction(lm.d_model, s) for s in (3, 4))
    settings = [steering.Steer(14, v, strength=40.0), None, steering.Steer(16, w, strength=-30.0, ablate=True),
                [steering.Steer(14, w, strength=20.0, answer_only=True), steering.Steer(20, v, strength=25.0)]]
    swept = steering.steered_sweep(settings)(lm, prompts, answers, batch_size=4)
    alone = [contrast.answer_logprobs(lm, prompts, answers, batch_size=4) if s is None else
             steering.steered_logprobs(s)(lm, prompts, answers, batch_size=4) for s in settings]
    assert len(swept) == len(settings)
    for got, want in zip(swept, alone):
        assert got == pytest.approx(want, abs=1e-4)
    assert swept[0] != pytest.approx(swept[1], abs=1e-2)  # the steers did act


def test_ablation_to_a_target_leaves_that_projection_and_the_rest_untouched():
    u = steering.random_direction(16, 4)
    h = torch.randn(2, 5, 16)
    out = steering.Steer(0, 5 * u, ablate=True, target=1.5).apply(h)
    assert torch.allclose(out @ u, torch.full((2, 5), 1.5), atol=1e-5)
    rest = lambda x: x - (x @ u)[..., None] * u
    assert torch.allclose(rest(out), rest(h), atol=1e-5)


def test_a_sweep_with_nothing_steered_scores_the_plain_model(lm):
    prompts, answers = [lm.chat_text("Hi?")], ["Hello there."]
    plain = contrast.answer_logprobs(lm, prompts, answers)
    assert steering.steered_sweep([None, None])(lm, prompts, answers) == [plain, plain]
