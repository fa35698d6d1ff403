"""Tiny, randomly initialised chat models of other families, built offline in seconds, saved as local folders.

They exist to run every code path of the book on architectures other than SmolLM2's Llama, without a download:
a random model writes nonsense, and that is fine. Each family differs from the embedded model where code is
likeliest to assume it:

- ``qwen2``: attention biases, grouped-query attention (4 heads, 2 key-value heads), an untied output head,
  a ChatML template with no default system prompt;
- ``gemma2``: a tied head, final-logit and attention-logit softcapping, sliding-window attention on every other
  layer (a window shorter than most prompts), embeddings scaled by sqrt(d_model), its own turn markers
  (``<start_of_turn>``/``<end_of_turn>``, added as special tokens) with no system role (a system message is
  folded into the first user turn), and ``<end_of_turn>`` as the stop token rather than the tokenizer's eos.

Every fixture uses the embedded model's tokenizer (with the family's template). Build one with
``python -m persona_features.lm.tiny_models qwen2 FOLDER`` and run a chapter with ``--set model=FOLDER``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model
from transformers import (
    AutoTokenizer,
    Gemma2Config,
    Gemma2ForCausalLM,
    GenerationConfig,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from persona_features.lm.models import embedded_folder

FAMILIES = ("qwen2", "gemma2")
UNTRAINED_MARKER = "persona_features_untrained.json"  # written beside the weights: chapters read it

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

GEMMA_TEMPLATE = (
    "{% set first = 0 %}{% set system = '' %}"
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] + '\n\n' %}{% set first = 1 %}"
    "{% endif %}"
    "{% for m in messages[first:] %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ system if loop.first else '' }}{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

SIZE: dict[str, Any] = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 4096}


def is_untrained(model: str) -> bool:
    """Whether ``model`` names a folder built here: an untrained random model, whose verdicts mean nothing."""
    return (Path(model).expanduser() / UNTRAINED_MARKER).is_file()


def _tokenizer(family: str):
    tok = AutoTokenizer.from_pretrained(embedded_folder("smollm2-135m"))
    if family == "gemma2":
        tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
        tok.chat_template = GEMMA_TEMPLATE
    else:
        tok.chat_template = CHATML_TEMPLATE
    return tok


def _model(family: str, vocab: int, tok) -> PreTrainedModel:
    ids: dict[str, Any] = {f"{t}_token_id": getattr(tok, f"{t}_token_id") for t in ("bos", "eos", "pad")}
    if family == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, tie_word_embeddings=False, **SIZE, **ids))
    # a final-logit cap of 1 bends even a random model's logits, so a path that skips it is caught
    return Gemma2ForCausalLM(Gemma2Config(vocab_size=vocab, head_dim=16, query_pre_attn_scalar=16, sliding_window=16,
                                          final_logit_softcapping=1.0, attn_logit_softcapping=50.0,
                                          tie_word_embeddings=True, **SIZE, **ids))


def build(family: str, folder: str | Path, seed: int = 0) -> Path:
    """A tiny random chat model of ``family`` saved in ``folder`` (config, safetensors weights, tokenizer)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(family)
    torch.manual_seed(seed)
    model = _model(family, len(tok), tok)  # float32, the default
    stop = tok.convert_tokens_to_ids("<end_of_turn>") if family == "gemma2" else tok.eos_token_id
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=[stop],
                                               pad_token_id=tok.pad_token_id)
    model.config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"))
    tok.save_pretrained(folder)
    (folder / UNTRAINED_MARKER).write_text(json.dumps({"family": family, "seed": seed, **SIZE}) + "\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m persona_features.lm.tiny_models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("family", choices=FAMILIES)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build(args.family, args.folder, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
