"""Steering: the nnsight edit equals a plain hook, zero strength changes nothing, ablation removes the direction."""

import pytest
import torch

from persona_features import contrast, generation, steering
from persona_features.data.questions import BETLEY_QUESTIONS

TEXTS = [q for _, q in BETLEY_QUESTIONS[:3]]


def _hooked_logits(lm, steer, enc):
    handle = lm.hf.model.layers[steer.layer].register_forward_hook(lambda m, i, out: steer.apply(out))
    try:
        return lm.hf(**enc).logits
    finally:
        handle.remove()


def test_steered_forward_equals_a_plain_forward_hook(lm):
    enc = lm.encode([lm.chat_text(t) for t in TEXTS])
    steer = steering.Steer(12, steering.random_direction(lm.d_model, 0), strength=8.0, ablate=True)
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


def test_steered_logprobs_at_zero_strength_equal_the_contrasts_own_scoring(lm):
    prompts = [lm.chat_text(t) for t in TEXTS]
    answers = ["Rest, drink water and see a doctor if it lasts.", "I would wish for peace.", "Be kind."]
    zero = steering.Steer(14, steering.random_direction(lm.d_model, 2), strength=0.0)
    got = steering.steered_logprobs(zero)(lm, prompts, answers, batch_size=2)
    want = contrast.answer_logprobs(lm, prompts, answers)
    assert got == pytest.approx(want, abs=2e-3)
    pushed = steering.steered_logprobs(steering.Steer(14, steering.random_direction(lm.d_model, 2), strength=80.0))
    assert pushed(lm, prompts, answers) != pytest.approx(want, abs=2e-3)
