"""Run a test on every architecture: the embedded SmolLM2 (Llama) and the tiny random Qwen2 and Gemma 2 models."""

import pytest

from persona_features.lm.tiny_models import FAMILIES

ARCHITECTURES = ("smollm2-135m", *FAMILIES)

# on a test that takes the ``lm`` fixture: run it once per architecture (conftest's ``lm`` reads the parameter)
every_architecture = pytest.mark.parametrize("lm", ARCHITECTURES, indirect=True)


def at(lm, layer: int) -> int:
    """The layer of ``lm`` at the depth where ``layer`` sits in SmolLM2's 30: itself on the embedded model."""
    return round(layer * (lm.n_layers - 1) / 29)
