"""Chapter 1's measurements: the residual stream's norm by layer (first token apart), and the chapter's result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from persona_features.core import stats
from persona_features.core.chapter_result import ChapterResult
from persona_features.core.params import Params
from persona_features.lm.activations import ResidualNorms
from persona_features.lm.models import LoadedModel

SINK_RATIO = 10  # the first token counts as a sink from the first layer where its norm is this many times the rest


@dataclass(frozen=True)
class NormSummary:
    """Per layer, the mean norm with a 95% interval over prompts: of the other tokens and of the first token."""

    norms: ResidualNorms
    typical: list[stats.Estimate]
    sink: list[stats.Estimate]

    @property
    def peak_layer(self) -> int:
        """The layer (0-based) where the typical token's norm is largest."""
        return max(range(len(self.typical)), key=lambda i: self.typical[i].mean)

    @property
    def ratios(self) -> list[float]:
        return [s.mean / t.mean for s, t in zip(self.sink, self.typical)]

    @property
    def sink_layer(self) -> int | None:
        """The first layer (0-based) where the first token's norm is ``SINK_RATIO`` times the rest, if any."""
        return next((i for i, r in enumerate(self.ratios) if r > SINK_RATIO), None)


def summarise(norms: ResidualNorms, n_boot: int, seed: int) -> NormSummary:
    return NormSummary(norms, stats.bootstrap_columns(norms.other_tokens.numpy(), n_boot, seed),
                       stats.bootstrap_columns(norms.first_token.numpy(), n_boot, seed))


def result(lm: LoadedModel, P: Params, answers: pd.DataFrame, padding_ok: Sequence[bool], traced: int,
           summary: NormSummary) -> ChapterResult:
    """Chapter 1's results file and the facts its text shows."""
    peak, sink_layer = summary.peak_layer, summary.sink_layer
    facts = {"model_name": P.model, "n_params_m": f"{lm.n_params / 1e6:.1f}", "n_layers": lm.n_layers,
             "d_model": lm.d_model, "n_answers": len(answers), "temperature": P.temperature,
             "padding_ok": f"{sum(padding_ok)} of {len(padding_ok)}", "n_trace": traced, "peak_layer": peak + 1,
             "peak_norm": f"{summary.typical[peak].mean:.0f}", "first_norm": f"{summary.typical[0].mean:.0f}",
             "sink_layer": "none" if sink_layer is None else sink_layer + 1,
             "sink_ratio": f"{max(summary.ratios):.0f}"}
    metrics = {
        "n_params": lm.n_params,
        "n_layers": lm.n_layers,
        "d_model": lm.d_model,
        "n_answers": len(answers),
        "mean_answer_tokens": float(answers["n_tokens"].mean()),
        "finished_fraction": float(answers["finished"].mean()),
        "padding_check_matches": int(sum(padding_ok)),
        "padding_check_total": len(padding_ok),
        "residual_norm_typical_token": [e.as_dict() for e in summary.typical],
        "residual_norm_first_token": [e.as_dict() for e in summary.sink],
    }
    return ChapterResult("01_model", metrics, facts=facts)
