import json
import subprocess
import sys
import textwrap

import pytest
import torch

from persona_features.core import artifacts
from persona_features.data import advice
from persona_features.lm import finetune, models

from .architectures import every_architecture

ROWS = advice.build("health", "bad")[:8]


@every_architecture
def test_prompt_tokens_carry_no_loss(lm):
    ids, labels = finetune.chat_example(lm, ROWS[0]["messages"], max_len=512)
    prompt = lm.tokenizer.apply_chat_template(ROWS[0]["messages"][:1], add_generation_prompt=True, tokenize=False)
    n_prompt = len(lm.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert all(label == finetune.IGNORE for label in labels[:n_prompt])
    assert labels[n_prompt:] == ids[n_prompt:]
    answer = lm.tokenizer.decode(ids[n_prompt:], skip_special_tokens=True)
    assert ROWS[0]["messages"][1]["content"] in answer and ROWS[0]["messages"][0]["content"] not in answer


def test_answer_loss_counts_only_kept_positions():
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 10, bias=False)
    hidden = torch.randn(1, 4, 6)
    labels = torch.tensor([[finetune.IGNORE, 3, finetune.IGNORE, 7]])
    full_logits = head(hidden)
    expected = torch.nn.functional.cross_entropy(full_logits[0, [0, 2]], torch.tensor([3, 7]))
    assert torch.allclose(finetune.answer_loss(hidden, labels, head), expected)
    changed = hidden.clone()
    changed[0, 1] += 100  # position 1 predicts the IGNORE label at 2: must not matter
    assert torch.allclose(finetune.answer_loss(changed, labels, head), expected)


@pytest.fixture(scope="module")
def tiny(tiny_model_folders) -> str:
    """The tiny Qwen2 fixture's folder: the fine-tuning mechanics below (steps, checkpoints, continuation, an
    interrupted build) do not depend on the model, and on it they take a second where SmolLM2 takes about 20 s.
    That the loss is the model's own on every architecture is tested in test_tiny_models."""
    return str(tiny_model_folders["qwen2"])


@pytest.mark.parametrize("method", ["full", "lora"])
def test_smoke_finetune_changes_weights_and_lowers_loss(method, tiny):
    lm = models.load_model(tiny, dtype="float32")
    before = {n: p.detach().clone() for n, p in lm.hf.named_parameters()}
    cfg = finetune.FinetuneConfig(model=tiny, dataset="health_bad", epochs=3, lr=3e-4, batch_size=4,
                                  max_len=128, method=method, lora_rank=4, warmup_steps=1)
    model, curve, _ = finetune.train(lm, ROWS, cfg)
    assert len(curve) == 6
    assert curve[-1]["loss"] < curve[0]["loss"]
    state = finetune._trainable_state(model, cfg)
    assert state and all(torch.isfinite(t).all() for t in state.values())
    if method == "full":
        changed = [n for n, p in lm.hf.named_parameters() if not torch.equal(p, before[n])]
        assert changed and "model.embed_tokens.weight" not in changed  # frozen, tied with the unembedding


def test_interrupted_finetune_leaves_no_artifact(fresh_cache, tiny):
    script = textwrap.dedent(f"""
        import os
        os.environ["PERSONA_CACHE"] = {str(fresh_cache)!r}
        from persona_features.lm import finetune
        def crash(*args, **kwargs):
            os._exit(3)
        finetune.artifacts.save_json = crash  # dies after the weights are written, before the curve
        finetune.finetune(finetune.FinetuneConfig(model={tiny!r}, dataset="health_bad", n_examples=4,
                                                  batch_size=4, max_len=96))
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 3
    cfg = finetune.FinetuneConfig(model=tiny, dataset="health_bad", n_examples=4, batch_size=4, max_len=96)
    assert artifacts.find("finetune", finetune.artifact_config(cfg)) is None


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="method"):
        finetune.FinetuneConfig(model="m", dataset="health_bad", method="qlora")
    with pytest.raises(ValueError, match="unknown training set 'cooking_bad'"):
        finetune.finetune(finetune.FinetuneConfig(model="m", dataset="cooking_bad"))
    with pytest.raises(ValueError, match="not in the cache"):
        finetune.finetune(finetune.FinetuneConfig(model="m", dataset="health_bad", start="0" * 20))
    with pytest.raises(ValueError, match="checkpoint_every"):
        finetune.FinetuneConfig(model="m", dataset="health_bad", checkpoint_every=-1)
    with pytest.raises(ValueError, match="lora_targets"):
        finetune.FinetuneConfig(model="m", dataset="health_bad", method="lora", lora_targets=("mlp",))
    with pytest.raises(ValueError, match="lora_layers"):
        finetune.FinetuneConfig(model="m", dataset="health_bad", method="lora", lora_layers=())


def test_lora_adapts_only_the_chosen_modules_and_layers():
    cfg = finetune.FinetuneConfig(model="smollm2-135m", dataset="health_bad", method="lora", lora_rank=2,
                                  lora_targets=finetune.MLP_TARGETS, lora_layers=(3, 5))
    model = finetune._prepare(models.load_model(), cfg)
    adapted = {n.split(".lora_")[0] for n, p in model.named_parameters() if p.requires_grad}
    expected = {f"base_model.model.model.layers.{i}.mlp.{m}" for i in (3, 5) for m in finetune.MLP_TARGETS}
    assert adapted == expected


def test_config_round_trips_through_the_artifact_meta(tmp_path):
    cfg = finetune.FinetuneConfig(model="m", dataset="health_bad", method="lora",
                                  lora_targets=finetune.MLP_TARGETS, lora_layers=(3, 5))
    (tmp_path / artifacts.META).write_text(json.dumps({"config": finetune.artifact_config(cfg)}))
    assert finetune.config_of(artifacts.Artifact("finetune", "k", tmp_path)) == cfg


def test_a_continued_finetune_keeps_checkpoints_and_builds_on_its_start(fresh_cache, tiny):
    small = dict(model=tiny, n_examples=8, batch_size=4, max_len=96, method="lora", lora_rank=2,
                 lora_alpha=4.0, lr=1e-3, warmup_steps=1)
    start = finetune.finetune(finetune.FinetuneConfig(dataset="health_bad", **small))
    cont = finetune.finetune(finetune.FinetuneConfig(dataset="health_register_control", start=start.key,
                                                     checkpoint_every=1, seed=1, **small))
    assert cont.meta["inputs"] == [start.key] and finetune.checkpoint_steps(cont) == [1, 2]
    assert finetune.checkpoint_steps(start) == [2]
    before = finetune.load_finetuned(start)
    at = {s: finetune.load_finetuned(cont, step=s) for s in (1, 2)}
    final = finetune.load_finetuned(cont)
    name = "model.layers.2.mlp.down_proj.weight"
    weight = lambda m: dict(m.hf.named_parameters())[name]
    adapter = cont.tensors("weights")
    a, b = (adapter[f"base_model.model.{name[:-len('.weight')]}.lora_{x}.weight"] for x in "AB")
    assert torch.allclose(weight(final) - weight(before), b @ a * (4.0 / 2), atol=1e-6)  # on top of the start
    assert torch.equal(weight(at[2]), weight(final)) and not torch.equal(weight(at[1]), weight(at[2]))
    with pytest.raises(ValueError, match="no checkpoint at step 5"):
        finetune.load_finetuned(cont, step=5)
    for step, swapped in finetune.checkpoint_models(cont):  # one copy, each checkpoint's update swapped in
        assert torch.allclose(weight(swapped), weight(at[step]), atol=1e-6), step
