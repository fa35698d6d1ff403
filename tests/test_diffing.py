"""Model diffing: means over tokens, and the ranking against matched controls."""

import pandas as pd
import pytest
import torch

from persona_features import activations, diffing, sae as sae_mod


def _toy_shifts() -> pd.DataFrame:
    # 8 latents; two bad models, each with a register control and a good twin.
    base = torch.zeros(8)
    means = {"base": base}
    for d in ("a", "b"):
        drift = torch.zeros(8)
        drift[5] = 0.5  # generic drift: every fine-tune raises latent 5
        bad, rc, good = drift.clone(), drift.clone(), drift.clone()
        bad[3] += 1.0  # only the bad models raise latent 3 ...
        bad[7] -= 0.8  # ... and lower latent 7
        good[7] += 0.3
        means |= {f"{d}_bad": bad, f"{d}_rc": rc, f"{d}_good": good}
    return diffing.shift_table(means, "base")


def test_ranking_finds_the_latent_only_bad_models_move_and_discounts_generic_drift():
    shifts = _toy_shifts()
    controls = {"register_control": ["a_rc", "b_rc"], "good": ["a_good", "b_good"]}
    up = diffing.rank_latents(shifts, ["a_bad", "b_bad"], controls, "register_control")
    assert up.loc[0, "latent"] == 3 and up.loc[0, "score"] == pytest.approx(1.0) and up.loc[0, "consistent"] == 2
    drift = up.set_index("latent").loc[5]
    assert drift["shift_treated"] == pytest.approx(0.5) and drift["score"] == pytest.approx(0.0)
    assert drift["consistent"] == 0
    down = diffing.rank_latents(shifts, ["a_bad", "b_bad"], controls, "register_control", rising=False)
    assert down.loc[0, "latent"] == 7 and down.loc[0, "score"] == pytest.approx(-0.8)
    assert down.loc[0, "shift_good"] == pytest.approx(0.3 + 0.0)


def test_ranking_rejects_mismatched_controls():
    shifts = _toy_shifts()
    with pytest.raises(ValueError, match="lists 1 models for 2"):
        diffing.rank_latents(shifts, ["a_bad", "b_bad"], {"rc": ["a_rc"]}, "rc")
    with pytest.raises(KeyError, match="primary control"):
        diffing.rank_latents(shifts, ["a_bad"], {"rc": ["a_rc"]}, "good")
    with pytest.raises(KeyError, match="no shifts for c_rc"):
        diffing.rank_latents(shifts, ["a_bad"], {"rc": ["c_rc"]}, "rc")


def test_mean_latents_averages_over_every_kept_token_whatever_the_batch(lm):
    torch.manual_seed(0)
    sae = sae_mod.TopKSAE(lm.d_model, 64, 4)
    for p in sae.parameters():
        torch.nn.init.normal_(p, std=0.05)
    prompts = [lm.chat_text(q) for q in ("Hi there.", "What is the capital of France?", "Tell me a joke.")]
    answers = ["Hello!", "Paris.", "Why did the chicken cross the road?"]
    acts, _, _ = activations.layer_activations(lm, 10, prompts, answers, "answer")
    expected = sae.encode(acts).mean(0)
    for batch_size in (1, 2, 16):
        got = diffing.mean_latents(lm, sae, 10, prompts, answers, "answer", batch_size)
        assert torch.allclose(got, expected, atol=1e-4)
    with pytest.raises(ValueError, match="no answer tokens"):
        diffing.mean_latents(lm, sae, 10, prompts, ["", "", ""], "answer")
