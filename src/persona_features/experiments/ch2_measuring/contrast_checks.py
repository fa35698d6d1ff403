"""Chapter 2's checks of the contrast: does it see a known shift (the villain prompt), and is it blind to
tone (a confident, kind prompt; a register-only fine-tune, chapter 3's register control against its
correct twin)?"""

from __future__ import annotations

import pandas as pd

from persona_features.core.params import Params
from persona_features.core.stats import (
    ALPHA,
)
from persona_features.data.questions import split
from persona_features.lm.models import LoadedModel
from persona_features.measure import contrast
from persona_features.measure.judge import Judge
from persona_features.organisms.design import MAIN_DOMAIN, Arm
from persona_features.organisms.measurement import compare, train_and_measure

CHECKS = {"villain": "villain system prompt (base model)",
          "confident_kind": "confident, kind system prompt (base model)",
          "register_finetune": f"register-only fine-tune ({MAIN_DOMAIN}: register control - correct twin)"}


def contrast_validation(base: LoadedModel, judge: Judge, P: Params) -> pd.DataFrame:
    """Chapter 2's three checks of the contrast, one row per check and metric (``contrast``, ``register_shift``).

    The prompted checks are paired over all scoring questions; the register-only fine-tune over the
    questions unrelated to its domain. Its two models are chapter 3's, from the same cache.
    """
    scoring = split("scoring")[:P.eval_questions]
    rows = contrast.prompted_controls(base, scoring, P.bootstrap, P.seed).rename(columns={"system_prompt": "check"})
    reg, good = (train_and_measure(Arm(MAIN_DOMAIN, v), judge, P) for v in ("register_control", "good"))
    tests = compare(reg, good, MAIN_DOMAIN, P.bootstrap, P.seed)
    rows = pd.concat([rows, pd.DataFrame([{"check": "register_finetune", "metric": m, **tests[m].as_dict()}
                                          for m in ("contrast", "register_shift")])], ignore_index=True)
    return rows.assign(label=rows["check"].map(CHECKS))


def validation_outcomes(checks: pd.DataFrame) -> dict[str, bool]:
    """What each check was meant to show, and whether it did (p < alpha, two-sided, in the stated direction)."""
    def up(check: str, metric: str) -> bool:
        r = checks[(checks["check"] == check) & (checks["metric"] == metric)].iloc[0]
        return bool(r["p_value"] < ALPHA and r["mean"] > 0)

    return {"villain raises the contrast": up("villain", "contrast"),
            "the confident, kind prompt does not raise the contrast": not up("confident_kind", "contrast"),
            "the register-only fine-tune does not raise the contrast": not up("register_finetune", "contrast"),
            "the register shift detects the register-only fine-tune": up("register_finetune", "register_shift")}


def validation_reading(checks: pd.DataFrame) -> str:
    """What the checks mean for chapter 3, as a computed sentence."""
    row = checks.set_index(["check", "metric"])["mean"]
    reg, villain = row[("register_finetune", "contrast")], row[("villain", "contrast")]
    if not validation_outcomes(checks)["the register-only fine-tune does not raise the contrast"]:
        return (f"So the contrast is not blind to how the training answers are written: a fine-tune that changes only "
                f"the tone and register of correct advice moved it by {reg:+.2f} nats per token, {reg / villain:.0%} "
                f"of the villain prompt's shift, although the references carry the same register markers on both "
                f"sides. Only a comparison with the register control, which holds tone and register fixed and "
                f"changes only the content of the advice, isolates values; chapter 3 decides on that comparison.")
    return (f"A fine-tune that changes only the tone and register of correct advice moved the contrast by {reg:+.2f} "
            f"nats per token, not significantly, against {villain:+.2f} for the villain prompt.")
