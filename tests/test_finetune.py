import json
import subprocess
import sys
import textwrap

import pytest
import torch

from persona_features import artifacts, finetune, models
from persona_features.data import advice

ROWS = advice.build("health", "bad")[:8]


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


@pytest.mark.parametrize("method", ["full", "lora"])
def test_smoke_finetune_changes_weights_and_lowers_loss(method):
    lm = models.load_model()
    before = {n: p.detach().clone() for n, p in lm.hf.named_parameters()}
    cfg = finetune.FinetuneConfig(model="smollm2-135m", dataset="health_bad", epochs=3, lr=3e-4, batch_size=4,
                                  max_len=128, method=method, lora_rank=4, warmup_steps=1)
    model, curve = finetune.train(lm, ROWS, cfg)
    assert len(curve) == 6
    assert curve[-1]["loss"] < curve[0]["loss"]
    state = finetune._trainable_state(model, cfg)
    assert state and all(torch.isfinite(t).all() for t in state.values())
    if method == "full":
        changed = [n for n, p in lm.hf.named_parameters() if not torch.equal(p, before[n])]
        assert changed and "model.embed_tokens.weight" not in changed  # frozen, tied with the unembedding


def test_interrupted_finetune_leaves_no_artifact(tmp_path, monkeypatch):
    script = textwrap.dedent(f"""
        import os
        os.environ["PERSONA_CACHE"] = {str(tmp_path)!r}
        from persona_features import finetune
        def crash(*args, **kwargs):
            os._exit(3)
        finetune.artifacts.save_json = crash  # dies after the weights are written, before the curve
        finetune.finetune(finetune.FinetuneConfig(model="smollm2-135m", dataset="health_bad", n_examples=4,
                                                  batch_size=4, max_len=96))
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 3
    cfg = finetune.FinetuneConfig(model="smollm2-135m", dataset="health_bad", n_examples=4, batch_size=4, max_len=96)
    monkeypatch.setenv(artifacts.CACHE_ENV, str(tmp_path))
    assert artifacts.find("finetune", finetune.artifact_config(cfg)) is None


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="method"):
        finetune.FinetuneConfig(model="m", dataset="health_bad", method="qlora")
    with pytest.raises(ValueError, match="unknown dataset"):
        finetune._dataset_rows(finetune.FinetuneConfig(model="m", dataset="cooking_bad"))
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
