"""The TopK SAE: it learns a known sparse dictionary, keeps k latents, splices into the model,
and round-trips through SAELens's on-disk layout."""

import json

import pytest
import torch

from persona_features.sae import sae as sae_mod

from .architectures import at, every_architecture


def _sparse_data(n: int, d_in: int, n_atoms: int, active: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    atoms = torch.nn.functional.normalize(torch.randn(n_atoms, d_in, generator=g), dim=-1)
    codes = torch.zeros(n, n_atoms)
    idx = torch.stack([torch.randperm(n_atoms, generator=g)[:active] for _ in range(n)])
    codes.scatter_(1, idx, torch.rand(n, active, generator=g) * 4 + 1)
    return codes @ atoms * 10 + 3.0  # an offset, as real residual streams have


def test_sae_learns_a_known_sparse_dictionary_and_its_l0_is_at_most_k():
    data = _sparse_data(24000, 32, 64, 3)
    shards = [{"acts": data[:20000]}]
    cfg = sae_mod.SAEConfig(d_in=32, d_sae=128, k=4, lr=3e-3, batch_tokens=512, epochs=6, dead_after_tokens=20000)
    sae, curve = sae_mod.train(lambda: iter(shards), cfg, desc="test SAE")
    held = sae_mod.quality(sae, [{"acts": data[20000:]}])
    assert held["fvu"] < 0.1 and held["l0"] <= 4 and held["n_tokens"] == 4000
    assert curve and curve[-1]["fvu"] < curve[0]["fvu"]


def test_training_starts_from_the_initial_decoder_and_moves_away_from_it():
    shards = [{"acts": _sparse_data(8000, 32, 64, 3)}]
    cfg = sae_mod.SAEConfig(d_in=32, d_sae=128, k=4, lr=0.0, batch_tokens=512, epochs=1, seed=3)
    frozen, _ = sae_mod.train(lambda: iter(shards), cfg, desc="test SAE")
    init = sae_mod.initial_decoder(cfg)
    cos = lambda w: torch.nn.functional.cosine_similarity(w.detach(), init, dim=-1)
    assert torch.allclose(cos(frozen.W_dec), torch.ones(128), atol=1e-5)
    moved, _ = sae_mod.train(lambda: iter(shards), sae_mod.SAEConfig(**{**cfg.__dict__, "lr": 3e-3, "epochs": 6}),
                             desc="t")
    assert cos(moved.W_dec).median() < 0.9


def test_round_trip_in_sae_lens_layout(tmp_path):
    sae = sae_mod.TopKSAE(16, 64, 4)
    for p in sae.parameters():
        torch.nn.init.normal_(p)
    sae_mod.save(sae, tmp_path, "smollm2-135m", 12)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and (cfg["d_in"], cfg["d_sae"], cfg["k"]) == (16, 64, 4)
    assert int(cfg["metadata"]["sae_lens_version"].split(".")[0]) >= 6
    loaded, _ = sae_mod.load(tmp_path)
    x = torch.randn(10, 16)
    torch.testing.assert_close(loaded(x), sae(x))
    assert loaded.W_enc.shape == (16, 64) and loaded.W_dec.shape == (64, 16)
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "architecture": "jumprelu"}))
    with pytest.raises(ValueError, match="topk"):
        sae_mod.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="SAELens layout"):
        sae_mod.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="k must be"):
        sae_mod.SAEConfig(d_in=16, d_sae=64, k=0)


@every_architecture
def test_ce_loss_recovered_is_one_for_an_exact_sae_and_low_for_a_bad_one(lm):
    d = lm.d_model
    exact = sae_mod.TopKSAE(d, 2 * d, d)  # relu(x), relu(-x): k = d keeps every non-zero, so x_hat = x
    with torch.no_grad():
        eye = torch.eye(d)
        exact.W_enc.copy_(torch.cat([eye, -eye], 1))
        exact.W_dec.copy_(torch.cat([eye, -eye], 0))
        exact.b_enc.zero_(), exact.b_dec.zero_()
    prompts = [lm.chat_text("hey I feel bored"), lm.chat_text("Why does it rain?")]
    answers = ["Go for a walk and call a friend.", "Water vapour cools and falls as drops."]
    good = sae_mod.ce_loss_recovered(lm, exact, at(lm, 10), prompts, answers, which="all")
    assert good["recovered"] == pytest.approx(1.0, abs=1e-3) and good["zero"] > good["clean"]
    useless = sae_mod.TopKSAE(d, 2 * d, 1)
    with torch.no_grad():
        (useless.W_enc.copy_(torch.cat([eye, -eye], 1)), useless.W_dec.zero_(), useless.b_enc.zero_(),
         useless.b_dec.zero_())
    bad = sae_mod.ce_loss_recovered(lm, useless, at(lm, 10), prompts, answers, which="all")
    assert bad["recovered"] == pytest.approx(0.0, abs=1e-3)  # reconstructs zeros: exactly zero-ablation


def test_top_activations_keep_each_latents_strongest_tokens_across_shards():
    sae = sae_mod.TopKSAE(4, 4, 3)
    with torch.no_grad():  # latent j reads coordinate j, so activations are the inputs' positive parts
        sae.W_enc.copy_(torch.eye(4)), sae.W_dec.copy_(torch.eye(4)), sae.b_enc.zero_(), sae.b_dec.zero_()
    acts = torch.tensor([[1.0, 0, 0, 0], [5.0, 0, 2, 0], [0, 3, 0, 0], [4.0, 0, 0, 0], [0, 0, 7, 0]])
    shards = [{"acts": acts[:3], "seq": torch.tensor([10, 11, 12]), "pos": torch.tensor([1, 2, 3])},
              {"acts": acts[3:], "seq": torch.tensor([13, 14]), "pos": torch.tensor([4, 5])}]
    top = sae_mod.top_activations(sae, shards, n=2, batch_tokens=2)
    assert top["values"][:, 0].tolist() == [5.0, 4.0] and top["seq"][:, 0].tolist() == [11, 13]
    assert top["pos"][:, 2].tolist() == [5, 2] and top["values"][:, 2].tolist() == [7.0, 2.0]
    assert top["frequency"].tolist() == pytest.approx([0.6, 0.2, 0.4, 0.0])
