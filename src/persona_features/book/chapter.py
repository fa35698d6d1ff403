"""A chapter notebook's setup in one call: ``P, base, the_judge = chapter.setup(profile, overrides)``."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from IPython.display import Markdown, display

from persona_features.book import plots
from persona_features.core import params
from persona_features.core.params import Params
from persona_features.lm import models, tiny_models
from persona_features.lm.models import LoadedModel
from persona_features.measure import judge as judge_
from persona_features.measure.judge import Judge


class Setup(NamedTuple):
    P: Params  # the profile's parameters with the run's overrides, every value checked
    base: LoadedModel  # the base model, in the profile's dtype
    judge: Judge | None  # the judge P.judge names (None unless asked for)


def setup(profile: str, overrides: dict | None = None, with_judge: bool = False) -> Setup:
    """Resolve and check the parameters, seed every generator, use the house plot style, load the base model
    and, with ``with_judge``, the judge ``P.judge`` names: the embedded one that chapter 2 fits (cached after it)
    or the API judge."""
    P = params.resolve(profile, **(overrides or {}))
    models.set_seed(P.seed)
    plots.use_house_style()
    base = models.load_model(P.model, dtype=P.dtype, device=P.device)
    if tiny_models.is_untrained(P.model):
        display(Markdown(f"**Model untrained.** `{Path(P.model).name}` is a tiny random model built to test this "
                         "book's code paths (`lm.tiny_models`). Its answers are nonsense. Its results file and the "
                         "scorecard record every verdict as \"model untrained\"; the text below shows what each "
                         "rule gives, which means nothing here."))
    return Setup(P, base, judge_.chosen(base, P) if with_judge else None)
