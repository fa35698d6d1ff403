"""The tiny models of other families: what sets each apart from the embedded model is really there, and the
book's code handles it (the equivalence tests marked ``every_architecture`` run the rest on each family)."""

import pytest
import torch

from persona_features.lm import generation, models, tiny_models

from .architectures import every_architecture


@every_architecture
def test_logits_from_the_final_hidden_state_are_the_models_own(lm):
    enc = lm.encode([lm.chat_text("Tell me a story about a lighthouse keeper and the sea, please.")])
    with torch.inference_mode():
        own = lm.hf(**enc).logits
        hidden = lm.hf.model(**enc).last_hidden_state
        ours, bare = lm.logits(hidden), lm.hf.lm_head(hidden)
    torch.testing.assert_close(ours, own, rtol=1e-5, atol=1e-5)
    if getattr(lm.hf.config, "final_logit_softcapping", None):  # the test sees the cap: the bare head misses it
        assert not torch.allclose(bare, own, atol=1e-3)


def test_each_family_has_what_sets_it_apart(tiny_model_folders):
    qwen = models.load_model(str(tiny_model_folders["qwen2"]))
    gemma = models.load_model(str(tiny_model_folders["gemma2"]))
    assert type(qwen.hf).__name__ == "Qwen2ForCausalLM" and type(gemma.hf).__name__ == "Gemma2ForCausalLM"
    assert (qwen.n_layers, qwen.d_model, gemma.n_layers, gemma.d_model) == (4, 64, 4, 64)
    attn = qwen.hf.model.layers[0].self_attn
    assert attn.q_proj.bias is not None and attn.k_proj.weight.shape[0] < attn.q_proj.weight.shape[0]  # biases, GQA
    assert qwen.hf.lm_head.weight.data_ptr() != qwen.hf.model.embed_tokens.weight.data_ptr()  # untied
    assert gemma.hf.lm_head.weight.data_ptr() == gemma.hf.model.embed_tokens.weight.data_ptr()  # tied
    assert (qwen.attention_window, gemma.attention_window) == (None, 16)
    assert qwen.chat_text("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"  # no default system
    assert gemma.chat_text("hi", system="Be brief.") == (
        "<start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n<start_of_turn>model\n")  # no system role: folded in
    end_of_turn = gemma.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert generation._stop_ids(gemma) == {end_of_turn, gemma.tokenizer.eos_token_id}


def test_a_prefix_is_shared_only_within_a_sliding_window(tiny_model_folders, lm):
    gemma = models.load_model(str(tiny_model_folders["gemma2"]))
    short, long_ = [[5, 6, 7, 8], [5, 6, 9]], [[5, 6] + [7] * 20, [5, 6, 9]]
    assert generation.shareable_prefix(gemma, short) == 2 and generation.shareable_prefix(gemma, short, 12) == 2
    assert generation.shareable_prefix(gemma, short, 13) == 0  # 4 + 13 positions reach past the window of 16
    assert generation.shareable_prefix(gemma, long_) == 0
    assert generation.shareable_prefix(lm, long_) == 2  # full attention: always shared
    assert generation.shareable_prefix(lm, long_[:1]) == 0  # a single row has nothing to share


def test_an_unknown_family_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown family 'gpt2'; valid: qwen2, gemma2"):
        tiny_models.build("gpt2", tmp_path / "x")
    assert not (tmp_path / "x").exists()


@every_architecture
def test_the_fine_tuning_loss_is_the_models_own(lm):
    from persona_features.lm import finetune

    ids, labels = finetune.chat_example(lm, [{"role": "user", "content": "Name a colour."},
                                             {"role": "assistant", "content": "Blue, like the sea."}], 64)
    batch = finetune._collate([(ids, labels)], lm.tokenizer.pad_token_id)
    with torch.inference_mode():
        hidden = lm.hf.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        ours = finetune.answer_loss(hidden, batch["labels"], lm.logits)
        own = lm.hf(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss
    torch.testing.assert_close(ours, own, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine cuda is there")
def test_a_device_that_is_not_there_is_refused_naming_the_fix():
    assert models.resolve_device("auto") == models.HOST
    with pytest.raises(models.ModelNotAvailableError, match="--set device=cpu"):
        models.resolve_device("cuda:0")
