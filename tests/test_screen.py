"""The causal screen's rule: a survivor beats the random direction both ways and stays coherent."""

import numpy as np
import pandas as pd

from persona_features.experiments.ch4_diffing import screen


def _result(add: dict[str, float], subtract: dict[str, float], coherent: dict[str, float]) -> dict:
    rng = np.random.default_rng(0)
    noise = lambda: rng.normal(0, 0.01, 16)
    rows, index = [], []
    for model, shifts in (("base", add), ("bad", subtract)):
        plain = rng.normal(0, 0.1, 16)
        for name in ["none", *shifts]:
            rows.append(plain + shifts.get(name, 0.0) + noise())
            index.append((model, name))
    answers = pd.DataFrame([{"direction": n, "misaligned": False, "coherent": bool(i < 100 * c)}
                            for n, c in coherent.items() for i in range(100)])
    return {"contrast": pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index),
                                     columns=[f"q{i}" for i in range(16)]),
            "answers": answers, "directions": list(add), "strength": 1.0}


def test_only_a_latent_that_beats_random_both_ways_and_keeps_coherence_survives():
    result = _result(add={"latent 1": 0.5, "latent 2": 0.5, "latent 3": 0.0, screen.RANDOM: 0.02},
                     subtract={"latent 1": -0.4, "latent 2": -0.4, "latent 3": -0.4, screen.RANDOM: 0.0},
                     coherent={"none": 0.8, "latent 1": 0.75, "latent 2": 0.5, "latent 3": 0.8, screen.RANDOM: 0.8})
    table = screen.effects(result, "base", ["bad"], n_boot=200, seed=0)
    assert screen.survivors(table) == ["latent 1"]  # latent 2 loses coherence; latent 3 does not raise the base
    row = table.set_index(["direction", "condition"]).loc[("latent 1", "added to base")]
    assert row["contrast change"] > 0.4 and row["p_holm"] < 0.05 and row["n_answers"] == 100
    assert table.set_index(["direction", "condition"]).loc[("none", "added to base"), "coherent"] == 0.8


def _two_latents(coherent_1, add_2, subtract_2=-0.4):
    result = _result(add={"latent 1": 0.5, "latent 2": add_2, screen.RANDOM: 0.02},
                     subtract={"latent 1": -0.4, "latent 2": subtract_2, screen.RANDOM: 0.0},
                     coherent={"none": 0.8, "latent 1": coherent_1, "latent 2": 0.1, screen.RANDOM: 0.8})
    return screen.effects(result, "base", ["bad"], n_boot=200, seed=0)


def test_the_earlier_rule_falls_back_to_the_contrast_tests_and_then_to_the_ranking():
    assert (screen.choose_by_tests(_two_latents(0.75, 0.3), top_ranked=7)
            == (1, "the strongest survivor of the causal screen"))
    latent, how = screen.choose_by_tests(_two_latents(0.1, 0.8), top_ranked=7)  # nobody coherent: strongest passer
    assert latent == 2 and "contrast tests" in how
    latent, how = screen.choose_by_tests(_two_latents(0.1, -0.3), top_ranked=7)
    assert latent == 1  # latent 2 lowers the base model's contrast: it fails the tests
    no_pass = _result(add={"latent 1": 0.0, screen.RANDOM: 0.0}, subtract={"latent 1": 0.0, screen.RANDOM: 0.0},
                      coherent={"none": 0.8, "latent 1": 0.8, screen.RANDOM: 0.8})
    assert screen.choose_by_tests(screen.effects(no_pass, "base", ["bad"], n_boot=200, seed=0), top_ranked=7)[0] == 7


def test_the_choice_takes_the_largest_effect_both_ways_whatever_its_tests_and_reports_the_earlier_rule():
    # latent 2 moves the contrast more both ways (0.8 up, 0.6 down) but loses coherence: it is chosen all the same
    record = screen.choice_record(_two_latents(0.75, 0.8, -0.6), top_ranked=7)
    assert record["latent"] == 2 and "largest screen effect" in record["how"] and "coherence floor" in record["how"]
    assert record["earlier_rule"]["latent"] == 1 and "would choose latent 1" in screen.earlier_reading(record)
    # the effect is the smaller of the two: latent 2 rises most but barely falls, so latent 1 is chosen
    table = _two_latents(0.75, 0.9, -0.05)
    assert screen.screen_effect(table)["latent 2"] < screen.screen_effect(table)["latent 1"]
    assert screen.choose(table, top_ranked=7)[0] == 1
    assert "chooses the same latent" in screen.earlier_reading(screen.choice_record(table, top_ranked=7))
    # a latent that moves either contrast the wrong way is never chosen; with none left, the top-ranked latent
    wrong = _result(add={"latent 1": -0.3, screen.RANDOM: 0.0}, subtract={"latent 1": -0.4, screen.RANDOM: 0.0},
                    coherent={"none": 0.8, "latent 1": 0.8, screen.RANDOM: 0.8})
    latent, how = screen.choose(screen.effects(wrong, "base", ["bad"], n_boot=200, seed=0), top_ranked=7)
    assert latent == 7 and "top-ranked" in how


def _table(rows: dict[str, tuple[float, float, float, float]]) -> pd.DataFrame:
    """A screen table by hand: direction -> (rise minus random, its Holm p, fall minus random, its Holm p)."""
    out = [{"direction": "none", "condition": "added to base", "minus random": float("nan"), "p_holm": float("nan"),
            "coherent": 0.8}, {"direction": screen.RANDOM, "condition": "added to base", "minus random": 0.0,
                               "p_holm": float("nan"), "coherent": 0.8}]
    for name, (add, p_add, sub, p_sub) in rows.items():
        out += [{"direction": name, "condition": "added to base", "minus random": add, "p_holm": p_add,
                 "coherent": 0.8},
                {"direction": name, "condition": "subtracted from wrong advice", "minus random": sub, "p_holm": p_sub}]
    out.append({"direction": screen.RANDOM, "condition": "subtracted from wrong advice", "minus random": 0.0,
                "p_holm": float("nan")})
    return pd.DataFrame(out)


def test_a_largest_effect_that_misses_its_tests_is_still_chosen_and_a_missing_test_is_not_eligible():
    # as on the AVX2 rebuild: latent 2 moves the contrast most both ways, but its subtraction test lands at 0.050
    table = _table({"latent 1": (0.2, 0.3, -0.02, 1.0), "latent 2": (0.56, 0.012, -0.49, 0.050)})
    latent, how = screen.choose(table, top_ranked=1)
    assert latent == 2 and "did not pass the screen's contrast tests" in how and "the next +0.02" in how
    assert screen.choose_by_tests(table, top_ranked=1)[0] == 1  # the earlier rule fell back to the top-ranked
    # a candidate whose subtraction was not measured is not chosen, however large its rise
    gap = _table({"latent 1": (0.2, 0.3, -0.02, 1.0), "latent 2": (5.0, 0.001, float("nan"), float("nan"))})
    assert screen.choose(gap, top_ranked=9)[0] == 1
    # a tie goes to the higher-ranked candidate
    assert screen.choose(_table({"latent 3": (0.4, 0.5, -0.4, 0.5), "latent 4": (0.4, 0.5, -0.4, 0.5)}), 9)[0] == 3
