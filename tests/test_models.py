import time

import pytest
import torch

from persona_features.lm import models


def test_embedded_model_shape(lm):
    assert lm.n_layers == 30
    assert lm.d_model == 576
    assert abs(lm.n_params / 1e6 - 134.5) < 0.1
    assert len(lm.layers) == lm.n_layers
    assert lm.tokenizer.padding_side == "left"


def test_chat_template_wraps_question(lm):
    text = lm.chat_text("hey I feel bored")
    assert "hey I feel bored" in text
    assert text.rstrip().endswith("assistant")
    assert lm.chat_text("q", system="Be brief.").count("Be brief.") == 1


def test_converted_copy_is_cached_and_fast():
    folder = models.embedded_folder("smollm2-135m")
    assert (folder / "model.safetensors").is_file()
    start = time.perf_counter()
    assert models.embedded_folder("smollm2-135m") == folder
    assert time.perf_counter() - start < 1.0


def test_local_folder_loads_through_same_path(lm):
    folder = models.embedded_folder("smollm2-135m")
    other = models.load_model(str(folder))
    for (name, p), (_, q) in zip(lm.hf.named_parameters(), other.hf.named_parameters()):
        assert torch.equal(p, q), name


def test_unknown_model_fails_fast_with_instructions(monkeypatch):
    monkeypatch.delenv(models.ALLOW_DOWNLOAD_ENV, raising=False)
    start = time.perf_counter()
    with pytest.raises(models.ModelNotAvailableError) as e:
        models.load_model("no-such-org/no-such-model-xyz")
    msg = str(e.value)
    assert "no-such-org/no-such-model-xyz" in msg
    assert "smollm2-135m" in msg and models.ALLOW_DOWNLOAD_ENV in msg
    assert time.perf_counter() - start < 10


def test_bad_dtype_is_an_error():
    with pytest.raises(ValueError, match="bfloat16"):
        models.load_model("smollm2-135m", dtype="int8")


def test_bfloat16_load(lm):
    half = models.load_model("smollm2-135m", dtype="bfloat16")
    assert next(half.hf.parameters()).dtype == torch.bfloat16


def test_auto_dtype_follows_the_hardware_and_a_copy_leaves_the_model_untouched(lm, monkeypatch):
    monkeypatch.setattr(models, "native_bfloat16", lambda: True)
    assert models.resolve_dtype("auto", "float32") == "bfloat16"
    monkeypatch.setattr(models, "native_bfloat16", lambda: False)
    assert models.resolve_dtype("auto", "float32") == "float32"
    assert models.resolve_dtype("float32", "bfloat16") == "float32"
    assert models.resolve_dtype("dtype", "bfloat16") == "bfloat16"  # the model's own, whatever the machine
    monkeypatch.setattr(models, "native_bfloat16", lambda: True)
    assert models.resolve_dtype("dtype", "float32") == "float32"
    with pytest.raises(ValueError, match="valid: dtype, auto, float32, bfloat16"):
        models.resolve_dtype("fp8", "float32")
    assert models.in_dtype(lm, "float32") is lm
    before = lm.hf.model.layers[3].mlp.up_proj.weight.clone()
    copy = models.in_dtype(lm, "bfloat16")
    assert copy.hf.dtype == torch.bfloat16 and lm.hf.dtype == torch.float32
    assert torch.equal(lm.hf.model.layers[3].mlp.up_proj.weight, before)
    with torch.inference_mode():
        ids = lm.encode([lm.chat_text("Name a colour.")])
        assert copy.hf(**ids).logits.argmax(-1)[0, -1] == lm.hf(**ids).logits.argmax(-1)[0, -1]
