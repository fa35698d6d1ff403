"""Chapter 4's causal screen: does steering along a candidate latent move misalignment?

Each candidate's decoder vector is added to the base model's residual stream at the SAE's layer,
and subtracted from each seed-0 wrong-advice model, at a strength of ``screen_strength`` times the
median residual norm at that layer (OpenAI steered at 0.4 of it). A random direction of the same
strength is the control. On the selection questions the screen measures
the contrast (every model) and, for the steered base model, judged misalignment and coherence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from persona_features.core import artifacts
from persona_features.core.params import Params
from persona_features.core.stats import holm, paired_test
from persona_features.experiments.ch4_diffing.readings import Reader, questions
from persona_features.lm.activations import read_shards
from persona_features.lm.generation import Sampling
from persona_features.measure import contrast
from persona_features.measure.judge import Judge
from persona_features.measure.steering import Steer, evaluate_settings, random_direction, steered_sweep
from persona_features.organisms.setting_sweep import COHERENCE_SLACK
from persona_features.sae.sae import activations_folder

RANDOM = "random"


def median_norm(sae_art: artifacts.Artifact) -> float:
    """Median L2 norm of the residual stream at the SAE's layer, over the held-out corpus tokens it was
    evaluated on (token 0 and special tokens are not among them)."""
    held = read_shards(activations_folder(sae_art) / "heldout")
    return float(torch.cat([shard["acts"].norm(dim=-1) for shard in held]).median())


def _per_question(table: pd.DataFrame) -> pd.Series:
    return table.groupby("question_id", sort=True)["contrast"].mean()


def run(base: Reader, bad: Sequence[Reader], directions: Mapping[str, torch.Tensor], layer: int, strength: float,
        judge: Judge, P: Params, sae_key: str) -> dict:
    """Contrast per question for every (direction, model, sign), and the steered base model's judged answers.

    Every direction, and ``RANDOM`` beside them, is steered at ``strength`` along its unit vector.
    Cached, keyed by the SAE, the directions, the strength, the models and the sampling.
    """
    directions = {**directions, RANDOM: random_direction(next(iter(directions.values())).shape[0], P.seed)}
    qs, samples = questions(P, "selection"), P.screen_samples
    sampling = Sampling.of(P, P.eval_low_temperature)
    config = {"model": P.model, "dtype": P.dtype, "layer": layer, "strength": round(strength, 4),
              "directions": {n: round(float(v.norm()), 4) for n, v in directions.items()},
              "questions": [q for q, _ in qs], "texts": artifacts.digest(qs), "samples": samples,
              "sampling": sampling.key(), "judge": judge.key,
              "references": contrast.fingerprint(), "batching": "settings in shared batches"}
    inputs = [sae_key] + [r.source.key for r in bad]  # type: ignore[union-attr]  # fine-tunes have a source

    def build(folder):
        rows, answers = [], []
        for reader, sign in [(base, 1.0)] + [(r, -1.0) for r in bad]:
            lm = reader.load()
            steers = [None] + [Steer(layer, vector, strength=sign * strength) for vector in directions.values()]
            tables = contrast.contrast_tables(lm, qs, steered_sweep(steers))
            rows += [_per_question(t).rename((reader.name, name)) for name, t in zip(["none", *directions], tables)]
            if reader is base:  # the base model's steers are added
                table = evaluate_settings(lm, qs, dict(zip(["none", *directions], steers)), samples, judge,
                                          **sampling.kwargs())
                answers.append(table.rename(columns={"setting": "direction"}))
        frame = pd.DataFrame(rows)
        artifacts.save_json(folder, "contrast", {"index": [list(i) for i in frame.index],
                                                 "questions": list(frame.columns), "values": frame.to_numpy().tolist()})
        artifacts.save_json(folder, "answers", pd.concat(answers).to_dict(orient="list"))

    art = artifacts.get_or_build("screen", config, build, inputs)
    raw = art.json("contrast")
    frame = pd.DataFrame(raw["values"], index=pd.MultiIndex.from_tuples([tuple(i) for i in raw["index"]]),
                         columns=raw["questions"])
    return {"contrast": frame, "answers": pd.DataFrame(art.json("answers")), "directions": list(directions),
            "strength": strength}


def effects(result: dict, base: str, bad: Sequence[str], n_boot: int, seed: int) -> pd.DataFrame:
    """Per direction and condition: the change in contrast against the unsteered model and against the
    random direction (paired over questions; Holm across candidates), and the steered base model's
    judged rates (row ``none``: the unsteered base model)."""
    frame, answers = result["contrast"], result["answers"]
    judged = lambda name: answers[answers["direction"] == name]
    none = judged("none")
    rows = [{"direction": "none", "condition": "added to base", "strength": 0.0,
             "misaligned": float(none["misaligned"].mean()), "coherent": float(none["coherent"].mean()),
             "n_answers": len(none)}]
    for condition, models in (("added to base", [base]), ("subtracted from wrong advice", list(bad))):
        for name in result["directions"]:
            mean_of = lambda kind: np.mean([frame.loc[(m, kind)].to_numpy() for m in models], axis=0)  # noqa: B023
            steered = mean_of(name)
            vs_plain, vs_random = paired_test(steered, mean_of("none"), n_boot, seed=seed), \
                paired_test(steered, mean_of(RANDOM), n_boot, seed=seed)
            row = {"direction": name, "condition": condition, "strength": result["strength"],
                   "contrast change": vs_plain.difference.mean, "ci95_lo": vs_plain.difference.lo,
                   "ci95_hi": vs_plain.difference.hi, "minus random": vs_random.difference.mean,
                   "p_vs_random": vs_random.p_value}
            if condition == "added to base":
                row |= {"misaligned": float(judged(name)["misaligned"].mean()),
                        "coherent": float(judged(name)["coherent"].mean()), "n_answers": len(judged(name))}
            rows.append(row)
    out = pd.DataFrame(rows)
    for condition in out["condition"].unique():
        mask = (out["condition"] == condition) & ~out["direction"].isin([RANDOM, "none"])
        out.loc[mask, "p_holm"] = holm(out.loc[mask, "p_vs_random"].to_numpy())
    return out


KEEP_RULE = ("A candidate survives the screen if, against the random direction of the same strength (paired "
             "permutation test over the selection questions, Holm-corrected across candidates, p < 0.05), adding "
             "it raises the base model's contrast and subtracting it lowers the wrong-advice models' contrast, and "
             f"the steered base model's judged coherence stays within {COHERENCE_SLACK:.0f} points of the unsteered "
             "base model's. Judged misalignment rates are reported beside it; at a few dozen answers they cannot "
             "resolve rates of a few percent (chapter 3), so they do not decide.")


def survivors(table: pd.DataFrame, coherence: bool = True) -> list[str]:
    """The candidates that pass ``KEEP_RULE``, strongest contrast rise first; ``coherence=False``: those that
    pass its two contrast tests, whatever their coherence."""
    added = table[table["condition"] == "added to base"].set_index("direction")
    taken = table[table["condition"] == "subtracted from wrong advice"].set_index("direction")
    floor = added.loc["none", "coherent"] * 100 - COHERENCE_SLACK
    keep = []
    for name in added.index.drop([RANDOM, "none"]):
        a, t = added.loc[name], taken.loc[name]
        coherent = a["coherent"] * 100 >= floor or not coherence
        if a["minus random"] > 0 and a["p_holm"] < 0.05 and t["minus random"] < 0 and t["p_holm"] < 0.05 and coherent:
            keep.append(name)
    return sorted(keep, key=lambda n: -added.loc[n, "minus random"])


CHOICE_RULE = ("Amended on 2026-12-03. The persona latent is the candidate with the largest screen effect: the "
               "smaller of its two contrast changes against the random direction, the rise when it is added to the "
               "base model and the fall when it is subtracted from the wrong-advice models, among the candidates "
               "that moved both the stated way (a tie goes to the higher-ranked one). Whether it survives the "
               "screen is reported and enters chapter 4's verdict, but no longer chooses. If no candidate moved "
               "both ways, the top-ranked latent. (Until 2026-12-03 the choice was the strongest survivor; else "
               "the strongest candidate that passed both contrast tests, whatever its coherence (a step added on "
               "2026-11-28, when the ranking's top two latents differed by 1.4%); else the top-ranked latent. A "
               "rebuild with torch held to AVX2, on the same corpus text, trained an SAE with the same latents at "
               "the same indices, and latent 2539 moved the contrast most both ways again, but its subtraction "
               "test came out at Holm p = 0.050 against 0.008 on AVX-512: that rule chose latent 2539 on one CPU "
               "and the top-ranked latent on the other. A choice by effect size does not hinge on a p-value at its "
               "threshold. The chapter reports what the earlier rule chooses beside it.)")


def screen_effect(table: pd.DataFrame) -> pd.Series:
    """Per candidate, in ranking order: the smaller of its rise (added to the base model) and its fall (subtracted
    from the wrong-advice models) in the contrast against the random direction; negative where either moved the wrong
    way, NaN where either is missing."""
    added = table[table["condition"] == "added to base"].set_index("direction")["minus random"]
    taken = table[table["condition"] == "subtracted from wrong advice"].set_index("direction")["minus random"]
    both = pd.concat([added, -taken], axis=1).min(axis=1, skipna=False)
    return both.drop([RANDOM, "none"], errors="ignore").rename("screen effect")


def choose(table: pd.DataFrame, top_ranked: int) -> tuple[int, str]:
    """The persona latent by ``CHOICE_RULE`` (a tie goes to the higher-ranked candidate), and how it was chosen."""
    effect = screen_effect(table)
    moved = effect[effect > 0]  # NaN is not > 0: a candidate with a missing test is not eligible
    if moved.empty:
        return int(top_ranked), "the top-ranked latent (no candidate moved the contrast both ways)"
    name = moved.idxmax()
    rest = effect.drop(name).dropna()
    kept = ("it survived the screen" if name in survivors(table) else
            "it passed the screen's contrast tests but not its coherence floor"
            if name in survivors(table, coherence=False)
            else "it did not pass the screen's contrast tests")
    runner_up = f", the next {rest.max():+.2f}" if len(rest) else ""
    return int(name.split()[1]), (f"the candidate with the largest screen effect ({effect[name]:+.2f} nats per token"
                                  f"{runner_up}; {kept})")


def choose_by_tests(table: pd.DataFrame, top_ranked: int) -> tuple[int, str]:
    """The persona latent by the rule before 2026-12-03: the strongest survivor, else the strongest candidate that
    passed both contrast tests, else the top-ranked latent (reported beside ``choose``)."""
    for names, how in ((survivors(table), "the strongest survivor of the causal screen"),
                       (survivors(table, coherence=False),
                        "the strongest candidate that passed the screen's contrast tests (none kept its coherence)")):
        if names:
            return int(names[0].split()[1]), how
    return int(top_ranked), "the top-ranked latent (no candidate passed the screen's contrast tests)"


def choice_record(table: pd.DataFrame, top_ranked: int) -> dict:
    """The choice by ``CHOICE_RULE`` and, beside it, what the rule before its amendment chooses."""
    (latent, how), (earlier, earlier_how) = choose(table, top_ranked), choose_by_tests(table, top_ranked)
    return {"latent": latent, "how": how, "rule": CHOICE_RULE, "earlier_rule": {"latent": earlier, "how": earlier_how}}


def earlier_reading(record: dict) -> str:
    """What the chapter says of the rule before the amendment of 2026-12-03."""
    earlier = record["earlier_rule"]
    if earlier["latent"] == record["latent"]:
        return f"The rule before 2026-12-03 (tests first) chooses the same latent, as {earlier['how']}."
    return (f"The rule before 2026-12-03 (tests first) would choose latent {earlier['latent']} instead, as "
            f"{earlier['how']}.")
