"""Model diffing (chapter 4): which SAE latents fine-tuning switches on, and which it switches off.

Every model is read on the same chats at the same layer; each latent's mean activation is
compared with the base model's. Much of any fine-tune's shift is generic (shared by the bad
models and their controls), so a latent's score is its rise in the wrong-advice models minus
the rise in their own controls, matched model by model. Each kind of control is reported apart;
the register-matched one separates values from style.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd
import torch

from .activations import layer_activations
from .models import LoadedModel
from .sae import TopKSAE


@torch.inference_mode()
def mean_latents(lm: LoadedModel, sae: TopKSAE, layer: int, prompts: Sequence[str], answers: Sequence[str],
                 which: str = "prompt", batch_size: int = 16) -> torch.Tensor:
    """Each latent's mean activation ``[d_sae]`` over the ``which`` tokens of (chat prompt, answer) pairs."""
    total, n = torch.zeros(sae.d_sae), 0
    for start in range(0, len(prompts), batch_size):
        acts, _, _ = layer_activations(lm, layer, prompts[start:start + batch_size],
                                       answers[start:start + batch_size], which)
        total += sae.encode(acts).sum(0)
        n += len(acts)
    if n == 0:
        raise ValueError(f"no {which} tokens to average over: pass non-empty prompts (and answers for 'answer')")
    return total / n


def shift_table(means: Mapping[str, torch.Tensor], base: str) -> pd.DataFrame:
    """One row per latent, one column per model: its mean activation minus the base model's."""
    if base not in means:
        raise KeyError(f"no means for the base model {base!r}; have {', '.join(means)}")
    return pd.DataFrame({name: (m - means[base]).numpy() for name, m in means.items() if name != base})


def rank_latents(shifts: pd.DataFrame, treated: Sequence[str], controls: Mapping[str, Sequence[str]],
                 primary: str, rising: bool = True) -> pd.DataFrame:
    """Latents ranked by how much more the ``treated`` models moved them than their controls did.

    ``controls`` maps a kind (e.g. ``register_control``) to one model per treated model, in the same
    order. ``score`` = mean shift of the treated models minus that of the ``primary`` controls;
    ``consistent`` counts treated models that moved a latent further than their own primary control.
    ``rising=False`` ranks the largest falls instead (the helpful-assistant side).
    """
    if primary not in controls:
        raise KeyError(f"primary control {primary!r} is not among the controls: {', '.join(controls)}")
    for kind, models in controls.items():
        if len(models) != len(treated):
            raise ValueError(f"control {kind!r} lists {len(models)} models for {len(treated)} treated ones")
    missing = [m for m in [*treated, *(m for ms in controls.values() for m in ms)] if m not in shifts]
    if missing:
        raise KeyError(f"no shifts for {', '.join(missing)}")
    out = pd.DataFrame({"latent": shifts.index, "shift_treated": shifts[list(treated)].mean(1).to_numpy()})
    for kind, models in controls.items():
        out[f"shift_{kind}"] = shifts[list(models)].mean(1).to_numpy()
    out["score"] = out["shift_treated"] - out[f"shift_{primary}"]
    sign = 1 if rising else -1
    own = shifts[list(treated)].to_numpy() - shifts[list(controls[primary])].to_numpy()
    out["consistent"] = (sign * own > 0).sum(1)
    return out.sort_values("score", ascending=not rising, kind="stable").reset_index(drop=True)
